// A VM's memory slots in the core: per address space a sorted array of gfn ranges (the lookup of
// a guest store), an id table (the lookup of a dirty-ring entry), and per slot its dirty bitmap
// (dense, as the kernel's) and its sparse per-page state (kvm_sparse.ts).
//
//   vm (32 bytes):   ids u32 @0 (2 × maxSlots u32 slot handles), maxSlots u32 @4,
//                    ranges[2] u32 @8/@12 (sorted arrays), count[2] u32 @16/@20, cap[2] @24/@28
//   range entry (24 bytes): base gfn u64 @0, last gfn u64 @8, slot u32 @16, pad @20
//   slot (48 bytes): npages u32 @0, flags u32 @4, base gfn u64 @8, uaddr u64 @16,
//                    bitmap u32 @24 (0: none), writable u32 @28 (sparse bits, ring mode),
//                    counts u32 @32 (sparse u16), tracked u32 @36 (pages with count > 0),
//                    slot number u32 @40 (as_id << 16 | id), backed u32 @44 (host range mapped)
import { alloc, allocZeroed, free, realloc } from './heap';
import { ENOENT, ENOMEM } from './constants';
import { bitmap_create, bitmap_free, bitmap_set_range } from './dirty_bitmap';
import { COUNTS_LEAF, spClearBit, spCount, spCountAt, spCreate, spFree, spReset } from './kvm_sparse';

export const S_NPAGES = 0;
export const S_FLAGS = 4;
export const S_BASE = 8;
export const S_UADDR = 16;
export const S_BITMAP = 24;
export const S_WRITABLE = 28;
export const S_COUNTS = 32;
export const S_TRACKED = 36;
export const S_NUM = 40;
export const S_BACKED = 44;
const SLOT_BYTES: usize = 48;
const RANGE_BYTES: usize = 24;
const LOG: u32 = 1;

@inline function rangesOf(vm: usize, as: u32): usize { return <usize>load<u32>(vm + 8 + (<usize>as << 2)); }
@inline function countOf(vm: usize, as: u32): u32 { return load<u32>(vm + 16 + (<usize>as << 2)); }
@inline function setCount(vm: usize, as: u32, n: u32): void { store<u32>(vm + 16 + (<usize>as << 2), n); }
@inline function idAt(vm: usize, as: u32, id: u32): usize {
  return <usize>load<u32>(vm) + ((<usize>as * <usize>load<u32>(vm, 4) + <usize>id) << 2);
}

/** Index of the first range of `as` whose base is above gfn. */
function upper(vm: usize, as: u32, gfn: u64): u32 {
  const r = rangesOf(vm, as);
  let lo: u32 = 0;
  let hi = countOf(vm, as);
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (load<u64>(r + <usize>mid * RANGE_BYTES) <= gfn) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The slot of address space `as` containing gfn, or 0. */
export function slotFind(vm: usize, as: u32, gfn: u64): usize {
  const i = upper(vm, as, gfn);
  if (!i) return 0;
  const e = rangesOf(vm, as) + <usize>(i - 1) * RANGE_BYTES;
  return gfn <= load<u64>(e, 8) ? <usize>load<u32>(e, 16) : 0;
}

/** The slot numbered as_id << 16 | id, or 0 (also for numbers out of range). */
export function slotById(vm: usize, num: u32): usize {
  const as = num >> 16;
  const id = num & 0xffff;
  if (as >= 2 || id >= load<u32>(vm, 4)) return 0;
  return <usize>load<u32>(idAt(vm, as, id));
}

function rangeRemove(vm: usize, as: u32, slot: usize): void {
  const r = rangesOf(vm, as);
  const n = countOf(vm, as);
  const i = upper(vm, as, load<u64>(slot, S_BASE)) - 1;
  memory.copy(r + <usize>i * RANGE_BYTES, r + <usize>(i + 1) * RANGE_BYTES, <usize>(n - i - 1) * RANGE_BYTES);
  setCount(vm, as, n - 1);
}

/** Inserts the slot's range; the array must have room. */
function rangeInsert(vm: usize, as: u32, slot: usize): void {
  const r = rangesOf(vm, as);
  const n = countOf(vm, as);
  const base = load<u64>(slot, S_BASE);
  const i = upper(vm, as, base);
  const at = r + <usize>i * RANGE_BYTES;
  memory.copy(at + RANGE_BYTES, at, <usize>(n - i) * RANGE_BYTES);
  store<u64>(at, base);
  store<u64>(at, base + <u64>load<u32>(slot, S_NPAGES) - 1, 8);
  store<u32>(at, <u32>slot, 16);
  store<u32>(at, 0, 20);
  setCount(vm, as, n + 1);
}

/** A new VM's slot tables for `maxSlots` ids per address space: the handle, or -ENOMEM. */
export function kvm_vm_create(maxSlots: u32): i32 {
  const vm = allocZeroed(32);
  if (!vm) return -ENOMEM;
  const ids = allocZeroed(<usize>maxSlots << 3);
  if (!ids) {
    free(vm);
    return -ENOMEM;
  }
  store<u32>(vm, <u32>ids);
  store<u32>(vm, maxSlots, 4);
  return <i32>vm;
}

function slotRelease(slot: usize): void {
  const bm = <usize>load<u32>(slot, S_BITMAP);
  if (bm) bitmap_free(bm);
  spFree(<usize>load<u32>(slot, S_WRITABLE));
  spFree(<usize>load<u32>(slot, S_COUNTS));
  free(slot);
}

/** Frees a VM's slots and tables. */
export function kvm_vm_free(vm: usize): void {
  for (let as: u32 = 0; as < 2; as++) {
    const r = rangesOf(vm, as);
    const n = countOf(vm, as);
    for (let i: u32 = 0; i < n; i++) slotRelease(<usize>load<u32>(r + <usize>i * RANGE_BYTES, 16));
    if (r) free(r);
  }
  free(<usize>load<u32>(vm));
  free(vm);
}

/** 1 when a slot of `as` other than `self` intersects gfns [base, last], else 0. */
export function kvm_slot_overlap(vm: usize, as: u32, base: u64, last: u64, self: usize): i32 {
  // The ranges are disjoint and sorted: only the one before `last`'s upper bound and its
  // predecessor (when that one is self) can reach into [base, last].
  let i = upper(vm, as, last);
  const r = rangesOf(vm, as);
  while (i > 0) {
    const e = r + <usize>(i - 1) * RANGE_BYTES;
    if (load<u64>(e, 8) < base) return 0;
    if (<usize>load<u32>(e, 16) != self) return 1;
    i--;
  }
  return 0;
}

/** A bitmap for the slot (LOG in bitmap mode), all set when `initiallySet`: 0 or -ENOMEM. */
function bitmapFor(npages: u32, initiallySet: u32): i32 {
  const bm = bitmap_create(npages);
  if (bm < 0) return bm;
  if (initiallySet) bitmap_set_range(bm, 0, npages);
  return bm;
}

/**
 * CREATE: a slot numbered `num` with its gfn range, host address and flags; a bitmap when
 * `withBitmap` (all set when `initiallySet`). Every page is protected and untracked. The slot
 * handle, or -ENOMEM with nothing made. The caller checked ids, ranges and overlaps.
 */
export function kvm_slot_create(vm: usize, num: u32, flags: u32, base: u64, npages: u32, uaddr: f64, withBitmap: u32, initiallySet: u32): i32 {
  const as = num >> 16;
  const slot = allocZeroed(SLOT_BYTES);
  if (!slot) return -ENOMEM;
  if (withBitmap) {
    const bm = bitmapFor(npages, initiallySet);
    if (bm < 0) {
      free(slot);
      return bm;
    }
    store<u32>(slot, <u32>bm, S_BITMAP);
  }
  const n = countOf(vm, as);
  const cap = load<u32>(vm + 24 + (<usize>as << 2));
  if (n == cap) {
    const ncap = cap ? cap << 1 : 8;
    const old = rangesOf(vm, as);
    const r = old ? realloc(old, <usize>ncap * RANGE_BYTES) : alloc(<usize>ncap * RANGE_BYTES);
    if (!r) {
      slotRelease(slot);
      return -ENOMEM;
    }
    store<u32>(vm + 8 + (<usize>as << 2), <u32>r);
    store<u32>(vm + 24 + (<usize>as << 2), ncap);
  }
  store<u32>(slot, npages, S_NPAGES);
  store<u32>(slot, flags, S_FLAGS);
  store<u64>(slot, base, S_BASE);
  store<u64>(slot, <u64>uaddr, S_UADDR);
  store<u32>(slot, num, S_NUM);
  rangeInsert(vm, as, slot);
  store<u32>(idAt(vm, as, num & 0xffff), <u32>slot);
  return <i32>slot;
}

/** DELETE: the slot leaves its tables and is freed with its bitmap and per-page state. */
export function kvm_slot_delete(vm: usize, slot: usize): void {
  const num = load<u32>(slot, S_NUM);
  rangeRemove(vm, num >> 16, slot);
  store<u32>(idAt(vm, num >> 16, num & 0xffff), 0);
  slotRelease(slot);
}

/**
 * MOVE and FLAGS_ONLY. `bitmap`: 0 keep the bitmap as it is, 1 free it, 2 make a new one (all
 * set when `initiallySet`). `newBase` differs for MOVE: the range moves, every count becomes 0 and
 * every page protected. `protect` != 0 protects every page (FLAGS_ONLY turning LOG on). Returns 0
 * or -ENOMEM with nothing changed.
 */
export function kvm_slot_update(vm: usize, slot: usize, flags: u32, newBase: u64, bitmap: u32, initiallySet: u32, protect: u32): i32 {
  let bm: i32 = 0;
  if (bitmap == 2) {
    bm = bitmapFor(load<u32>(slot, S_NPAGES), initiallySet);
    if (bm < 0) return bm;
  }
  const old = <usize>load<u32>(slot, S_BITMAP);
  if (bitmap == 1 || (bitmap == 2 && old)) {
    if (old) bitmap_free(old);
    store<u32>(slot, 0, S_BITMAP);
  }
  if (bitmap == 2) store<u32>(slot, <u32>bm, S_BITMAP);
  store<u32>(slot, flags, S_FLAGS);
  if (newBase != load<u64>(slot, S_BASE)) {
    const as = load<u32>(slot, S_NUM) >> 16;
    rangeRemove(vm, as, slot);
    store<u64>(slot, newBase, S_BASE);
    rangeInsert(vm, as, slot); // the array had this entry a moment ago: room enough
    spReset(<usize>load<u32>(slot, S_COUNTS));
    store<u32>(slot, 0, S_TRACKED);
    protect = 1;
  }
  if (protect) spReset(<usize>load<u32>(slot, S_WRITABLE));
  return 0;
}

/** Sets the slot's `backed` flag (its whole host range is anonymous memory). */
export function kvm_slot_set_backed(slot: usize, backed: u32): void {
  store<u32>(slot, backed, S_BACKED);
}

/** The slot's bitmap handle, 0 without one. */
export function kvm_slot_bitmap(slot: usize): i32 {
  return <i32>load<u32>(slot, S_BITMAP);
}

/** How many pages of the slot have a write-track count above 0 (for inspection). */
export function kvm_slot_tracked(slot: usize): i32 {
  return <i32>load<u32>(slot, S_TRACKED);
}

/** Write-track count of page p of the slot. */
export function kvm_track_count(slot: usize, p: u32): i32 {
  return <i32>spCount(<usize>load<u32>(slot, S_COUNTS), p);
}

/**
 * Adds `delta` (+1 or -1) to the count of page p, saturating at 65535 and 0; +1 protects the
 * page. 0, or -ENOMEM with nothing changed.
 */
export function kvm_track_add(slot: usize, p: u32, delta: i32): i32 {
  let counts = <usize>load<u32>(slot, S_COUNTS);
  if (delta < 0) {
    const c = spCount(counts, p);
    if (c == 0) return 0;
    store<u16>(spCountAt(counts, p), <u16>(c - 1)); // the leaf exists: cannot fail
    if (c == 1) store<u32>(slot, load<u32>(slot, S_TRACKED) - 1, S_TRACKED);
    return 0;
  }
  let made = false;
  if (!counts) {
    counts = spCreate(load<u32>(slot, S_NPAGES), COUNTS_LEAF);
    if (!counts) return -ENOMEM;
    made = true;
  }
  const at = spCountAt(counts, p);
  if (!at) {
    if (made) spFree(counts);
    return -ENOMEM;
  }
  if (made) store<u32>(slot, <u32>counts, S_COUNTS);
  const c = <u32>load<u16>(at);
  if (c < 0xffff) store<u16>(at, <u16>(c + 1));
  if (c == 0) store<u32>(slot, load<u32>(slot, S_TRACKED) + 1, S_TRACKED);
  protectPage(slot, p);
  return 0;
}

/** Protects page p (ring mode keeps the writable bits; bitmap mode needs none). */
@inline export function protectPage(slot: usize, p: u32): void {
  spClearBit(<usize>load<u32>(slot, S_WRITABLE), p);
}

/** Whether page p of the slot is write-tracked. */
@inline export function isTracked(slot: usize, p: u32): bool {
  return load<u32>(slot, S_TRACKED) != 0 && spCount(<usize>load<u32>(slot, S_COUNTS), p) != 0;
}

/** The slot handle for gfn in `as`, or -ENOENT (for the host's lookups). */
export function kvm_slot_find(vm: usize, as: u32, gfn: u64): i32 {
  const s = slotFind(vm, as, gfn);
  return s ? <i32>s : -ENOENT;
}
