// Shared virtual addressing (`engine.sva`, docs/conformance.md §16.2, §16.8): one PASID per
// process, kept until its mm is freed; one counted bond per (accelerator, process); the mm released
// at exit and freed after its last bond.
import { EDEADLK, EINVAL, ENODEV, ENOSPC, EOVERFLOW, ESRCH } from '../../assembly/constants.js';
import type { Engine } from '../engine.js';
import { INV } from '../ioasid/set.js';
import { Process } from '../process.js';
import type { Accelerator } from './accelerator.js';

/** A process's address space as SVA sees it. */
export interface Mm {
  readonly proc: Process;
  /** Its PASID, or INV. */
  pasid: number;
  /** Bonds with a count > 0. */
  readonly bonds: Set<Bond>;
  /** Exit step 1 ran: devices no longer translate its PASID. */
  released: boolean;
  /** Exit finished its steps: the mm is freed at its last unbind. */
  exited: boolean;
}

/** A bond of one accelerator to one process: counted, one handle. */
export interface Bond {
  readonly accel: Accelerator;
  readonly mm: Mm;
  readonly pasid: number;
  /** References held: by queues and by the API. */
  count: number;
  /** The API's share of `count` (bindDevice calls not yet unbound). */
  apiRefs: number;
  readonly handle: SvaHandle;
}

/** The opaque handle `bindDevice` returns. */
export type SvaHandle = Readonly<{ readonly kind: 'sva-handle' }>;

export class Sva {
  private readonly engine: Engine;
  private readonly mms = new WeakMap<Process, Mm>();
  private readonly bondOf = new WeakMap<SvaHandle, Bond>();
  private readonly given = new WeakSet<SvaHandle>();

  constructor(engine: Engine) {
    this.engine = engine;
  }

  /** A handle with one more bond reference (docs/conformance.md §16.2), or -errno. */
  bindDevice(accel: Accelerator, proc: Process): SvaHandle | number {
    if (!this.engine.accelerators.isAccelerator(accel)) throw new TypeError('bindDevice: not an accelerator');
    if (!(proc instanceof Process)) throw new TypeError('bindDevice: not a process');
    if (proc.engine !== this.engine) throw new TypeError('bindDevice: a process of another engine');
    const c = this.engine.calls;
    if (c.inCallback) return -EDEADLK;
    return c.run(() => {
      const b = this.bind(accel, proc);
      if (typeof b === 'number') return b;
      b.apiRefs++;
      this.given.add(b.handle);
      return b.handle;
    });
  }

  /** Drops the API reference taken by a bindDevice: 0, or -EDEADLK / -EINVAL (none left). */
  unbindDevice(handle: SvaHandle): number {
    const b = this.bondOf.get(handle);
    if (!b || !this.given.has(handle)) throw new TypeError('unbindDevice: not a handle from bindDevice');
    const c = this.engine.calls;
    if (c.inCallback) return -EDEADLK;
    if (b.apiRefs === 0) return -EINVAL;
    return c.run(() => {
      b.apiRefs--;
      this.drop(b);
      return 0;
    });
  }

  /** The PASID of a handle's bond, or -EINVAL once the bond is dead. */
  getPasid(handle: SvaHandle): number {
    const b = this.bondOf.get(handle);
    if (!b || !this.given.has(handle)) throw new TypeError('getPasid: not a handle from bindDevice');
    return b.count > 0 ? b.pasid : -EINVAL;
  }

  /** The process's PASID or INVALID_IOASID. */
  pasidOf(proc: Process): number {
    if (!(proc instanceof Process)) throw new TypeError('pasidOf: not a process');
    if (proc.engine !== this.engine) throw new TypeError('pasidOf: a process of another engine');
    return this.mms.get(proc)?.pasid ?? INV;
  }

  /** bindDevice after the callback check: one more reference on the (accel, proc) bond, or -errno. */
  bind(accel: Accelerator, proc: Process): Bond | number {
    if (accel.removed) return -ENODEV;
    if (proc.exited) return -ESRCH;
    const mm = this.mmOf(proc);
    if (mm.pasid !== INV && mm.pasid >= accel.maxPasids) return -EOVERFLOW;
    if (mm.pasid === INV) {
      const io = this.engine.ioasid;
      const p = accel.maxPasids < 2 ? INV : io.allocIn(io.systemSid, 1, accel.maxPasids - 1, proc, 'sva');
      if (p === INV) return -ENOSPC;
      if (p < 0) return p; // -ENOMEM
      mm.pasid = p;
    }
    const old = accel.bondOf(proc);
    if (old) {
      old.count++;
      return old;
    }
    const b: Bond = { accel, mm, pasid: mm.pasid, count: 1, apiRefs: 0, handle: Object.freeze({ kind: 'sva-handle' }) };
    this.bondOf.set(b.handle, b);
    mm.bonds.add(b);
    accel.addBond(b);
    return b;
  }

  /** Drops one reference of `b`; at 0 the bond is gone, and the mm freed if it was the last after exit. */
  drop(b: Bond): void {
    if (--b.count > 0) return;
    b.accel.removeBond(b);
    b.mm.bonds.delete(b);
    if (b.mm.exited && b.mm.bonds.size === 0) this.freeMm(b.mm);
  }

  /** The mm of `proc`, made on first use. */
  private mmOf(proc: Process): Mm {
    let mm = this.mms.get(proc);
    if (!mm) {
      mm = { proc, pasid: INV, bonds: new Set(), released: false, exited: false };
      this.mms.set(proc, mm);
    }
    return mm;
  }

  /** The mm of `proc` if it has one. */
  mmIfAny(proc: Process): Mm | undefined {
    return this.mms.get(proc);
  }

  /** `proc.exit` step 1: devices stop translating the process's PASID. */
  mmRelease(proc: Process): void {
    const mm = this.mms.get(proc);
    if (mm) mm.released = true;
  }

  /** `proc.exit` step 5: the mm is freed now if no bond is left, else at its last unbind. */
  exitDone(proc: Process): void {
    const mm = this.mms.get(proc);
    if (!mm) return;
    mm.exited = true;
    if (mm.bonds.size === 0) this.freeMm(mm);
  }

  /**
   * The mm is freed: `pasidOf` gives INV and the PASID is freed like any ID (a FREE to the global,
   * then the system set's chain; docs/conformance.md §16.8).
   */
  private freeMm(mm: Mm): void {
    const p = mm.pasid;
    mm.pasid = INV;
    this.mms.delete(mm.proc);
    if (p === INV) return;
    const io = this.engine.ioasid;
    const rec = io.ids.record(p);
    if (rec) io.freeId(p, rec);
  }
}
