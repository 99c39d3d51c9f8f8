// PASIDs for VMs through a VFIO type1 container (docs/conformance.md §15.6, §15.7): the per-process
// vmm and its VM set, the references containers hold on it, and VFIO_IOMMU_PASID_REQUEST.
import { EFAULT, EINVAL, ENOSPC, EOPNOTSUPP } from '../../assembly/constants.js';
import type { Process } from '../process.js';
import type { Container } from '../vfio/container.js';
import { INV, type IoasidSet } from './set.js';
import { uapi } from '../uapi.js';

const { VFIO_IOMMU_FLAG_ALLOC_PASID: ALLOC, VFIO_IOMMU_FLAG_FREE_PASID: FREE, VFIO_PASID_REQUEST_MASK } = uapi;
const PASID_MAX = 0x7fff_ffff;

/** A process's vmm: its VM set and the containers holding it. */
interface Vmm {
  readonly proc: Process;
  readonly set: IoasidSet;
  refs: number;
}

/** The vmm each process has, while any container holds it. */
const vmmOfProc = new WeakMap<Process, Vmm>();
/** The vmm each container holds. */
const vmmOfContainer = new WeakMap<Container, Vmm>();

/**
 * Container `c` takes a reference on `proc`'s vmm (made, with its VM set, if it has none).
 * 0 (also when `c` holds one already) or -errno (ENOSPC) with nothing made.
 */
export function vmmTake(c: Container, proc: Process): number {
  if (vmmOfContainer.has(c)) return 0;
  let v = vmmOfProc.get(proc);
  if (!v) {
    const io = proc.engine.ioasid;
    const sid = io.newSet(proc, proc.engine.vfioPasidQuota, 'vfio');
    if (sid < 0) return sid;
    v = { proc, set: io.liveSet(sid)!, refs: 0 };
    vmmOfProc.set(proc, v);
  }
  v.refs++;
  vmmOfContainer.set(c, v);
  return 0;
}

/**
 * Container `c` drops its reference (if it holds one). At the last reference every ACTIVE ID
 * of the VM set is freed in ascending order and the set is destroyed.
 */
export function vmmDrop(c: Container): void {
  const v = vmmOfContainer.get(c);
  if (!v) return;
  vmmOfContainer.delete(c);
  if (--v.refs > 0) return;
  vmmOfProc.delete(v.proc);
  v.proc.engine.ioasid.releaseSet(v.set, true);
}

/** Drops `c`'s reference when no attached group of it needs system-wide PASIDs any more. */
export function vmmDropIfUnused(c: Container): void {
  if (!c.iommu || !c.groups.some((g) => g.attached && g.syswidePasid)) vmmDrop(c);
}

/**
 * VFIO_IOMMU_PASID_REQUEST after the callback and driver checks (docs/conformance.md §15.7 from
 * step 2): the PASID, 0, or -errno. Nothing is ever written back into `b`.
 */
export function pasidRequest(c: Container, b: Uint8Array | null): number {
  if (!b || b.length < 16) return -EFAULT;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const argsz = v.getUint32(0, true);
  const flags = v.getUint32(4, true);
  const min = v.getUint32(8, true);
  const max = v.getUint32(12, true);
  if (argsz < 16 || (flags & ~VFIO_PASID_REQUEST_MASK) !== 0) return -EINVAL;
  if (min > max || min > PASID_MAX || max > PASID_MAX) return -EINVAL;
  const vmm = vmmOfContainer.get(c);
  if (!vmm) return -EOPNOTSUPP;
  const io = c.engine.ioasid;
  if (flags === ALLOC) {
    const id = io.allocIn(vmm.set.sid, Math.max(min, 1), max, null, 'vfio');
    return id === INV ? -ENOSPC : id; // -ENOMEM passes through
  }
  if (flags === FREE) {
    io.freeRange(vmm.set, min, max);
    return 0;
  }
  return -EINVAL;
}

/** The sid of `proc`'s VM set while a container holds its vmm, else -1 (for `serve`'s notifiers). */
export function vmSetOf(proc: Process): number {
  return vmmOfProc.get(proc)?.set.sid ?? -1;
}
