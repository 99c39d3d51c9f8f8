// Sparse per-page state of a KVM memslot: one table per slot and per kind (the writable bits of
// the MMU model, the u16 write-track counts). A slot may hold 2^31 - 1 pages, so the kernel's
// dense arrays (2 bytes of gfn_write_track per page: 4 GiB for such a slot) become a three-level
// table whose leaves exist only where a page was touched:
//
//   table ─► ┌────────────┬────────────┬────────────┬────────────┐
//            │ top (u32)  │ ntop (u32) │ leafBytes  │ leaves     │   16 bytes
//            └────────────┴────────────┴────────────┴────────────┘
//   top: ntop u32 ─► mid tables, 512 u32 ─► leaves of 2048 pages (256 bytes of bits, or
//                                            4096 bytes of u16 counts)
//
//   page index p (< 2^31) in the slot
//   ┌──────── 11 ────────┬──────── 9 ────────┬──────── 11 ────────┐
//   │ top: p >> 20       │ mid: (p >> 11)&511│ leaf: p & 2047     │
//   └────────────────────┴───────────────────┴────────────────────┘
// Cost: 4 bytes of top per 4 GiB of slot (8 KiB for the largest slot), 2 KiB per touched 4 GiB,
// one leaf per touched 8 MiB. An absent leaf reads as all zero.
import { alloc, allocZeroed, free } from './heap';

export const LEAF_SHIFT: u32 = 11;
export const LEAF_PAGES: u32 = 1 << LEAF_SHIFT;
const MID_ENTRIES: u32 = 512;
const TOP_SHIFT: u32 = 20;
/** Leaf bytes of a table of bits. */
export const BITS_LEAF: u32 = LEAF_PAGES >> 3;
/** Leaf bytes of a table of u16 counts. */
export const COUNTS_LEAF: u32 = LEAF_PAGES << 1;

/** A new empty table for `npages` pages with leaves of `leafBytes`; 0 when out of memory. */
export function spCreate(npages: u32, leafBytes: u32): usize {
  const ntop = (npages + (<u32>1 << TOP_SHIFT) - 1) >> TOP_SHIFT;
  const h = alloc(16);
  if (!h) return 0;
  const top = allocZeroed(<usize>max<u32>(ntop, 1) << 2);
  if (!top) {
    free(h);
    return 0;
  }
  store<u32>(h, <u32>top);
  store<u32>(h, ntop, 4);
  store<u32>(h, leafBytes, 8);
  store<u32>(h, 0, 12);
  return h;
}

/** Frees every mid table and leaf; the table reads all zero afterwards. */
export function spReset(h: usize): void {
  if (!h) return;
  const top = <usize>load<u32>(h);
  const ntop = load<u32>(h, 4);
  if (!load<u32>(h, 12)) return; // no leaves: nothing below the top but maybe empty mids
  for (let i: u32 = 0; i < ntop; i++) {
    const mid = <usize>load<u32>(top + (<usize>i << 2));
    if (!mid) continue;
    for (let j: u32 = 0; j < MID_ENTRIES; j++) {
      const leaf = <usize>load<u32>(mid + (<usize>j << 2));
      if (leaf) free(leaf);
    }
    free(mid);
    store<u32>(top + (<usize>i << 2), 0);
  }
  store<u32>(h, 0, 12);
}

/** Frees a table (0: nothing). */
export function spFree(h: usize): void {
  if (!h) return;
  spReset(h);
  // Mids without leaves can remain only when spReset returned early: free them too.
  const top = <usize>load<u32>(h);
  const ntop = load<u32>(h, 4);
  for (let i: u32 = 0; i < ntop; i++) {
    const mid = <usize>load<u32>(top + (<usize>i << 2));
    if (mid) free(mid);
  }
  free(top);
  free(h);
}

/** The leaf holding page p, or 0 when absent (all zero). */
@inline export function spLeaf(h: usize, p: u32): usize {
  const mid = <usize>load<u32>(<usize>load<u32>(h) + (<usize>(p >> TOP_SHIFT) << 2));
  if (!mid) return 0;
  return <usize>load<u32>(mid + (<usize>((p >> LEAF_SHIFT) & (MID_ENTRIES - 1)) << 2));
}

/** The leaf holding page p, made (zeroed) when absent; 0 when out of memory (nothing changed). */
export function spLeafMake(h: usize, p: u32): usize {
  const slot = <usize>load<u32>(h) + (<usize>(p >> TOP_SHIFT) << 2);
  let mid = <usize>load<u32>(slot);
  let newMid = false;
  if (!mid) {
    mid = allocZeroed(<usize>MID_ENTRIES << 2);
    if (!mid) return 0;
    newMid = true;
  }
  const at = mid + (<usize>((p >> LEAF_SHIFT) & (MID_ENTRIES - 1)) << 2);
  let leaf = <usize>load<u32>(at);
  if (!leaf) {
    leaf = allocZeroed(<usize>load<u32>(h, 8));
    if (!leaf) {
      if (newMid) free(mid);
      return 0;
    }
    store<u32>(at, <u32>leaf);
    store<u32>(h, load<u32>(h, 12) + 1, 12);
  }
  if (newMid) store<u32>(slot, <u32>mid);
  return leaf;
}

/** Bit p of a table of bits. */
@inline export function spTestBit(h: usize, p: u32): bool {
  if (!h) return false;
  const leaf = spLeaf(h, p);
  if (!leaf) return false;
  const i = p & (LEAF_PAGES - 1);
  return ((load<u8>(leaf + (<usize>i >> 3)) >> <u8>(i & 7)) & 1) != 0;
}

/** Sets bit p; false when out of memory (bit still clear). */
@inline export function spSetBit(h: usize, p: u32): bool {
  const leaf = spLeafMake(h, p);
  if (!leaf) return false;
  const i = p & (LEAF_PAGES - 1);
  const a = leaf + (<usize>i >> 3);
  store<u8>(a, load<u8>(a) | (<u8>1 << <u8>(i & 7)));
  return true;
}

/** Clears bit p (never allocates). */
@inline export function spClearBit(h: usize, p: u32): void {
  if (!h) return;
  const leaf = spLeaf(h, p);
  if (!leaf) return;
  const i = p & (LEAF_PAGES - 1);
  const a = leaf + (<usize>i >> 3);
  store<u8>(a, load<u8>(a) & ~(<u8>1 << <u8>(i & 7)));
}

/** The u16 at page p of a table of counts (0 when absent). */
@inline export function spCount(h: usize, p: u32): u32 {
  if (!h) return 0;
  const leaf = spLeaf(h, p);
  if (!leaf) return 0;
  return <u32>load<u16>(leaf + (<usize>(p & (LEAF_PAGES - 1)) << 1));
}

/** Address of the u16 of page p, its leaf made when absent; 0 when out of memory. */
export function spCountAt(h: usize, p: u32): usize {
  const leaf = spLeafMake(h, p);
  if (!leaf) return 0;
  return leaf + (<usize>(p & (LEAF_PAGES - 1)) << 1);
}

/** Leaves in use. */
export function spLeaves(h: usize): u32 {
  return h ? load<u32>(h, 12) : 0;
}
