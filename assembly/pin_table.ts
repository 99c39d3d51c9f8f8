// The pin table: per-page reference counts of the pages of ONE vfio_dma pinned through
// vfio_pin_pages (the kernel's per-dma tree of `vfio_pfn`). Keys are page offsets from the dma's
// start in PAGE_SIZE units (u64); values are u32 refcounts, always > 0 (a key at 0 is removed).
//
// Pins are sparse (thousands to millions of pages out of hundreds of millions), so the table is
// hashed: open addressing with linear probing and backward-shift deletion (no tombstones), a
// non-power-of-two capacity mapped by a multiplicative hash and a fixed-point range reduction,
// grown by 1.5x when the load would pass 0.8. Right after a 1.5x growth the load is 0.53, so a page
// costs at most 15 bytes of slots (measured by bench/pin_table.bench.ts). Keys below 2^32 (every
// dma up to 16 TiB) live in 8-byte slots; the rare keys at or above 2^32 in a second table of
// 16-byte slots with the same code, generic over the key type.
//
// Table header (32 bytes, from `alloc`), two sub-tables of 16 bytes each:
//   @0  lo: slots u32, cap u32, size u32, -      keys < 2^32
//   @16 hi: slots u32, cap u32, size u32, -      keys >= 2^32
//
// Slots (count 0 marks an empty slot, so every key value is usable):
//   lo  ├ key u32 @0 ┬ count u32 @4 ┤                        8 bytes
//   hi  ├ key u64 @0             ┬ count u32 @8 ┬ pad @12 ┤  16 bytes
//
// Every call that may grow a sub-table allocates the new slot arrays (both, if both grow) before
// it changes anything, so -ENOMEM leaves the table, its memory and the dirty bitmap unchanged.
// A pin call that fails on its budget undoes its pins in reverse order, which restores the exact
// slot layout, and if it grew a sub-table it returns to the old array (kept until the call ends).
import { EINVAL, ENOMEM } from './constants';
import { alloc, allocZeroed, free } from './heap';
import { nbitsOf, wordsOf } from './dirty_bitmap';

export const LO: usize = 0;
export const HI: usize = 16;
const LO_LIMIT: u64 = 0xffffffff; // the largest key of the lo sub-table
const MIN_CAP: u32 = 8;
const MAX_BYTES: u64 = 0x7fff0000; // one slot array stays below the allocator's largest request
const GOLDEN: u64 = 0x9e3779b97f4a7c15;

// ---- bits in a dirty bitmap --------------------------------------------------------------------

/**
 * Sets bit `b` of the dirty bitmap `bm`: bit b % 8 of byte b / 8 of its little-endian words. A bit
 * past the bitmap's nbits (its header's first u32) is not written: callers keep pages inside the
 * dma, and a store past the bitmap would corrupt the heap.
 */
@inline export function markBit(bm: usize, b: u64): void {
  if (b >= <u64>nbitsOf(bm)) return;
  const at = wordsOf(bm) + <usize>(b >> 3);
  store<u8>(at, load<u8>(at) | (<u8>1 << <u8>(b & 7)));
}

// ---- one sub-table, generic over its key type (u32 or u64) -------------------------------------

@inline export function slotBytes<K>(): usize { return sizeof<K>() << 1; }
@inline export function slots(h: usize): usize { return <usize>load<u32>(h); }
@inline export function capOf(h: usize): u32 { return load<u32>(h, 4); }
@inline export function sizeOf(h: usize): u32 { return load<u32>(h, 8); }
@inline function setSize(h: usize, n: u32): void { store<u32>(h, n, 8); }
/** The home slot of `key` among `cap` slots: Fibonacci hash, then (hash * cap) >> 32. */
@inline function homeOf(key: u64, cap: u32): u32 {
  return <u32>((((key * GOLDEN) >> 32) * <u64>cap) >> 32);
}
@inline export function slotAt<K>(h: usize, i: u32): usize { return slots(h) + <usize>i * slotBytes<K>(); }
@inline export function countAt<K>(s: usize): u32 { return load<u32>(s + sizeof<K>()); }
@inline function setCountAt<K>(s: usize, c: u32): void { store<u32>(s + sizeof<K>(), c); }
/** The most entries `cap` slots may hold: a load of 0.8. */
@inline function limitOf(cap: u32): u64 { return <u64>cap - <u64>cap / 5; }

/** The slot holding `key`, or 0. */
function findSlot<K>(h: usize, key: K): usize {
  const cap = capOf(h);
  if (cap == 0) return 0;
  let i = homeOf(<u64>key, cap);
  while (true) {
    const s = slotAt<K>(h, i);
    if (countAt<K>(s) == 0) return 0;
    if (load<K>(s) == key) return s;
    if (++i == cap) i = 0;
  }
  return 0;
}

/**
 * Pins `key` once. Returns 0 (an existing page: count + 1), 1 (a new page inserted with count 1)
 * or -1 (a new page was needed but `allowNew` is false; nothing changed). Capacity is reserved.
 */
function pinKey<K>(h: usize, key: K, allowNew: bool): i32 {
  const cap = capOf(h);
  let i = homeOf(<u64>key, cap);
  while (true) {
    const s = slotAt<K>(h, i);
    const c = countAt<K>(s);
    if (c == 0) {
      if (!allowNew) return -1;
      store<K>(s, key);
      setCountAt<K>(s, 1);
      setSize(h, sizeOf(h) + 1);
      return 1;
    }
    if (load<K>(s) == key) {
      setCountAt<K>(s, c + 1);
      return 0;
    }
    if (++i == cap) i = 0;
  }
  return 0;
}

/** Empties slot index `hole` and shifts the rest of its probe cluster back (Knuth's R). */
function removeAt<K>(h: usize, hole: u32): void {
  const cap = capOf(h);
  let i = hole;
  let j = hole;
  while (true) {
    if (++j == cap) j = 0;
    const s = slotAt<K>(h, j);
    if (countAt<K>(s) == 0) break;
    const k = homeOf(<u64>load<K>(s), cap);
    // The entry at j may move to i only if its home is not cyclically inside (i, j].
    if (i <= j ? i < k && k <= j : i < k || k <= j) continue;
    memory.copy(slotAt<K>(h, i), s, slotBytes<K>());
    i = j;
  }
  setCountAt<K>(slotAt<K>(h, i), 0);
  setSize(h, sizeOf(h) - 1);
}

/** Unpins `key` once. Returns 1 when its count reached 0 (released), else 0 (also if absent). */
function unpinKey<K>(h: usize, key: K): i32 {
  const s = findSlot<K>(h, key);
  if (!s) return 0;
  const c = countAt<K>(s);
  if (c > 1) {
    setCountAt<K>(s, c - 1);
    return 0;
  }
  removeAt<K>(h, <u32>((s - slots(h)) / slotBytes<K>()));
  return 1;
}

/**
 * The capacity a sub-table needs to take `extra` more entries: 0 when it already can, -1 when no
 * slot array can be that large.
 */
function capFor<K>(h: usize, extra: u64): i64 {
  const cap = <u64>capOf(h);
  const want = <u64>sizeOf(h) + extra;
  if (want <= limitOf(<u32>cap)) return 0;
  // 1.5x, or enough for `want` at a load of 0.8 when that is more.
  const ncap = max(max(cap + (cap >> 1), <u64>MIN_CAP), want + (want >> 2) + 1);
  if (ncap * slotBytes<K>() >= MAX_BYTES) return -1;
  return <i64>ncap;
}

/** Moves every entry of the sub-table into `ns` (zeroed, `ncap` slots) and installs it. */
function rehashInto<K>(h: usize, ns: usize, ncap: u32): void {
  const old = slots(h);
  const cap = capOf(h);
  for (let i: u32 = 0; i < cap; i++) {
    const s = old + <usize>i * slotBytes<K>();
    const c = countAt<K>(s);
    if (c == 0) continue;
    const key = load<K>(s);
    let j = homeOf(<u64>key, ncap);
    while (countAt<K>(ns + <usize>j * slotBytes<K>()) != 0) if (++j == ncap) j = 0;
    memory.copy(ns + <usize>j * slotBytes<K>(), s, slotBytes<K>());
  }
  store<u32>(h, <u32>ns);
  store<u32>(h, ncap, 4);
}

/** After removals: frees an empty sub-table's slots, or rehashes a sparse one to a load of 0.5. */
function shrink<K>(h: usize): void {
  const cap = capOf(h);
  const n = sizeOf(h);
  if (n == 0) {
    free(slots(h));
    store<u32>(h, 0);
    store<u32>(h, 0, 4);
    return;
  }
  if (cap <= 64 || <u64>n * 5 >= <u64>cap) return; // load still >= 0.2
  const ncap = max(n << 1, MIN_CAP);
  const ns = allocZeroed(<usize>ncap * slotBytes<K>());
  if (!ns) return; // shrinking is optional: keep the larger array
  const old = slots(h);
  rehashInto<K>(h, ns, ncap);
  free(old);
}

// ---- per-page operations dispatched on the key's width ------------------------------------------

@inline function pinPage(p: usize, page: u64, allowNew: bool): i32 {
  return page <= LO_LIMIT ? pinKey<u32>(p + LO, <u32>page, allowNew) : pinKey<u64>(p + HI, page, allowNew);
}
@inline function unpinPage(p: usize, page: u64): i32 {
  return page <= LO_LIMIT ? unpinKey<u32>(p + LO, <u32>page) : unpinKey<u64>(p + HI, page);
}
@inline export function countOf(p: usize, page: u64): u32 {
  const s = page <= LO_LIMIT ? findSlot<u32>(p + LO, <u32>page) : findSlot<u64>(p + HI, page);
  return s ? (page <= LO_LIMIT ? countAt<u32>(s) : countAt<u64>(s)) : 0;
}
/** Page i of a pin or unpin call: first + i for a range (pages == 0), else the batch's u64 i. */
@inline function pageAt(first: u64, pages: usize, i: u32): u64 {
  return pages ? load<u64>(pages + (<usize>i << 3)) : first + i;
}

// ---- growth for a pin call: both sub-tables, all or nothing ------------------------------------

// Per sub-table, the slot array a pin call replaced, kept until the call ends:
// {grew u32, slots u32, cap u32, -} for lo @0, hi @16.
const oldArrays = memory.data(32, 16);

/** Grows both sub-tables for `nlo` and `nhi` new entries; false (nothing changed) on failure. */
function grow(p: usize, nlo: u64, nhi: u64): bool {
  const clo = capFor<u32>(p + LO, nlo);
  const chi = capFor<u64>(p + HI, nhi);
  if (clo < 0 || chi < 0) return false;
  const slo = clo ? allocZeroed(<usize>clo * 8) : 0;
  if (clo && !slo) return false;
  const shi = chi ? allocZeroed(<usize>chi * 16) : 0;
  if (chi && !shi) {
    free(slo);
    return false;
  }
  for (let s: usize = 0; s < 32; s += 16) {
    const fresh = s ? shi : slo;
    store<u32>(oldArrays + s, fresh ? 1 : 0);
    store<u32>(oldArrays + s, load<u32>(p + s), 4);
    store<u32>(oldArrays + s, load<u32>(p + s, 4), 8);
  }
  if (slo) rehashInto<u32>(p + LO, slo, <u32>clo);
  if (shi) rehashInto<u64>(p + HI, shi, <u32>chi);
  return true;
}

/** Ends a pin call: frees the replaced arrays (success) or returns to them (undone call). */
function endGrow(p: usize, undone: bool): void {
  for (let s: usize = 0; s < 32; s += 16) {
    if (!load<u32>(oldArrays + s)) continue;
    store<u32>(oldArrays + s, 0);
    const old = <usize>load<u32>(oldArrays + s, 4);
    if (!undone) {
      free(old);
      continue;
    }
    free(slots(p + s));
    store<u32>(p + s, <u32>old);
    store<u32>(p + s, load<u32>(oldArrays + s, 8), 4);
  }
}

/**
 * Reserves room for the new pages of a pin call: at most min(pages, budget) per sub-table, or,
 * when that would grow a table, the pages not pinned yet (a lookup pass; repeats count twice).
 */
function reserveFor(p: usize, first: u64, pages: usize, n: u32, budget: i32): bool {
  const cap = budget >= 0 ? <u64>budget : <u64>-1;
  let lo: u64 = 0;
  let hi: u64 = 0;
  for (let pass = 0; pass < 2; pass++) {
    lo = 0;
    hi = 0;
    if (!pages && pass == 0) {
      lo = first > LO_LIMIT ? 0 : min(<u64>n, LO_LIMIT - first + 1);
      hi = <u64>n - lo;
    } else {
      for (let i: u32 = 0; i < n; i++) {
        const page = pageAt(first, pages, i);
        if (pass == 0 || countOf(p, page) == 0) {
          if (page <= LO_LIMIT) lo++;
          else hi++;
        }
      }
    }
    lo = min(lo, cap);
    hi = min(hi, cap);
    const fits = <u64>sizeOf(p + LO) + lo <= limitOf(capOf(p + LO));
    if (fits && <u64>sizeOf(p + HI) + hi <= limitOf(capOf(p + HI))) break;
  }
  return grow(p, lo, hi);
}

/** The pin loop of pins_pin_range (pages == 0) and pins_pin_batch. */
function pinPages(p: usize, first: u64, pages: usize, n: u32, budget: i32, bm: usize, shift: u32): i32 {
  if (n > 0x7fffffff || (bm != 0 && shift > 63)) return -EINVAL;
  if (n == 0) return 0;
  if (!pages && first + (<u64>n - 1) < first) return -EINVAL;
  if (!reserveFor(p, first, pages, n, budget)) return -ENOMEM;
  let created: i32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const page = pageAt(first, pages, i);
    const r = pinPage(p, page, budget < 0 || created < budget);
    if (r > 0) {
      created++;
      if (bm) markBit(bm, page >> shift);
    } else if (r < 0) {
      // Undo in reverse: each removal is the exact inverse of its insertion.
      for (let j = i; j > 0; j--) unpinPage(p, pageAt(first, pages, j - 1));
      endGrow(p, true);
      return -ENOMEM;
    }
  }
  endGrow(p, false);
  return created;
}

// ---- exports ------------------------------------------------------------------------------------

/** Creates an empty pin table. Returns its handle, or -ENOMEM. */
export function pins_create(): i32 {
  const p = alloc(32);
  if (!p) return -ENOMEM;
  memory.fill(p, 0, 32);
  return <i32>p;
}

/** Drops every pin and frees the slot arrays (the table stays usable). */
export function pins_clear(p: usize): void {
  free(slots(p + LO));
  free(slots(p + HI));
  memory.fill(p, 0, 32);
}

/** Frees a pin table. */
export function pins_free(p: usize): void {
  if (!p) return;
  pins_clear(p);
  free(p);
}

/** Distinct pinned pages: the pages pinning charged to locked memory. */
export function pins_size(p: usize): i32 {
  return <i32>(sizeOf(p + LO) + sizeOf(p + HI));
}

/** The refcount of `page` (0 when it is not pinned). */
export function pins_count(p: usize, page: u64): i32 {
  return <i32>countOf(p, page);
}

/**
 * Pins pages first .. first+n-1 in order. An existing page gains a reference; a new page needs one
 * unit of `budget` (budget < 0: unlimited) and, when `bm` != 0, sets bit (page >> shift) of that
 * dirty bitmap. When the budget runs out at page i, pages 0..i-1 are unpinned again and the call
 * returns -ENOMEM; bits it set stay set (docs/conformance.md §6.2). Returns the number of new
 * pages, -ENOMEM (budget, or no memory: then nothing changed and no bit is set) or -EINVAL (n >=
 * 2^31, shift > 63 with a bitmap, or pages past 2^64 - 1).
 */
export function pins_pin_range(p: usize, first: u64, n: u32, budget: i32, bm: usize, shift: u32): i32 {
  return pinPages(p, first, 0, n, budget, bm, shift);
}

/**
 * `pins_pin_range` for `n` arbitrary u64 pages at `pages` (repeats allowed), pinned in order.
 * Same budget, bitmap, unwind and errno rules.
 */
export function pins_pin_batch(p: usize, pages: usize, n: u32, budget: i32, bm: usize, shift: u32): i32 {
  return pinPages(p, 0, pages, n, budget, bm, shift);
}

/**
 * Unpins, in one sub-table, every pinned key in [first, last] once, walking the slots instead of
 * the pages. The walk starts after an empty slot and re-reads a slot after a removal: the backward
 * shift only moves entries from later in the same cluster, which the walk has not reached yet.
 */
function unpinScan<K>(h: usize, first: u64, last: u64): i32 {
  const cap = capOf(h);
  if (sizeOf(h) == 0) return 0;
  let e: u32 = 0;
  while (countAt<K>(slotAt<K>(h, e)) != 0) e++; // the load is at most 0.8: an empty slot exists
  let released = 0;
  let i = e;
  for (let step: u32 = 1; step < cap; ) {
    if (++i == cap) i = 0;
    let s = slotAt<K>(h, i);
    let c = countAt<K>(s);
    while (c != 0) {
      const key = <u64>load<K>(s);
      if (key < first || key > last) break;
      if (c > 1) {
        setCountAt<K>(s, c - 1);
        break;
      }
      removeAt<K>(h, i);
      released++;
      c = countAt<K>(s); // an entry from later in the cluster may have moved here
    }
    step++;
  }
  return released;
}

/**
 * Unpins pages first .. first+n-1 once each; pages that are not pinned are ignored. Returns how
 * many reached 0 (released: the pages to uncharge). Never fails.
 */
export function pins_unpin_range(p: usize, first: u64, n: u32): i32 {
  if (n == 0) return 0;
  const last = first + (<u64>n - 1) < first ? <u64>-1 : first + (<u64>n - 1);
  let released = 0;
  if (<u64>n > <u64>capOf(p + LO) + <u64>capOf(p + HI)) {
    released = unpinScan<u32>(p + LO, first, last) + unpinScan<u64>(p + HI, first, last);
  } else {
    for (let page = first; ; page++) {
      released += unpinPage(p, page);
      if (page == last) break;
    }
  }
  shrink<u32>(p + LO);
  shrink<u64>(p + HI);
  return released;
}

/** `pins_unpin_range` for `n` arbitrary u64 pages at `pages`, in order (repeats allowed). */
export function pins_unpin_batch(p: usize, pages: usize, n: u32): i32 {
  let released = 0;
  for (let i: u32 = 0; i < n; i++) released += unpinPage(p, load<u64>(pages + (<usize>i << 3)));
  shrink<u32>(p + LO);
  shrink<u64>(p + HI);
  return released;
}
