// A vCPU's dirty ring in the core: the entries live in one heap block that `proc.mmapFd` maps,
// so user space reads and writes the same bytes the core pushes and resets.
//
//   ring (16 bytes): mem u32 @0, entries E u32 @4, dirty_index u32 @8, reset_index u32 @12
//   entry (struct kvm_dirty_gfn, 16 bytes): flags u32 @0, slot u32 @4, offset u64 @8
import { allocZeroed, free } from './heap';
import { ENOMEM } from './constants';
import { protectPage, slotById, S_NPAGES } from './kvm_memslot';

/** KVM_DIRTY_RING_RSVD_ENTRIES: the soft limit is E minus this. */
export const RING_RSVD: u32 = 64;
const F_DIRTY: u32 = 1;
const F_RESET: u32 = 2;

@inline export function ringUsed(ring: usize): u32 {
  return load<u32>(ring, 8) - load<u32>(ring, 12);
}

@inline export function ringSoftFull(ring: usize): bool {
  return ringUsed(ring) >= load<u32>(ring, 4) - RING_RSVD;
}

/** Pushes {slot num, offset} (docs/conformance.md §19.5): slot and offset, then flags = DIRTY. */
@inline export function ringPush(ring: usize, num: u32, offset: u32): void {
  const d = load<u32>(ring, 8);
  const e = <usize>load<u32>(ring) + (<usize>(d & (load<u32>(ring, 4) - 1)) << 4);
  store<u32>(e, num, 4);
  store<u64>(e, <u64>offset, 8);
  store<u32>(e, F_DIRTY);
  store<u32>(ring, d + 1, 8);
}

/** A zeroed ring of `bytes` (a power of two, 4096..1 MiB): the handle, or -ENOMEM. */
export function kvm_ring_create(bytes: u32): i32 {
  const ring = allocZeroed(16);
  if (!ring) return -ENOMEM;
  const mem = allocZeroed(bytes);
  if (!mem) {
    free(ring);
    return -ENOMEM;
  }
  store<u32>(ring, <u32>mem);
  store<u32>(ring, bytes >> 4, 4);
  return <i32>ring;
}

/** Frees a ring. */
export function kvm_ring_free(ring: usize): void {
  free(<usize>load<u32>(ring));
  free(ring);
}

/** Address of the ring's entries. */
export function kvm_ring_mem(ring: usize): i32 {
  return <i32>load<u32>(ring);
}

/** dirty_index − reset_index. */
export function kvm_ring_used(ring: usize): u32 {
  return ringUsed(ring);
}

/**
 * KVM_RESET_DIRTY_RINGS for one ring (docs/conformance.md §19.5): while an unreset entry has
 * RESET in its flags, clear its flags and protect the page it names (if that slot and offset
 * exist). The count reset.
 */
export function kvm_ring_reset(ring: usize, vm: usize): u32 {
  const mem = <usize>load<u32>(ring);
  const mask = load<u32>(ring, 4) - 1;
  const dirty = load<u32>(ring, 8);
  let reset = load<u32>(ring, 12);
  let n: u32 = 0;
  while (reset != dirty) {
    const e = mem + (<usize>(reset & mask) << 4);
    if (!(load<u32>(e) & F_RESET)) break;
    const num = load<u32>(e, 4);
    const off = load<u64>(e, 8);
    store<u32>(e, 0);
    reset++;
    n++;
    const slot = slotById(vm, num);
    if (slot && off < <u64>load<u32>(slot, S_NPAGES)) protectPage(slot, <u32>off);
  }
  store<u32>(ring, reset, 12);
  return n;
}
