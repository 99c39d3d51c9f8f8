// The IOVA range tree's nodes: their layout, field access and the node pool. The algorithms
// (search, insert, remove) and the exports are in assembly/iova_tree.ts.
//
// Tree header (32 bytes, from `alloc`):
//   @0  pool    u32  address of the node array, 0 while the tree is empty
//   @4  cap     u32  nodes the pool holds
//   @8  used    u32  nodes ever handed out; indices below it are live or on the free list
//   @12 free    u32  head of the free-node list (NIL when empty), linked through node @4
//   @16 root    u32  index of the root node
//   @20 height  u32  0: empty; 1: the root is a leaf; h: h-1 inner levels above the leaves
//   @24 count   u32  ranges stored
//   @28 nfree   u32  nodes on the free list
//
// Leaf node (24 entries, structure of arrays so a binary search touches only the keys):
//   ├──────┬──────┬──────┬──────┬──────────────┬──────────────┬──────────────┬─────┤
//   │ n    │ prev │ next │ -    │ iova[24] u64 │ last[24] u64 │ value[24] u32│ pad │
//   │ @0   │ @4   │ @8   │ @12  │ @16          │ @208         │ @400         │ @496│
//   n: entries; prev/next: neighbouring leaves in key order (NIL at the ends)
//
// Inner node (42 children):
//   ├──────┬────────────┬──────────────┬───────────────┤
//   │ n    │ -          │ key[41] u64  │ child[42] u32 │
//   │ @0   │ @4         │ @16          │ @344          │ @512
//   n: children; key[i] <= every iova in child i+1, and every iova in child i is < key[i].
//   Keys are lower bounds, not always the exact minimum (a removal does not update them), so a
//   predecessor search that finds nothing in its leaf steps back to the previous leaf.
import { alloc, free, realloc } from './heap';

export const NIL: u32 = 0xffffffff;
export const NODE_SHIFT: u32 = 9;

export const LEAF_MAX: i32 = 24;
export const LEAF_MIN: i32 = 12;
export const L_IOVA: usize = 16;
export const L_LAST: usize = 208;
export const L_VAL: usize = 400;

export const INNER_MAX: i32 = 42;
export const INNER_MIN: i32 = 21;
export const I_KEY: usize = 16;
export const I_CHILD: usize = 344;

export const MAX_HEIGHT: i32 = 32; // 21^31 leaves is far beyond what memory can hold
export const MIN_POOL: u32 = 2;
export const MAX_VALUE: u32 = 0x7fffffff; // results are i32: a value must not look like -errno

// ---- node access -----------------------------------------------------------------------------

@inline export function pool(t: usize): usize { return <usize>load<u32>(t); }
@inline export function nodeAt(t: usize, i: u32): usize { return pool(t) + (<usize>i << NODE_SHIFT); }
@inline export function indexOf(t: usize, node: usize): u32 { return <u32>((node - pool(t)) >> NODE_SHIFT); }
@inline export function count(node: usize): i32 { return load<i32>(node); }
@inline export function setCount(node: usize, n: i32): void { store<i32>(node, n); }
@inline export function leafIova(leaf: usize, i: i32): u64 { return load<u64>(leaf + L_IOVA + (<usize>i << 3)); }
@inline export function leafLast(leaf: usize, i: i32): u64 { return load<u64>(leaf + L_LAST + (<usize>i << 3)); }
@inline export function leafVal(leaf: usize, i: i32): u32 { return load<u32>(leaf + L_VAL + (<usize>i << 2)); }
@inline export function innerKey(node: usize, i: i32): u64 { return load<u64>(node + I_KEY + (<usize>i << 3)); }
@inline export function setKey(node: usize, i: i32, k: u64): void { store<u64>(node + I_KEY + (<usize>i << 3), k); }
@inline export function innerChild(node: usize, i: i32): u32 { return load<u32>(node + I_CHILD + (<usize>i << 2)); }
@inline export function setChild(node: usize, i: i32, c: u32): void { store<u32>(node + I_CHILD + (<usize>i << 2), c); }

/** Index of the first of the `n` u64 at `base` that is greater than `key` (unsigned). */
@inline export function upperBound(base: usize, n: i32, key: u64): i32 {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (load<u64>(base + (<usize>mid << 3)) <= key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** `upperBound` without data-dependent branches (the halving steps compile to `select`). */
@inline export function upperBoundFlat(base: usize, n: i32, key: u64): i32 {
  if (n <= 0) return 0;
  let lo = base;
  let len = n;
  while (len > 1) {
    const half = len >> 1;
    lo = select<usize>(lo + (<usize>half << 3), lo, load<u64>(lo + (<usize>half << 3) - 8) <= key);
    len -= half;
  }
  return <i32>((lo - base) >> 3) + <i32>(load<u64>(lo) <= key);
}

/** Moves entries [from, from+n) of leaf `src` to index `to` of leaf `dst` (may overlap). */
export function moveEntries(dst: usize, to: i32, src: usize, from: i32, n: i32): void {
  if (n <= 0) return;
  memory.copy(dst + L_IOVA + (<usize>to << 3), src + L_IOVA + (<usize>from << 3), <usize>n << 3);
  memory.copy(dst + L_LAST + (<usize>to << 3), src + L_LAST + (<usize>from << 3), <usize>n << 3);
  memory.copy(dst + L_VAL + (<usize>to << 2), src + L_VAL + (<usize>from << 2), <usize>n << 2);
}

/** Inserts an entry at `pos` of a leaf holding `n` (< LEAF_MAX) entries. */
export function insertEntry(leaf: usize, pos: i32, n: i32, iova: u64, last: u64, value: u32): void {
  moveEntries(leaf, pos + 1, leaf, pos, n - pos);
  store<u64>(leaf + L_IOVA + (<usize>pos << 3), iova);
  store<u64>(leaf + L_LAST + (<usize>pos << 3), last);
  store<u32>(leaf + L_VAL + (<usize>pos << 2), value);
  setCount(leaf, n + 1);
}

/** Moves keys [from, from+nk) and children [from, from+nc) of inner `src` to index `to` of `dst`. */
export function moveInner(dst: usize, to: i32, src: usize, from: i32, nk: i32, nc: i32): void {
  if (nk > 0) memory.copy(dst + I_KEY + (<usize>to << 3), src + I_KEY + (<usize>from << 3), <usize>nk << 3);
  if (nc > 0) memory.copy(dst + I_CHILD + (<usize>to << 2), src + I_CHILD + (<usize>from << 2), <usize>nc << 2);
}

// ---- the node pool ---------------------------------------------------------------------------

/** Makes sure `need` nodes can be taken without growing; false (nothing changed) on failure. */
export function reserve(t: usize, need: u32): bool {
  const cap = load<u32>(t, 4);
  const avail = load<u32>(t, 28) + cap - load<u32>(t, 8);
  if (avail >= need) return true;
  let ncap = max(cap + (cap >> 1), max(cap + need - avail, MIN_POOL));
  if (<u64>ncap << NODE_SHIFT >= 0x7fff0000) return false;
  const p = realloc(pool(t), <usize>ncap << NODE_SHIFT);
  if (!p) return false;
  store<u32>(t, <u32>p);
  store<u32>(t, ncap, 4);
  return true;
}

/** Takes a node from the reserved pool; returns its index. */
export function takeNode(t: usize): u32 {
  const head = load<u32>(t, 12);
  if (head != NIL) {
    store<u32>(t, load<u32>(nodeAt(t, head), 4), 12);
    store<u32>(t, load<u32>(t, 28) - 1, 28);
    return head;
  }
  const i = load<u32>(t, 8);
  store<u32>(t, i + 1, 8);
  return i;
}

/** Returns node `i` to the free list. */
export function dropNode(t: usize, i: u32): void {
  store<u32>(nodeAt(t, i), load<u32>(t, 12), 4);
  store<u32>(t, i, 12);
  store<u32>(t, load<u32>(t, 28) + 1, 28);
}

/** Empties the tree and frees its pool. */
export function reset(t: usize): void {
  free(pool(t));
  memory.fill(t, 0, 32);
  store<u32>(t, NIL, 12);
  store<u32>(t, NIL, 16);
}
