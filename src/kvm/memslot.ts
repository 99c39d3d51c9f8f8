// Memory slots: KVM_SET_USER_MEMORY_REGION with every check in order (docs/conformance.md §19.3),
// its effects (in the core: assembly/kvm_memslot.ts), and the lookups every guest access uses.
import { kvmUapi } from './uapi.js';
import { EEXIST, EFAULT, EINVAL } from '../../assembly/constants.js';
import type { IoctlArg } from '../file.js';
import { PAGE_SIZE, USER_TOP } from '../u64.js';
import { structIn } from './args.js';
import { callbackScope, rethrow } from './callbacks.js';
import type { Kvm } from './kvm.js';

export const KVM_MEM_LOG_DIRTY_PAGES = kvmUapi.KVM_MEM_LOG_DIRTY_PAGES;
export const KVM_MEM_READONLY = kvmUapi.KVM_MEM_READONLY;
/** KVM_MEM_MAX_NR_PAGES. */
export const KVM_MEM_MAX_NR_PAGES = kvmUapi.KVM_MEM_MAX_NR_PAGES;
/** The last gfn a slot may reach: the last page lies below 2^52. */
const MAX_GFN = (1n << 40n) - 1n;
const TOP64 = 1n << 64n;

/** A memslot as the host sees it (its per-page state lives in the core). */
export interface Memslot {
  /** as_id << 16 | id. */
  readonly num: number;
  readonly as: number;
  readonly id: number;
  flags: number;
  /** First gfn. */
  base: bigint;
  readonly npages: number;
  /** Host address of page 0 in the owning process. */
  readonly uaddr: bigint;
  /** The core's slot handle. */
  readonly handle: number;
}

/** Bitmap bytes of a slot of n pages: 8·⌈n/64⌉. */
export function nbytes(npages: number): number {
  return Math.ceil(npages / 64) * 8;
}

/** Whether the slot has a dirty bitmap (LOG in bitmap mode). */
export function hasBitmap(kvm: Kvm, s: Memslot): boolean {
  return (s.flags & KVM_MEM_LOG_DIRTY_PAGES) !== 0 && kvm.ringSize === 0;
}

/** The slot of address space `as` containing gfn, or undefined. */
export function slotOf(kvm: Kvm, as: number, gfn: bigint): Memslot | undefined {
  if (kvm.slots.size === 0) return undefined;
  const h = kvm.core.x.kvm_slot_find(kvm.vm, as, gfn);
  return h < 0 ? undefined : kvm.byHandle.get(h);
}

/** The host address of gfn in its address-space-0 slot unless READONLY; else -EFAULT as bigint. */
export function gfnToHva(kvm: Kvm, gfn: bigint): bigint {
  const s = slotOf(kvm, 0, gfn);
  if (!s || s.flags & KVM_MEM_READONLY) return -BigInt(EFAULT);
  return s.uaddr + (gfn - s.base) * PAGE_SIZE;
}

/** Tells the core whether the slot's whole host range is anonymous memory of its process. */
export function refreshBacked(kvm: Kvm, s: Memslot): boolean {
  const ok = !kvm.proc.exited && kvm.proc.isMapped(s.uaddr, BigInt(s.npages) * PAGE_SIZE);
  kvm.core.x.kvm_slot_set_backed(s.handle, ok ? 1 : 0);
  return ok;
}

/** KVM_SET_USER_MEMORY_REGION (docs/conformance.md §19.3): 0 or -errno. */
export function setUserMemoryRegion(kvm: Kvm, arg: IoctlArg): number {
  const v = structIn(arg, 32, 'KVM_SET_USER_MEMORY_REGION');
  if (!v) return -EFAULT;
  const slotField = v.getUint32(0, true);
  const flags = v.getUint32(4, true);
  const gpa = v.getBigUint64(8, true);
  const size = v.getBigUint64(16, true);
  const uaddr = v.getBigUint64(24, true);
  const id = slotField & 0xffff;
  const as = slotField >>> 16;
  if (flags & ~(KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY)) return -EINVAL;
  if (id >= kvm.engine.kvmUserMemSlots) return -EINVAL;
  if (size % PAGE_SIZE !== 0n || gpa % PAGE_SIZE !== 0n) return -EINVAL;
  if (uaddr % PAGE_SIZE !== 0n || uaddr + size > USER_TOP) return -EINVAL;
  if (as >= 2) return -EINVAL;
  if (gpa + size >= TOP64) return -EINVAL;
  const npagesBig = size / PAGE_SIZE;
  if (npagesBig > BigInt(KVM_MEM_MAX_NR_PAGES)) return -EINVAL;
  const npages = Number(npagesBig);
  const old = kvm.slots.get(slotField);
  if (size === 0n) return old ? deleteSlot(kvm, old) : -EINVAL;
  const base = gpa / PAGE_SIZE;
  const last = base + npagesBig - 1n;
  if (!old) {
    if (kvm.core.x.kvm_slot_overlap(kvm.vm, as, base, last, 0)) return -EEXIST;
    if (last > MAX_GFN) return -EINVAL;
    return createSlot(kvm, slotField, flags, base, npages, uaddr);
  }
  if (uaddr !== old.uaddr || npages !== old.npages || ((flags ^ old.flags) & KVM_MEM_READONLY)) return -EINVAL;
  if (base !== old.base) {
    if (kvm.core.x.kvm_slot_overlap(kvm.vm, as, base, last, old.handle)) return -EEXIST;
    if (kvm.nodes.length > 0) return -EINVAL;
    if (last > MAX_GFN) return -EINVAL;
    return moveSlot(kvm, old, flags, base);
  }
  if (flags === old.flags) return 0;
  return flagsOnly(kvm, old, flags);
}

function initiallySet(kvm: Kvm): number {
  return kvm.manualProtect & 2 ? 1 : 0;
}

/** A new slot: every page protected, counts 0, a bitmap when it logs in bitmap mode. */
function createSlot(kvm: Kvm, num: number, flags: number, base: bigint, npages: number, uaddr: bigint): number {
  const withBitmap = flags & KVM_MEM_LOG_DIRTY_PAGES && kvm.ringSize === 0 ? 1 : 0;
  const h = kvm.core.x.kvm_slot_create(kvm.vm, num, flags, base, npages, Number(uaddr), withBitmap, initiallySet(kvm));
  if (h < 0) return h;
  const s: Memslot = { num, as: num >>> 16, id: num & 0xffff, flags, base, npages, uaddr, handle: h };
  kvm.slots.set(num, s);
  kvm.byHandle.set(h, s);
  refreshBacked(kvm, s);
  return 0;
}

/** A move: new base, every page protected, counts zeroed; the bitmap kept, freed or made. */
function moveSlot(kvm: Kvm, s: Memslot, flags: number, base: bigint): number {
  const had = hasBitmap(kvm, s);
  const wants = flags & KVM_MEM_LOG_DIRTY_PAGES && kvm.ringSize === 0;
  const op = !wants ? (had ? 1 : 0) : had ? 0 : 2;
  const r = kvm.core.x.kvm_slot_update(kvm.vm, s.handle, flags, base, op, initiallySet(kvm), 1);
  if (r < 0) return r;
  s.flags = flags;
  s.base = base;
  return 0;
}

/** Only the flags differ: LOG turned on (a bitmap, pages protected) or off (the bitmap freed). */
function flagsOnly(kvm: Kvm, s: Memslot, flags: number): number {
  const on = (flags & KVM_MEM_LOG_DIRTY_PAGES) !== 0 && (s.flags & KVM_MEM_LOG_DIRTY_PAGES) === 0;
  const off = (flags & KVM_MEM_LOG_DIRTY_PAGES) === 0 && (s.flags & KVM_MEM_LOG_DIRTY_PAGES) !== 0;
  let op = 0;
  let protect = 0;
  if (on) {
    const bitmap = kvm.ringSize === 0;
    op = bitmap ? 2 : 0;
    protect = bitmap && initiallySet(kvm) ? 0 : 1;
  } else if (off && hasBitmap(kvm, s)) {
    op = 1;
  }
  const r = kvm.core.x.kvm_slot_update(kvm.vm, s.handle, flags, s.base, op, initiallySet(kvm), protect);
  if (r < 0) return r;
  s.flags = flags;
  return 0;
}

/** A delete: the slot goes, then trackRemoveRegion runs on every node, newest first. */
function deleteSlot(kvm: Kvm, s: Memslot): number {
  kvm.core.x.kvm_slot_delete(kvm.vm, s.handle);
  kvm.slots.delete(s.num);
  kvm.byHandle.delete(s.handle);
  const calls: (() => void)[] = [];
  for (const n of kvm.nodes) {
    if (n.trackRemoveRegion) calls.push(() => n.trackRemoveRegion!(s.base, s.npages));
  }
  rethrow(callbackScope(kvm.engine).runAll('track', calls));
  return 0;
}
