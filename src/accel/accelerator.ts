// A shared accelerator (docs/conformance.md §16): a uacce device run by the engine's reference
// driver (modelled on HiSilicon's queue manager): hardware queues, attributes, bonds by PASID, the
// device side (DMA by PASID and virtual address, queue regions), fault injection and removal.
import { EBUSY, EDEADLK, EFAULT, EINVAL, ENODEV, ENOENT, ENXIO } from '../../assembly/constants.js';
import type { Engine } from '../engine.js';
import { callbackScope } from '../kvm/callbacks.js';
import type { Process } from '../process.js';
import { uapi } from '../uapi.js';
import type { Bond } from './sva.js';
import type { Queue } from './queue.js';

const { UACCE_DEV_SVA } = uapi;

export type AccelOp = 'get_queue' | 'start_queue' | 'stop_queue' | 'put_queue';
export type FailOp = 'get_queue' | 'start_queue' | 'mmap';

export interface AcceleratorOptions {
  /** 1 to 63 characters, no '/'; default 'accel'. */
  name?: string;
  /** The `api` attribute; default 'accel_v1'. */
  api?: string;
  /** The `algorithms` attribute; default ''. */
  algorithms?: string;
  /** Hardware queues, 0 to 65535; default 64. */
  queues?: number;
  /** The driver asks for UACCE_DEV_SVA; default true. */
  sva?: boolean;
  /** 0 to 0x100000: PASIDs 1 .. maxPasids - 1 are accepted; 0 = no PASID support. Default 0x100000. */
  maxPasids?: number;
  /** MMIO region bytes, a multiple of 4096 (0 = none); default 4096. */
  mmioSize?: number;
  /** DUS region bytes, a multiple of 4096 (0 = none); default 16384. */
  dusSize?: number;
  /** Called after each driver op takes effect, as a callback. */
  observe?: (op: AccelOp, qid: number, pasid: number) => void;
}

function str(v: unknown, dflt: string, what: string): string {
  if (v === undefined) return dflt;
  if (typeof v !== 'string') throw new TypeError(`${what} must be a string`);
  return v;
}

function int(v: unknown, dflt: number, lo: number, hi: number, what: string, page = false): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(`${what} must be an integer`);
  if (v < lo || v > hi || (page && v % 4096 !== 0)) {
    throw new RangeError(`${what} must be in [${lo}, ${hi}]${page ? ' and a multiple of 4096' : ''}`);
  }
  return v;
}

export class Accelerator {
  readonly engine: Engine;
  readonly name: string;
  readonly devId: number;
  readonly api: string;
  readonly algorithms: string;
  readonly nQueues: number;
  readonly maxPasids: number;
  readonly mmioSize: number;
  readonly dusSize: number;
  /** Negotiated flags: UACCE_DEV_SVA or 0. */
  readonly flags: number;
  private readonly observer?: (op: AccelOp, qid: number, pasid: number) => void;
  private removedFlag = false;
  /** Hardware queues: the queue holding each, or null. */
  private readonly hw: (Queue | null)[];
  /** Queue files not yet released, most recently opened first. */
  readonly open: Queue[] = [];
  private readonly bonds = new Map<Process, Bond>();
  private readonly byPasid = new Map<number, Bond>();
  private readonly failing = new Map<FailOp, number>();

  constructor(engine: Engine, devId: number, o: AcceleratorOptions) {
    if (o === null || typeof o !== 'object') throw new TypeError('createAccelerator takes an options object');
    this.engine = engine;
    this.name = str(o.name, 'accel', 'name');
    if (this.name.length < 1 || this.name.length > 63 || this.name.includes('/')) {
      throw new RangeError("name must be 1 to 63 characters without '/'");
    }
    this.api = str(o.api, 'accel_v1', 'api');
    this.algorithms = str(o.algorithms, '', 'algorithms');
    this.nQueues = int(o.queues, 64, 0, 65535, 'queues');
    if (o.sva !== undefined && typeof o.sva !== 'boolean') throw new TypeError('sva must be a boolean');
    this.maxPasids = int(o.maxPasids, 0x100000, 0, 0x100000, 'maxPasids');
    this.mmioSize = int(o.mmioSize, 4096, 0, 0x7fff_f000, 'mmioSize', true);
    this.dusSize = int(o.dusSize, 16384, 0, 0x7fff_f000, 'dusSize', true);
    if (o.observe !== undefined && typeof o.observe !== 'function') throw new TypeError('observe must be a function');
    this.observer = o.observe;
    this.flags = (o.sva ?? true) && this.maxPasids > 0 ? UACCE_DEV_SVA : 0;
    this.devId = devId;
    this.hw = new Array<Queue | null>(this.nQueues).fill(null);
  }

  /** The device file. */
  get path(): string {
    return `/dev/${this.name}-${this.devId}`;
  }

  get removed(): boolean {
    return this.removedFlag;
  }

  /** What a read of the attribute file gives (docs/conformance.md §16.1), or -ENOENT / -ENODEV. */
  readAttr(attr: string): string | number {
    if (typeof attr !== 'string') throw new TypeError('readAttr(attr: string)');
    if (this.removedFlag) return -ENODEV;
    switch (attr) {
      case 'api':
        return `${this.api}\n`;
      case 'flags':
        return `${this.flags}\n`;
      case 'available_instances':
        return `${this.hw.filter((q) => q === null).length}\n`;
      case 'algorithms':
        return `${this.algorithms}\n`;
      case 'region_mmio_size':
        return this.mmioSize ? `${this.mmioSize}\n` : -ENOENT;
      case 'region_dus_size':
        return this.dusSize ? `${this.dusSize}\n` : -ENOENT;
      default:
        return -ENOENT;
    }
  }

  /** The hardware queues held by INIT or STARTED queues, ascending qid. */
  queues(): { qid: number; pasid: number; state: number; proc: Process }[] {
    const out = [];
    for (const q of this.hw) if (q) out.push({ qid: q.qid, pasid: q.pasid, state: q.state, proc: q.proc });
    return out;
  }

  /** Its bonds, in the order they began (for inspection). */
  bondList(): Bond[] {
    return [...this.bonds.values()];
  }

  /** The bond of `proc` with this accelerator, if any. */
  bondOf(proc: Process): Bond | undefined {
    return this.bonds.get(proc);
  }

  addBond(b: Bond): void {
    this.bonds.set(b.mm.proc, b);
    this.byPasid.set(b.pasid, b);
  }

  removeBond(b: Bond): void {
    this.bonds.delete(b.mm.proc);
    this.byPasid.delete(b.pasid);
  }

  /**
   * The checks `dmaWrite` and `dmaRead` share (docs/conformance.md §16.7): the process behind
   * `pasid`, or -ENODEV / -EINVAL / -ENOENT / -EFAULT.
   */
  private translate(pasid: number, va: bigint, len: number): Process | number {
    if (this.removedFlag) return -ENODEV;
    if (len <= 0) return -EINVAL;
    const b = this.byPasid.get(pasid);
    if (!b) return -ENOENT;
    if (b.mm.released) return -EFAULT;
    if (va + BigInt(len) > 1n << 64n || !b.mm.proc.isMapped(va, BigInt(len))) return -EFAULT;
    return b.mm.proc;
  }

  /** The device writes through a PASID: 0 or -errno; the pages touched turn soft-dirty. */
  dmaWrite(pasid: number, va: bigint, data: Uint8Array): number {
    checkDma(pasid, va);
    if (!(data instanceof Uint8Array)) throw new TypeError('dmaWrite: data must be a Uint8Array');
    const p = this.translate(pasid, va, data.length);
    if (typeof p === 'number') return p;
    const r = p.um.write(va, data);
    if (r < 0) return r;
    p.markSoftDirty(va, data.length);
    return 0;
  }

  /** The device reads through a PASID: a copy, or -errno. Marks nothing. */
  dmaRead(pasid: number, va: bigint, length: number): Uint8Array | number {
    checkDma(pasid, va);
    if (!Number.isInteger(length)) throw new TypeError('dmaRead: length must be an integer');
    const p = this.translate(pasid, va, length);
    if (typeof p === 'number') return p;
    return p.um.read(va, length);
  }

  /** The region bytes of a held queue, or -ENODEV / -ENXIO (qid not held) / -EINVAL. */
  private regionOf(qid: number, region: number, offset: number, length: number): Uint8Array | number {
    for (const v of [qid, region, offset, length]) {
      if (!Number.isInteger(v)) throw new TypeError('region calls take integers');
    }
    if (this.removedFlag) return -ENODEV;
    const q = qid >= 0 && qid < this.hw.length ? this.hw[qid] : null;
    if (!q) return -ENXIO;
    if (region !== 0 && region !== 1) return -EINVAL;
    const bytes = q.regions[region];
    if (length <= 0 || offset < 0 || offset + length > bytes.length) return -EINVAL;
    return bytes.subarray(offset, offset + length);
  }

  regionRead(qid: number, region: number, offset: number, length: number): Uint8Array | number {
    const r = this.regionOf(qid, region, offset, length);
    return typeof r === 'number' ? r : r.slice();
  }

  regionWrite(qid: number, region: number, offset: number, data: Uint8Array): number {
    if (!(data instanceof Uint8Array)) throw new TypeError('regionWrite: data must be a Uint8Array');
    const r = this.regionOf(qid, region, offset, data.length);
    if (typeof r === 'number') return r;
    r.set(data);
    return 0;
  }

  /** The next call of driver op `op` fails with -errno (one shot; a second call replaces it). */
  failNext(op: FailOp, errno: number): void {
    if (op !== 'get_queue' && op !== 'start_queue' && op !== 'mmap') throw new TypeError(`failNext: unknown op '${String(op)}'`);
    if (!Number.isInteger(errno) || errno < 1 || errno > 4095) throw new RangeError('failNext: errno must be in [1, 4095]');
    this.failing.set(op, errno);
  }

  /** A pending injected error of `op` (consumed), or 0. */
  injected(op: FailOp): number {
    const e = this.failing.get(op);
    if (e === undefined) return 0;
    this.failing.delete(op);
    return -e;
  }

  /** Tells the observer that `op` took effect, as a callback (docs/conformance.md §15.5). */
  observed(op: AccelOp, q: Queue): void {
    const f = this.observer;
    if (f) this.engine.calls.callback(() => f(op, q.qid, q.pasid), undefined);
  }

  /** get_queue: the lowest free hardware queue for `q`, or -errno. */
  getQueue(q: Queue): number {
    const e = this.injected('get_queue');
    if (e) return e;
    const qid = this.hw.indexOf(null);
    if (qid < 0) return -EBUSY;
    this.hw[qid] = q;
    return qid;
  }

  /** put_queue: returns `q`'s hardware queue. */
  putQueue(q: Queue): void {
    if (this.hw[q.qid] === q) this.hw[q.qid] = null;
  }

  /** Removal (docs/conformance.md §16.8): 0, or -EDEADLK in a callback. */
  remove(): number {
    callbackScope(this.engine).forbid('accel.remove'); // not from a KVM callback
    const c = this.engine.calls;
    if (c.inCallback) return -EDEADLK;
    if (this.removedFlag) return 0;
    return c.run(() => {
      for (const q of [...this.open]) q.removeByDevice();
      this.removedFlag = true;
      this.engine.accelerators.forget(this);
      return 0;
    });
  }
}

function checkDma(pasid: number, va: bigint): void {
  if (!Number.isInteger(pasid) || pasid < 0 || pasid > 0xffff_ffff) throw new TypeError('pasid must be an integer in [0, 0xFFFFFFFF]');
  if (typeof va !== 'bigint' || va < 0n || va >= 1n << 64n) throw new TypeError('va must be a bigint in [0, 2^64)');
}

