// An open accelerator queue: what `proc.open('/dev/<name>-<id>')` returns (docs/conformance.md
// §16.3–§16.6): its ioctls (START_Q, PUT_Q), its region mappings, and its release.
import { EEXIST, EINVAL, ENXIO } from '../../assembly/constants.js';
import type { FileMapping, IoctlArg, OpenFile } from '../file.js';
import type { Process } from '../process.js';
import { uapi } from '../uapi.js';
import type { Accelerator } from './accelerator.js';
import type { Bond } from './sva.js';

const { UACCE_CMD_START_Q, UACCE_CMD_PUT_Q, UACCE_Q_ZOMBIE, UACCE_Q_INIT, UACCE_Q_STARTED } = uapi;
const PAGE = 4096;

/** One mapping of a queue region made by `proc.mmapFd`. */
class QueueMapping implements FileMapping {
  private readonly q: Queue;
  readonly region: number;
  private z = false;

  constructor(q: Queue, region: number) {
    this.q = q;
    this.region = region;
  }

  get zapped(): boolean {
    return this.z;
  }

  zap(): void {
    this.z = true;
  }

  read(offset: number, length: number): Uint8Array {
    return this.q.regions[this.region].slice(offset, offset + length);
  }

  write(offset: number, bytes: Uint8Array): void {
    this.q.regions[this.region].set(bytes, offset);
  }

  /** `proc.munmap`: the region slot is cleared (it may map again) and the file reference dropped. */
  unmap(): number {
    this.q.unmapped(this);
    return 0;
  }

  release(): void {
    this.q.unmapped(this);
  }
}

export class Queue implements OpenFile {
  readonly kind = 'uacce-queue';
  readonly accel: Accelerator;
  readonly proc: Process;
  /** The hardware queue held (meaningful once got). */
  qid = -1;
  /** The process's PASID, or 0 without SVA. */
  readonly pasid: number;
  state: number = UACCE_Q_INIT;
  /** The MMIO and DUS bytes of this open queue, zero-filled at open. */
  readonly regions: [Uint8Array, Uint8Array];
  /** The mapping of each region, if mapped. */
  private readonly slots: (QueueMapping | null)[] = [null, null];
  /** The bond reference this queue holds (SVA), or null once dropped. */
  private bond: Bond | null;
  /** References: open fds plus mappings. */
  private refs = 1;

  constructor(accel: Accelerator, proc: Process, bond: Bond | null) {
    this.accel = accel;
    this.proc = proc;
    this.bond = bond;
    this.pasid = bond ? bond.pasid : 0;
    this.regions = [new Uint8Array(accel.mmioSize), new Uint8Array(accel.dusSize)];
  }

  private get live(): boolean {
    return this.state === UACCE_Q_INIT || this.state === UACCE_Q_STARTED;
  }

  /** Queue ioctls (docs/conformance.md §16.4; the callback check is the process's). */
  ioctl(_proc: Process, request: number, _arg: IoctlArg): number {
    if (!this.live) return -ENXIO;
    if (request === UACCE_CMD_START_Q) {
      if (this.state !== UACCE_Q_INIT) return -EINVAL;
      const e = this.accel.injected('start_queue');
      if (e) return e;
      this.state = UACCE_Q_STARTED;
      this.accel.observed('start_queue', this);
      return 0;
    }
    if (request === UACCE_CMD_PUT_Q) {
      this.stopAndPut();
      return 0;
    }
    return -EINVAL;
  }

  /** stop_queue if STARTED, then put_queue; the queue is ZOMBIE. */
  private stopAndPut(): void {
    if (this.state === UACCE_Q_STARTED) {
      this.state = UACCE_Q_INIT;
      this.accel.observed('stop_queue', this);
    }
    if (this.state !== UACCE_Q_ZOMBIE) {
      this.accel.putQueue(this);
      this.state = UACCE_Q_ZOMBIE;
      this.accel.observed('put_queue', this);
    }
  }

  /** One fd is closed: its reference goes; the last reference releases the file. */
  close(): void {
    this.unref();
  }

  /**
   * `proc.mmapFd` after the checks every file shares (docs/conformance.md §16.5): a mapping of
   * `pages` pages of a region, or -errno.
   */
  mmap(_proc: Process, offset: bigint, pages: number): FileMapping | number {
    const region = offset / BigInt(PAGE);
    if (region >= 2n) return -EINVAL;
    if (!this.live) return -ENXIO;
    const r = Number(region);
    if (this.slots[r]) return -EEXIST;
    const e = this.accel.injected('mmap');
    if (e) return e;
    const bytes = pages * PAGE;
    if (r === 0 ? bytes > this.accel.mmioSize : bytes !== this.accel.dusSize) return -EINVAL;
    const m = new QueueMapping(this, r);
    this.slots[r] = m;
    this.refs++;
    return m;
  }

  /** A mapping is gone (munmap or exit): its slot is cleared and its reference dropped. */
  unmapped(m: QueueMapping): void {
    if (this.slots[m.region] === m) this.slots[m.region] = null;
    this.unref();
  }

  private unref(): void {
    if (--this.refs === 0) this.release();
  }

  /**
   * Release (docs/conformance.md §16.6): the queue stopped and put unless ZOMBIE, then its bond
   * reference dropped, so the device is told to stop before the PASID attachment goes.
   */
  private release(): void {
    this.stopAndPut();
    this.dropBond();
    const open = this.accel.open;
    const i = open.indexOf(this);
    if (i >= 0) open.splice(i, 1);
  }

  private dropBond(): void {
    const b = this.bond;
    this.bond = null;
    if (b) this.accel.engine.sva.drop(b);
  }

  /**
   * Removal (docs/conformance.md §16.8), for this queue: stop, put, drop the bond reference, zap
   * the mappings.
   */
  removeByDevice(): void {
    this.stopAndPut();
    this.dropBond();
    for (const m of this.slots) m?.zap();
    const open = this.accel.open;
    open.splice(open.indexOf(this), 1);
  }
}
