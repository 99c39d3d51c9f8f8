// A vCPU and its handle (docs/conformance.md §19.6): guest stores through the MMU model, reads,
// KVM-internal writes, and the batch form of the guest store for many stores at once. Per-page
// work runs in the core (assembly/kvm_vcpu.ts); the host checks, reserves, and runs the notifiers
// between pieces.
import { EINVAL, ENOSPC, ESRCH } from '../../assembly/constants.js';
import { PAGE_SIZE } from '../u64.js';
import { checkBytes, checkNumber, checkU64 } from './args.js';
import { callbackScope, rethrow } from './callbacks.js';
import { loggedPages, markSoftDirty, reserveFrames, segmentsOf, type Segment } from './guest.js';
import type { Kvm } from './kvm.js';
import { refreshBacked } from './memslot.js';
import { notifyWrite } from './page_track.js';

const TOP64 = 1n << 64n;

/** A vCPU. Its handle works while the VM exists, whether or not the vCPU fd is open. */
export class Vcpu {
  readonly kvm: Kvm;
  readonly id: number;
  /** The core's ring handle; 0 without a ring (or once destroyed). */
  ring: number;

  constructor(kvm: Kvm, id: number, ring: number) {
    this.kvm = kvm;
    this.id = id;
    this.ring = ring;
  }

  /** Called when the VM is destroyed: the ring goes. */
  destroy(): void {
    if (this.ring) this.kvm.core.x.kvm_ring_free(this.ring);
    this.ring = 0;
  }

  /**
   * Ring entries pushed and not yet reset (dirty_index − reset_index); 0 without a ring or once
   * destroyed.
   */
  get dirtyRingUsed(): number {
    return this.ring ? this.kvm.core.x.kvm_ring_used(this.ring) >>> 0 : 0;
  }

  /**
   * used ≥ entries − 64 (the soft limit): the next guest entry would exit with
   * KVM_EXIT_DIRTY_RING_FULL.
   */
  get dirtyRingSoftFull(): boolean {
    return this.ring !== 0 && this.dirtyRingUsed >= this.kvm.ringSize / 16 - 64;
  }

  /**
   * The checks of write, read and writeGuest, in order: a bad length, a range past 2^64 or a bad
   * asId → EINVAL; destroyed → ESRCH; a page outside a usable slot → EFAULT. The segments.
   */
  private check(what: string, gpa: bigint, len: number, asId: number, write: boolean): Segment[] | number {
    callbackScope(this.kvm.engine).forbid(`vcpu.${what}`);
    if (len < 1 || !Number.isInteger(len) || gpa + BigInt(len) > TOP64 || (asId !== 0 && asId !== 1)) return -EINVAL;
    if (this.kvm.destroyed) return -ESRCH;
    return segmentsOf(this.kvm, asId, gpa, len, write);
  }

  /** The argument types, then the checks of write and writeGuest for a store of `data` at gpa. */
  private checkStore(what: string, gpa: bigint, data: Uint8Array, asId: number): Segment[] | number {
    checkU64(gpa, 'gpa');
    checkBytes(data, 'data');
    checkNumber(asId, 'asId');
    return this.check(what, gpa, data.length, asId, true);
  }

  /**
   * Copies `data` into a heap block of the core, then frames the host memory of every segment so
   * that the stores cannot fail half-way: the block's address, or -ENOMEM with the block freed
   * (frames of earlier segments of a range spanning slots stay: zero-filled memory of the process).
   */
  private stageAndReserve(data: Uint8Array, segs: Segment[]): number {
    const x = this.kvm.core.x;
    const buf = x.heap_alloc(data.length);
    if (buf < 0) return buf;
    this.kvm.core.u8().set(data, buf);
    const r = reserveFrames(this.kvm, segs);
    if (r < 0) {
      x.heap_free(buf);
      return r;
    }
    return buf;
  }

  /**
   * A guest store through the MMU. Returns the bytes stored (fewer when the ring became
   * soft-full), or -EINVAL / -ESRCH / -EFAULT / -ENOMEM with nothing stored.
   */
  write(gpa: bigint, data: Uint8Array, asId: number = 0): number {
    const segs = this.checkStore('write', gpa, data, asId);
    if (typeof segs === 'number') return segs;
    const src = this.stageAndReserve(data, segs);
    if (src < 0) return src;
    const kvm = this.kvm;
    const x = kvm.core.x;
    let done = 0;
    let err: unknown;
    try {
      while (done < data.length) {
        const k = x.kvm_vcpu_write(kvm.vm, asId, kvm.proc.um.handle, this.ring, gpa + BigInt(done), src + done, data.length - done, 0) >>> 0;
        markSoftDirty(kvm, segs, done, done + k);
        done += k;
        if (done === data.length || this.dirtyRingSoftFull) break;
        // The next piece is write-tracked: emulate it, then tell the nodes.
        const at = gpa + BigInt(done);
        const e = x.kvm_vcpu_write(kvm.vm, asId, kvm.proc.um.handle, this.ring, at, src + done, data.length - done, 1) >>> 0;
        markSoftDirty(kvm, segs, done, done + e);
        err = notifyWrite(kvm, at, data.subarray(done, done + e), err);
        done += e;
        if (kvm.destroyed) break;
      }
    } finally {
      x.heap_free(src);
    }
    rethrow(err);
    return done;
  }

  /** A guest read: a new array, or -EINVAL / -ESRCH / -EFAULT. Records nothing. */
  read(gpa: bigint, length: number, asId: number = 0): Uint8Array | number {
    checkU64(gpa, 'gpa');
    checkNumber(length, 'length');
    checkNumber(asId, 'asId');
    const segs = this.check('read', gpa, length, asId, false);
    if (typeof segs === 'number') return segs;
    const out = new Uint8Array(length);
    for (const g of segs) out.set(this.kvm.proc.read(g.hva, g.bytes), g.at);
    return out;
  }

  /**
   * A KVM-internal write: every page recorded, protection unchanged, no notifier; 0, or
   * -EINVAL / -ESRCH / -EFAULT / -ENOSPC (the ring lacks an entry per logged page) / -ENOMEM.
   */
  writeGuest(gpa: bigint, data: Uint8Array, asId: number = 0): number {
    const segs = this.checkStore('writeGuest', gpa, data, asId);
    if (typeof segs === 'number') return segs;
    if (this.ring && this.kvm.ringSize / 16 - this.dirtyRingUsed < loggedPages(segs)) return -ENOSPC;
    const src = this.stageAndReserve(data, segs);
    if (src < 0) return src;
    const kvm = this.kvm;
    kvm.core.x.kvm_vcpu_write_guest(kvm.vm, asId, kvm.proc.um.handle, this.ring, gpa, src, data.length);
    kvm.core.x.heap_free(src);
    markSoftDirty(kvm, segs, 0, data.length);
    return 0;
  }

  /**
   * Many guest stores at once: store i writes `bytesEach` bytes, data[i·bytesEach ..], at gpas[i],
   * exactly as `write` would, in order. No store may cross a page boundary. Every store is
   * checked before any is made. Returns how many stores were made (fewer than gpas.length when
   * the ring became soft-full), or -EINVAL (lengths, a store crossing a page, asId) / -ESRCH /
   * -EFAULT / -ENOMEM with nothing stored.
   */
  writeMany(gpas: BigUint64Array, data: Uint8Array, bytesEach: number, asId: number = 0): number {
    if (!(gpas instanceof BigUint64Array)) throw new TypeError('gpas must be a BigUint64Array');
    checkBytes(data, 'data');
    const n = gpas.length;
    const c = this.checkMany(n, data.length, bytesEach, asId, 'vcpu.writeMany');
    if (c <= 0) return c;
    const x = this.kvm.core.x;
    const g = x.heap_alloc(n * 8);
    if (g < 0) return g;
    const d = x.heap_alloc(data.length);
    if (d < 0) {
      x.heap_free(g);
      return d;
    }
    try {
      this.kvm.core.u64().set(gpas, g / 8);
      this.kvm.core.u8().set(data, d);
      return this.storeBatch(g, d, n, bytesEach, asId);
    } finally {
      x.heap_free(g);
      x.heap_free(d);
    }
  }

  /**
   * `writeMany` of a batch already in the engine's core: `n` u64 guest addresses at core address
   * `gpas` (8-byte aligned) and their `n · bytesEach` bytes at `data`, which stay the caller's.
   * The same checks and results, then -EINVAL for a batch not inside the core's memory (after
   * the VM's -ESRCH). For callers that make their batches in the core, as the simulator does; the
   * server has no form of it, since its clients hold no core addresses.
   */
  writeManyAt(gpas: number, data: number, n: number, bytesEach: number, asId: number = 0): number {
    checkNumber(gpas, 'gpas');
    checkNumber(data, 'data');
    checkNumber(n, 'n');
    const c = this.checkMany(n, n * bytesEach, bytesEach, asId, 'vcpu.writeManyAt');
    if (c <= 0) return c;
    const bytes = this.kvm.core.u8().length;
    if (!Number.isInteger(n) || n < 0 || !Number.isInteger(gpas) || !Number.isInteger(data) || gpas < 0
        || gpas % 8 !== 0 || data < 0 || gpas + n * 8 > bytes || data + n * bytesEach > bytes) return -EINVAL;
    return this.storeBatch(gpas, data, n, bytesEach, asId);
  }

  /**
   * What both batch forms check first: the lengths and the address space (-EINVAL), the VM
   * (-ESRCH). 1 to go on, 0 for an empty batch, or -errno.
   */
  private checkMany(n: number, dataLength: number, bytesEach: number, asId: number, what: string): number {
    checkNumber(bytesEach, 'bytesEach');
    checkNumber(asId, 'asId');
    callbackScope(this.kvm.engine).forbid(what);
    if (!Number.isInteger(bytesEach) || bytesEach < 1 || bytesEach > 4096 || dataLength !== n * bytesEach
        || (asId !== 0 && asId !== 1)) return -EINVAL;
    if (this.kvm.destroyed) return -ESRCH;
    return n === 0 ? 0 : 1;
  }

  /** The stores of a checked batch at core addresses `g` (gpas) and `d` (bytes). */
  private storeBatch(g: number, d: number, n: number, bytesEach: number, asId: number): number {
    const kvm = this.kvm;
    const core = kvm.core;
    const x = core.x;
    const h = x.heap_alloc(n * 8);
    if (h < 0) return h;
    let err: unknown;
    let done = 0;
    try {
      const c = this.checkBatch(g, n, bytesEach, asId, d);
      if (c < 0) return c;
      const um = kvm.proc.um.handle;
      while (done < n) {
        const i = x.kvm_vcpu_write_batch(kvm.vm, asId, um, this.ring, g, n, d, bytesEach, done, h);
        kvm.proc.markSoftDirtyMany(h + done * 8, i - done, bytesEach);
        done = i;
        if (done === n || this.dirtyRingSoftFull) break;
        const gpa = core.u64()[g / 8 + done];
        const at = d + done * bytesEach;
        const e = x.kvm_vcpu_write(kvm.vm, asId, um, this.ring, gpa, at, bytesEach, 1);
        const segs = segmentsOf(kvm, asId, gpa, bytesEach, true) as Segment[];
        markSoftDirty(kvm, segs, 0, e);
        // A copy: a notifier may grow the memory, which detaches every view of it.
        err = notifyWrite(kvm, gpa, core.u8().slice(at, at + bytesEach), err);
        done++;
        if (kvm.destroyed) break;
      }
    } finally {
      x.heap_free(h);
    }
    rethrow(err);
    return done;
  }

  /**
   * Checks and reserves every store of a batch (gpas at core address `g`, bytes at `d`): 0 or
   * -errno. A store of zeros into a page that has never been written needs no frame.
   */
  private checkBatch(g: number, n: number, bytes: number, asId: number, d: number): number {
    const kvm = this.kvm;
    const core = kvm.core;
    const x = core.x;
    let from = 0;
    while (from < n) {
      const i = x.kvm_batch_check(kvm.vm, asId, kvm.proc.um.handle, g, n, bytes, from, d);
      if (i < 0 || i === n) return i < 0 ? i : 0;
      // A closer look at store i: crossing a page, outside a writable slot, or a slot not yet
      // known to be wholly mapped.
      const a = core.u64()[g / 8 + i];
      if ((a % PAGE_SIZE) + BigInt(bytes) > PAGE_SIZE || a + BigInt(bytes) > TOP64) return -EINVAL;
      const segs = segmentsOf(kvm, asId, a, bytes, true);
      if (typeof segs === 'number') return segs;
      refreshBacked(kvm, segs[0].slot);
      const at = d + i * bytes;
      const r = core.u8().subarray(at, at + bytes).every((b) => b === 0) ? 0 : reserveFrames(kvm, segs);
      if (r < 0) return r;
      from = i + 1;
    }
    return 0;
  }
}
