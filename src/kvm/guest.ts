// The page walk in front of every guest access (docs/conformance.md §19.6): each page of a range
// must lie in a slot of the address space (writable for a store) whose host memory is anonymous
// memory of the VM's process. The walk goes slot by slot, never page by page.
import { EFAULT } from '../../assembly/constants.js';
import { PAGE_SIZE } from '../u64.js';
import type { Kvm } from './kvm.js';
import { KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY, slotOf, type Memslot } from './memslot.js';

/** One slot's share of a guest range. */
export interface Segment {
  readonly slot: Memslot;
  readonly gpa: bigint;
  /** Host address of gpa. */
  readonly hva: bigint;
  readonly bytes: number;
  /** Byte offset of this segment in the whole range. */
  readonly at: number;
}

/** The segments of [gpa, gpa + len) in address space `as`, or -EFAULT. */
export function segmentsOf(kvm: Kvm, as: number, gpa: bigint, len: number, write: boolean): Segment[] | number {
  const proc = kvm.proc;
  if (proc.exited) return -EFAULT;
  const end = gpa + BigInt(len);
  const out: Segment[] = [];
  let pos = gpa;
  while (pos < end) {
    const s = slotOf(kvm, as, pos / PAGE_SIZE);
    if (!s || (write && s.flags & KVM_MEM_READONLY)) return -EFAULT;
    const slotEnd = (s.base + BigInt(s.npages)) * PAGE_SIZE;
    const stop = end < slotEnd ? end : slotEnd;
    const hva = s.uaddr + (pos - s.base * PAGE_SIZE);
    if (!proc.isMapped(hva, stop - pos)) return -EFAULT;
    out.push({ slot: s, gpa: pos, hva, bytes: Number(stop - pos), at: Number(pos - gpa) });
    pos = stop;
  }
  return out;
}

/** Pages of the segments that lie in LOG slots (the ring entries a KVM-internal write pushes). */
export function loggedPages(segs: Segment[]): number {
  let n = 0;
  for (const g of segs) {
    if (!(g.slot.flags & KVM_MEM_LOG_DIRTY_PAGES)) continue;
    const first = g.gpa / PAGE_SIZE;
    const last = (g.gpa + BigInt(g.bytes) - 1n) / PAGE_SIZE;
    n += Number(last - first) + 1;
  }
  return n;
}

/** Marks bytes [from, to) of the range soft-dirty in the VM's process, segment by segment. */
export function markSoftDirty(kvm: Kvm, segs: Segment[], from: number, to: number): void {
  for (const g of segs) {
    const a = Math.max(from, g.at);
    const b = Math.min(to, g.at + g.bytes);
    if (a < b) kvm.proc.markSoftDirty(g.hva + BigInt(a - g.at), b - a);
  }
}

/** Frames the host memory of every segment (so the stores that follow cannot fail): 0 or -ENOMEM. */
export function reserveFrames(kvm: Kvm, segs: Segment[]): number {
  const x = kvm.core.x;
  for (const g of segs) {
    const r = x.um_reserve(kvm.proc.um.handle, Number(g.hva), g.bytes);
    if (r < 0) return r;
  }
  return 0;
}
