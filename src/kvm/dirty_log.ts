// The dirty bitmap's ioctls: KVM_GET_DIRTY_LOG, KVM_CLEAR_DIRTY_LOG (docs/conformance.md
// §19.4), and KVM_ENABLE_CAP / KVM_CHECK_EXTENSION (§19.2). The bitmap words move in the core.
import { kvmUapi } from './uapi.js';
import { EFAULT, EINVAL, ENOENT, ENXIO } from '../../assembly/constants.js';
import type { IoctlArg } from '../file.js';
import { USER_TOP } from '../u64.js';
import { structIn } from './args.js';
import { enableDirtyRing } from './dirty_ring.js';
import type { Kvm } from './kvm.js';
import { hasBitmap, nbytes, type Memslot } from './memslot.js';
import type { Engine } from '../engine.js';

export const KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 = kvmUapi.KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2;
export const KVM_CAP_DIRTY_LOG_RING = kvmUapi.KVM_CAP_DIRTY_LOG_RING;
export const KVM_CAP_DIRTY_LOG_RING_ACQ_REL = kvmUapi.KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
export const KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE = kvmUapi.KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE;
export const KVM_DIRTY_LOG_INITIALLY_SET = kvmUapi.KVM_DIRTY_LOG_INITIALLY_SET;

/** KVM_CHECK_EXTENSION, the same on /dev/kvm and on a VM fd (docs/conformance.md §19.2). */
export function checkExtension(engine: Engine, cap: bigint): number {
  const vcpus = engine.kvmMaxVcpus;
  switch (cap) {
    case 3n: return 1; // USER_MEMORY
    case 9n: return vcpus; // NR_VCPUS
    case 10n: return engine.kvmUserMemSlots; // NR_MEMSLOTS
    case 66n: return vcpus; // MAX_VCPUS
    case 81n: return 1; // READONLY_MEM
    case 89n: return 1; // DEVICE_CTRL
    case 118n: return 2; // MULTI_ADDRESS_SPACE
    case 128n: return 4 * vcpus; // MAX_VCPU_ID
    case 168n: return 3; // MANUAL_DIRTY_LOG_PROTECT2
    case 192n: case 223n: return 1048576; // DIRTY_LOG_RING, _ACQ_REL: the largest ring in bytes
    default: return 0;
  }
}

/** KVM_ENABLE_CAP (docs/conformance.md §19.2, §19.4). */
export function enableCap(kvm: Kvm, arg: IoctlArg): number {
  const v = structIn(arg, 104, 'KVM_ENABLE_CAP');
  if (!v) return -EFAULT;
  const cap = v.getUint32(0, true);
  const flags = v.getUint32(4, true);
  const a0 = v.getBigUint64(8, true);
  if (cap === KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) {
    const allowed = a0 & 1n ? 3n : 1n;
    if (flags !== 0 || (a0 & ~allowed) !== 0n) return -EINVAL;
    kvm.manualProtect = Number(a0);
    return 0;
  }
  if (cap === KVM_CAP_DIRTY_LOG_RING || cap === KVM_CAP_DIRTY_LOG_RING_ACQ_REL) return enableDirtyRing(kvm, a0);
  return -EINVAL;
}

/** Steps 2–3 of GET and CLEAR: the slot number checked, or -errno. */
function logSlot(kvm: Kvm, num: number): number {
  if (kvm.ringSize !== 0) return -ENXIO;
  if (num >>> 16 >= 2 || (num & 0xffff) >= kvm.engine.kvmUserMemSlots) return -EINVAL;
  return 0;
}

/** The slot with a bitmap, or undefined (ENOENT). */
function bitmapSlot(kvm: Kvm, num: number): Memslot | undefined {
  const s = kvm.slots.get(num);
  return s && hasBitmap(kvm, s) ? s : undefined;
}

/** Whether [p, p + n) is a valid user range wholly mapped in the VM's process. */
function userOk(kvm: Kvm, p: bigint, n: number): boolean {
  return p + BigInt(n) <= USER_TOP && kvm.proc.isMapped(p, BigInt(n));
}

/**
 * KVM_GET_DIRTY_LOG (docs/conformance.md §19.4): the destination is checked before anything
 * changes.
 */
export function getDirtyLog(kvm: Kvm, arg: IoctlArg): number {
  const v = structIn(arg, 16, 'KVM_GET_DIRTY_LOG');
  if (!v) return -EFAULT;
  const num = v.getUint32(0, true);
  const p = v.getBigUint64(8, true);
  const e = logSlot(kvm, num);
  if (e) return e;
  const s = bitmapSlot(kvm, num);
  if (!s) return -ENOENT;
  if (!userOk(kvm, p, nbytes(s.npages))) return -EFAULT;
  const clear = kvm.manualProtect & 1 ? 0 : 1;
  return kvm.core.x.kvm_get_log(s.handle, kvm.proc.um.handle, Number(p), clear);
}

/** KVM_CLEAR_DIRTY_LOG (docs/conformance.md §19.4). */
export function clearDirtyLog(kvm: Kvm, arg: IoctlArg): number {
  const v = structIn(arg, 24, 'KVM_CLEAR_DIRTY_LOG');
  if (!v) return -EFAULT;
  const num = v.getUint32(0, true);
  const count = v.getUint32(4, true);
  const first = v.getBigUint64(8, true);
  const p = v.getBigUint64(16, true);
  const e = logSlot(kvm, num);
  if (e) return e;
  if (first & 63n) return -EINVAL;
  const s = bitmapSlot(kvm, num);
  if (!s) return -ENOENT;
  const n = BigInt(s.npages);
  const left = n - first;
  if (first > n || BigInt(count) > left || (BigInt(count) < left && count & 63)) return -EINVAL;
  const m = nbytes(count);
  if (m === 0) return 0;
  if (!userOk(kvm, p, m)) return -EFAULT;
  kvm.core.x.kvm_clear_log(s.handle, kvm.proc.um.handle, Number(p), Number(first / 64n), m / 8);
  return 0;
}
