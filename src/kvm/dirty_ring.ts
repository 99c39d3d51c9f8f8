// The dirty ring (virt/kvm/dirty_ring.c; docs/conformance.md §19.5): enabling it, mapping a vCPU's
// ring and KVM_RESET_DIRTY_RINGS. Entries are pushed and reset in the core
// (assembly/kvm_dirty_ring.ts), straight in the bytes the mapping shows.
import { kvmUapi } from './uapi.js';
import { E2BIG, EINVAL } from '../../assembly/constants.js';
import type { FileMapping } from '../file.js';
import type { Kvm } from './kvm.js';
import { KVM_MEM_LOG_DIRTY_PAGES } from './memslot.js';
import type { Vcpu } from './vcpu.js';

/** KVM_DIRTY_LOG_PAGE_OFFSET: the ring starts at this page of the vCPU fd. */
export const KVM_DIRTY_LOG_PAGE_OFFSET = kvmUapi.KVM_DIRTY_LOG_PAGE_OFFSET;
export const KVM_DIRTY_RING_RSVD_ENTRIES = kvmUapi.KVM_DIRTY_RING_RSVD_ENTRIES;
export const KVM_DIRTY_RING_MAX_ENTRIES = kvmUapi.KVM_DIRTY_RING_MAX_ENTRIES;
const MAX_BYTES = KVM_DIRTY_RING_MAX_ENTRIES * 16;

/**
 * KVM_ENABLE_CAP(KVM_CAP_DIRTY_LOG_RING[_ACQ_REL]) with args[0], the ring bytes per vCPU: 0 or
 * -EINVAL / -E2BIG (docs/conformance.md §19.5).
 */
export function enableDirtyRing(kvm: Kvm, arg0: bigint): number {
  const size = Number(arg0 & 0xffff_ffffn);
  if (size === 0 || (size & (size - 1)) !== 0) return -EINVAL;
  if (size < 4096) return -EINVAL;
  if (size > MAX_BYTES) return -E2BIG;
  if (kvm.ringSize !== 0) return -EINVAL;
  if (kvm.vcpus.length > 0) return -EINVAL;
  for (const s of kvm.slots.values()) if (s.flags & KVM_MEM_LOG_DIRTY_PAGES) return -EINVAL;
  kvm.ringSize = size;
  return 0;
}

/**
 * KVM_RESET_DIRTY_RINGS: every vCPU's ring in creation order; the total count reset, or -EINVAL
 * without a ring.
 */
export function resetDirtyRings(kvm: Kvm): number {
  if (kvm.ringSize === 0) return -EINVAL;
  let n = 0;
  for (const v of kvm.vcpus) n += kvm.core.x.kvm_ring_reset(v.ring, kvm.vm) >>> 0;
  return n;
}

/** Pages [first, first + pages) of a vCPU fd as ring bytes, or -EINVAL (pages outside the
 * ring, or no ring). */
export function ringMapping(vcpu: Vcpu, first: number, pages: number, drop: () => void): FileMapping | number {
  const ringPages = vcpu.kvm.ringSize / 4096;
  if (first < KVM_DIRTY_LOG_PAGE_OFFSET || first + pages > KVM_DIRTY_LOG_PAGE_OFFSET + ringPages) return -EINVAL;
  return new RingMapping(vcpu, (first - KVM_DIRTY_LOG_PAGE_OFFSET) * 4096, drop);
}

/** A mapping of ring bytes: reads and writes reach the live entries in the core. */
class RingMapping implements FileMapping {
  private readonly vcpu: Vcpu;
  /** Ring byte at mapping offset 0. */
  private readonly start: number;
  private readonly drop: () => void;

  constructor(vcpu: Vcpu, start: number, drop: () => void) {
    this.vcpu = vcpu;
    this.start = start;
    this.drop = drop;
  }

  private base(): number {
    return this.vcpu.kvm.core.x.kvm_ring_mem(this.vcpu.ring) + this.start;
  }

  read(offset: number, length: number): Uint8Array {
    const b = this.base() + offset;
    return this.vcpu.kvm.core.u8().slice(b, b + length);
  }

  write(offset: number, bytes: Uint8Array): void {
    this.vcpu.kvm.core.u8().set(bytes, this.base() + offset);
  }

  /** Ring mappings are not unmapped (docs/conformance.md §19.5): -EINVAL. */
  unmap(): number {
    return -EINVAL;
  }

  release(): void {
    this.drop();
  }
}
