// The ioctls of /dev/kvm and of a VM fd (docs/conformance.md §19): numbers to the functions that do
// them.
import { kvmUapi } from './uapi.js';
import { EINVAL, ENOTTY } from '../../assembly/constants.js';
import type { IoctlArg } from '../file.js';
import type { Process } from '../process.js';
import { u64Arg } from './args.js';
import { checkExtension, clearDirtyLog, enableCap, getDirtyLog } from './dirty_log.js';
import { resetDirtyRings } from './dirty_ring.js';
import type { Kvm } from './kvm.js';
import { createDevice } from './kvm_vfio.js';
import { setUserMemoryRegion } from './memslot.js';

export const KVM_API_VERSION = kvmUapi.KVM_API_VERSION;
export const KVMIO = kvmUapi.KVMIO;
export const KVM_GET_API_VERSION = kvmUapi.KVM_GET_API_VERSION;
export const KVM_CREATE_VM = kvmUapi.KVM_CREATE_VM;
export const KVM_CHECK_EXTENSION = kvmUapi.KVM_CHECK_EXTENSION;
export const KVM_CREATE_VCPU = kvmUapi.KVM_CREATE_VCPU;
export const KVM_GET_DIRTY_LOG = kvmUapi.KVM_GET_DIRTY_LOG;
export const KVM_SET_USER_MEMORY_REGION = kvmUapi.KVM_SET_USER_MEMORY_REGION;
export const KVM_ENABLE_CAP = kvmUapi.KVM_ENABLE_CAP;
export const KVM_CLEAR_DIRTY_LOG = kvmUapi.KVM_CLEAR_DIRTY_LOG;
export const KVM_RESET_DIRTY_RINGS = kvmUapi.KVM_RESET_DIRTY_RINGS;
export const KVM_CREATE_DEVICE = kvmUapi.KVM_CREATE_DEVICE;
export const KVM_SET_DEVICE_ATTR = kvmUapi.KVM_SET_DEVICE_ATTR;
export const KVM_GET_DEVICE_ATTR = kvmUapi.KVM_GET_DEVICE_ATTR;
export const KVM_HAS_DEVICE_ATTR = kvmUapi.KVM_HAS_DEVICE_ATTR;

/**
 * /dev/kvm: GET_API_VERSION, CHECK_EXTENSION; anything else EINVAL. (KVM_CREATE_VM makes a file:
 * src/kvm/files.ts answers it.)
 */
export function devIoctl(proc: Process, request: number, arg: IoctlArg): number {
  switch (request) {
    case KVM_GET_API_VERSION:
      return u64Arg(arg, 'KVM_GET_API_VERSION') === 0n ? KVM_API_VERSION : -EINVAL;
    case KVM_CHECK_EXTENSION:
      return checkExtension(proc.engine, u64Arg(arg, 'KVM_CHECK_EXTENSION'));
    default:
      return -EINVAL;
  }
}

/** A VM fd; anything not listed is ENOTTY. (KVM_CREATE_VCPU makes a file: src/kvm/files.ts.) */
export function vmIoctl(proc: Process, kvm: Kvm, request: number, arg: IoctlArg): number {
  switch (request) {
    case KVM_CHECK_EXTENSION:
      return checkExtension(proc.engine, u64Arg(arg, 'KVM_CHECK_EXTENSION'));
    case KVM_SET_USER_MEMORY_REGION:
      return setUserMemoryRegion(kvm, arg);
    case KVM_GET_DIRTY_LOG:
      return getDirtyLog(kvm, arg);
    case KVM_CLEAR_DIRTY_LOG:
      return clearDirtyLog(kvm, arg);
    case KVM_ENABLE_CAP:
      return enableCap(kvm, arg);
    case KVM_RESET_DIRTY_RINGS:
      return resetDirtyRings(kvm);
    case KVM_CREATE_DEVICE:
      return createDevice(proc, kvm, arg);
    default:
      return -ENOTTY;
  }
}
