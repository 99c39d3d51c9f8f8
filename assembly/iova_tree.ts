// The IOVA range tree: non-overlapping inclusive u64 ranges [iova, last], each carrying a u32
// value (the host's dma id). A B+tree keyed by `iova`, O(log n) for insert, remove and lookup.
//
// Nodes are 512 bytes and live in one pool that grows by realloc, so links are node indices, not
// addresses. Every call that may grow the pool does so before it changes anything, so -ENOMEM
// leaves the tree as it was. The pool is freed when the tree becomes empty.
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
import { EEXIST, EINVAL, ENOENT, ENOMEM } from './constants';
import { alloc, free, realloc } from './heap';

const NIL: u32 = 0xffffffff;
const NODE_SHIFT: u32 = 9;

const LEAF_MAX: i32 = 24;
const LEAF_MIN: i32 = 12;
const L_IOVA: usize = 16;
const L_LAST: usize = 208;
const L_VAL: usize = 400;

const INNER_MAX: i32 = 42;
const INNER_MIN: i32 = 21;
const I_KEY: usize = 16;
const I_CHILD: usize = 344;

const MAX_HEIGHT: i32 = 32; // 21^31 leaves is far beyond what memory can hold
const MIN_POOL: u32 = 2;
const MAX_VALUE: u32 = 0x7fffffff; // results are i32: a value must not look like -errno

// Descent path of the last insert/remove: node index and child position at each inner level.
const pathNode = memory.data(MAX_HEIGHT * 4, 16);
const pathPos = memory.data(MAX_HEIGHT * 4, 16);

// Result of `seek`: the leaf (address) and entry index found.
let gLeaf: usize = 0;
let gIdx: i32 = 0;

// ---- node access -----------------------------------------------------------------------------

@inline function pool(t: usize): usize { return <usize>load<u32>(t); }
@inline function nodeAt(t: usize, i: u32): usize { return pool(t) + (<usize>i << NODE_SHIFT); }
@inline function indexOf(t: usize, node: usize): u32 { return <u32>((node - pool(t)) >> NODE_SHIFT); }
@inline function count(node: usize): i32 { return load<i32>(node); }
@inline function setCount(node: usize, n: i32): void { store<i32>(node, n); }
@inline function leafIova(leaf: usize, i: i32): u64 { return load<u64>(leaf + L_IOVA + (<usize>i << 3)); }
@inline function leafLast(leaf: usize, i: i32): u64 { return load<u64>(leaf + L_LAST + (<usize>i << 3)); }
@inline function leafVal(leaf: usize, i: i32): u32 { return load<u32>(leaf + L_VAL + (<usize>i << 2)); }
@inline function innerKey(node: usize, i: i32): u64 { return load<u64>(node + I_KEY + (<usize>i << 3)); }
@inline function setKey(node: usize, i: i32, k: u64): void { store<u64>(node + I_KEY + (<usize>i << 3), k); }
@inline function innerChild(node: usize, i: i32): u32 { return load<u32>(node + I_CHILD + (<usize>i << 2)); }
@inline function setChild(node: usize, i: i32, c: u32): void { store<u32>(node + I_CHILD + (<usize>i << 2), c); }
@inline function pathNodeAt(d: i32): u32 { return load<u32>(pathNode + (<usize>d << 2)); }
@inline function pathPosAt(d: i32): i32 { return load<i32>(pathPos + (<usize>d << 2)); }

/** Index of the first of the `n` u64 at `base` that is greater than `key` (unsigned). */
@inline function upperBound(base: usize, n: i32, key: u64): i32 {
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
@inline function upperBoundFlat(base: usize, n: i32, key: u64): i32 {
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
function moveEntries(dst: usize, to: i32, src: usize, from: i32, n: i32): void {
  if (n <= 0) return;
  memory.copy(dst + L_IOVA + (<usize>to << 3), src + L_IOVA + (<usize>from << 3), <usize>n << 3);
  memory.copy(dst + L_LAST + (<usize>to << 3), src + L_LAST + (<usize>from << 3), <usize>n << 3);
  memory.copy(dst + L_VAL + (<usize>to << 2), src + L_VAL + (<usize>from << 2), <usize>n << 2);
}

/** Inserts an entry at `pos` of a leaf holding `n` (< LEAF_MAX) entries. */
function insertEntry(leaf: usize, pos: i32, n: i32, iova: u64, last: u64, value: u32): void {
  moveEntries(leaf, pos + 1, leaf, pos, n - pos);
  store<u64>(leaf + L_IOVA + (<usize>pos << 3), iova);
  store<u64>(leaf + L_LAST + (<usize>pos << 3), last);
  store<u32>(leaf + L_VAL + (<usize>pos << 2), value);
  setCount(leaf, n + 1);
}

/** Moves keys [from, from+nk) and children [from, from+nc) of inner `src` to index `to` of `dst`. */
function moveInner(dst: usize, to: i32, src: usize, from: i32, nk: i32, nc: i32): void {
  if (nk > 0) memory.copy(dst + I_KEY + (<usize>to << 3), src + I_KEY + (<usize>from << 3), <usize>nk << 3);
  if (nc > 0) memory.copy(dst + I_CHILD + (<usize>to << 2), src + I_CHILD + (<usize>from << 2), <usize>nc << 2);
}

// ---- the node pool ---------------------------------------------------------------------------

/** Makes sure `need` nodes can be taken without growing; false (nothing changed) on failure. */
function reserve(t: usize, need: u32): bool {
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
function takeNode(t: usize): u32 {
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
function dropNode(t: usize, i: u32): void {
  store<u32>(nodeAt(t, i), load<u32>(t, 12), 4);
  store<u32>(t, i, 12);
  store<u32>(t, load<u32>(t, 28) + 1, 28);
}

/** Empties the tree and frees its pool. */
function reset(t: usize): void {
  free(pool(t));
  memory.fill(t, 0, 32);
  store<u32>(t, NIL, 12);
  store<u32>(t, NIL, 16);
}

// ---- search ----------------------------------------------------------------------------------

/** Finds the entry with the largest iova <= addr into gLeaf/gIdx; false when there is none. */
function seek(t: usize, addr: u64): bool {
  const h = load<i32>(t, 20);
  if (h == 0) return false;
  let node = nodeAt(t, load<u32>(t, 16));
  for (let d = 1; d < h; d++) {
    const i = upperBound(node + I_KEY, count(node) - 1, addr);
    node = nodeAt(t, innerChild(node, i));
  }
  return settle(t, node, upperBound(node + L_IOVA, count(node), addr) - 1);
}

/** Sets gLeaf/gIdx to entry j of `leaf`, or (j < 0) to the previous leaf's last; false if none. */
@inline function settle(t: usize, leaf: usize, j: i32): bool {
  if (j >= 0) {
    gLeaf = leaf;
    gIdx = j;
    return true;
  }
  const prev = load<u32>(leaf, 4);
  if (prev == NIL) return false;
  gLeaf = nodeAt(t, prev);
  gIdx = count(gLeaf) - 1;
  return true;
}

/** The value at gLeaf/gIdx when that range contains `addr`, else -ENOENT. */
@inline function valueIfIn(addr: u64): i32 {
  return leafLast(gLeaf, gIdx) >= addr ? <i32>leafVal(gLeaf, gIdx) : -ENOENT;
}

/** The leftmost leaf's address (the tree must not be empty). */
function firstLeaf(t: usize): usize {
  const h = load<i32>(t, 20);
  let node = nodeAt(t, load<u32>(t, 16));
  for (let d = 1; d < h; d++) node = nodeAt(t, innerChild(node, 0));
  return node;
}

/** Moves gLeaf/gIdx to the next entry; false at the end. */
function stepNext(t: usize): bool {
  if (gIdx + 1 < count(gLeaf)) {
    gIdx++;
    return true;
  }
  const next = load<u32>(gLeaf, 8);
  if (next == NIL) return false;
  gLeaf = nodeAt(t, next);
  gIdx = 0;
  return true;
}

/** Positions gLeaf/gIdx at the lowest range overlapping [a, b]; false when none does. */
function seekFirst(t: usize, a: u64, b: u64): bool {
  if (a > b || load<i32>(t, 20) == 0) return false;
  if (seek(t, a)) {
    if (leafLast(gLeaf, gIdx) >= a) return true;
    if (!stepNext(t)) return false;
  } else {
    gLeaf = firstLeaf(t);
    gIdx = 0;
  }
  return leafIova(gLeaf, gIdx) <= b;
}

/** Descends to the leaf where `key` belongs, recording the path; returns the leaf's address. */
function descend(t: usize, key: u64): usize {
  const h = load<i32>(t, 20);
  let idx = load<u32>(t, 16);
  for (let d = 0; d < h - 1; d++) {
    const node = nodeAt(t, idx);
    const i = upperBound(node + I_KEY, count(node) - 1, key);
    store<u32>(pathNode + (<usize>d << 2), idx);
    store<i32>(pathPos + (<usize>d << 2), i);
    idx = innerChild(node, i);
  }
  store<u32>(pathNode + (<usize>(h - 1) << 2), idx);
  return nodeAt(t, idx);
}

// ---- insert ----------------------------------------------------------------------------------

/** Inserts `key` and child `c` after child `pos` of an inner node that is not full. */
function insertKey(node: usize, pos: i32, key: u64, c: u32): void {
  const n = count(node);
  moveInner(node, pos + 1, node, pos, n - 1 - pos, 0);
  moveInner(node, pos + 2, node, pos + 1, 0, n - 1 - pos);
  setKey(node, pos, key);
  setChild(node, pos + 1, c);
  setCount(node, n + 1);
}

/** Inserts separator `key` and child `c` right after child `pos` of the inner node at depth d. */
function insertInner(t: usize, d: i32, pos: i32, key: u64, c: u32): void {
  if (d < 0) {
    // The root split: a new root above the old one.
    const r = takeNode(t);
    const root = nodeAt(t, r);
    setCount(root, 2);
    setKey(root, 0, key);
    setChild(root, 0, load<u32>(t, 16));
    setChild(root, 1, c);
    store<u32>(t, r, 16);
    store<i32>(t, load<i32>(t, 20) + 1, 20);
    return;
  }
  const node = nodeAt(t, pathNodeAt(d));
  const n = count(node);
  if (n < INNER_MAX) {
    insertKey(node, pos, key, c);
    return;
  }
  // Split first: 21 children stay, 21 move right, and the key between them goes up. The new pair
  // then joins the half that holds child `pos` (its key sorts below `up` when pos < 21).
  const half = INNER_MAX >> 1;
  const ri = takeNode(t);
  const right = nodeAt(t, ri);
  moveInner(right, 0, node, half, n - 1 - half, n - half);
  setCount(right, n - half);
  setCount(node, half);
  const up = innerKey(node, half - 1);
  if (pos < half) insertKey(node, pos, key, c);
  else insertKey(right, pos - half, key, c);
  insertInner(t, d - 1, d > 0 ? pathPosAt(d - 1) : 0, up, ri);
}

/**
 * Inserts [iova, last] with `value`. Returns 0, -EINVAL (last < iova, or a value above 2^31-1),
 * -EEXIST (overlaps a stored range; touching is not overlapping) or -ENOMEM (tree unchanged).
 */
export function tree_insert(t: usize, iova: u64, last: u64, value: u32): i32 {
  if (last < iova || value > MAX_VALUE) return -EINVAL;
  // The only range that can overlap is the one with the largest iova <= last.
  if (seek(t, last) && leafLast(gLeaf, gIdx) >= iova) return -EEXIST;
  const h = load<i32>(t, 20);
  if (h == 0) {
    if (!reserve(t, 1)) return -ENOMEM;
    store<u32>(t, 1, 24);
    const r = takeNode(t);
    const leaf = nodeAt(t, r);
    store<u32>(leaf, NIL, 4);
    store<u32>(leaf, NIL, 8);
    insertEntry(leaf, 0, 0, iova, last, value);
    store<u32>(t, r, 16);
    store<i32>(t, 1, 20);
    return 0;
  }
  // New nodes needed: one per full node from the leaf up, plus a new root if the root is full.
  let leaf = descend(t, iova);
  let need: u32 = 0;
  if (count(leaf) == LEAF_MAX) {
    need = 1;
    let d = h - 2;
    while (d >= 0 && count(nodeAt(t, pathNodeAt(d))) == INNER_MAX) {
      need++;
      d--;
    }
    if (d < 0) need++;
  }
  if (!reserve(t, need)) return -ENOMEM;
  store<u32>(t, load<u32>(t, 24) + 1, 24);
  leaf = nodeAt(t, pathNodeAt(h - 1)); // the pool may have moved
  const n = count(leaf);
  const pos = upperBound(leaf + L_IOVA, n, iova);
  if (n < LEAF_MAX) {
    insertEntry(leaf, pos, n, iova, last, value);
    return 0;
  }
  // Split a full leaf with a new right neighbour: 13 / 12 entries, or 24 / 1 when appending past
  // the last leaf (ascending maps then fill their leaves).
  const leftN = pos == n && load<u32>(leaf, 8) == NIL ? LEAF_MAX : (LEAF_MAX + 2) >> 1;
  const ri = takeNode(t);
  const right = nodeAt(t, ri);
  const cut = pos < leftN ? leftN - 1 : leftN; // entries from `cut` on move right
  moveEntries(right, 0, leaf, cut, n - cut);
  setCount(right, n - cut);
  setCount(leaf, cut);
  if (pos < leftN) insertEntry(leaf, pos, cut, iova, last, value);
  else insertEntry(right, pos - cut, n - cut, iova, last, value);
  const next = load<u32>(leaf, 8);
  store<u32>(right, indexOf(t, leaf), 4);
  store<u32>(right, next, 8);
  if (next != NIL) store<u32>(nodeAt(t, next), ri, 4);
  store<u32>(leaf, ri, 8);
  const d = h - 2;
  insertInner(t, d, d >= 0 ? pathPosAt(d) : 0, leafIova(right, 0), ri);
  return 0;
}

// ---- remove ----------------------------------------------------------------------------------

/** Removes key pos-1 and child pos (pos >= 1) from an inner node. */
function removeChild(node: usize, pos: i32): void {
  const n = count(node);
  moveInner(node, pos - 1, node, pos, n - 1 - pos, 0);
  moveInner(node, pos, node, pos + 1, 0, n - 1 - pos);
  setCount(node, n - 1);
}

/** Unlinks leaf `i` from the leaf chain and frees it. */
function dropLeaf(t: usize, i: u32): void {
  const leaf = nodeAt(t, i);
  const prev = load<u32>(leaf, 4);
  const next = load<u32>(leaf, 8);
  if (prev != NIL) store<u32>(nodeAt(t, prev), next, 8);
  if (next != NIL) store<u32>(nodeAt(t, next), prev, 4);
  dropNode(t, i);
}

/** Restores the minimum fill of the inner node at depth d after it lost a child. */
function fixInner(t: usize, d: i32): void {
  const ni = pathNodeAt(d);
  const node = nodeAt(t, ni);
  const n = count(node);
  if (d == 0) {
    if (n == 1) {
      store<u32>(t, innerChild(node, 0), 16);
      store<i32>(t, load<i32>(t, 20) - 1, 20);
      dropNode(t, ni);
    }
    return;
  }
  if (n >= INNER_MIN) return;
  const parent = nodeAt(t, pathNodeAt(d - 1));
  const pos = pathPosAt(d - 1);
  const pn = count(parent);
  if (pos > 0) {
    const left = nodeAt(t, innerChild(parent, pos - 1));
    const ln = count(left);
    if (ln > INNER_MIN) {
      // Rotate right: the left sibling's last child moves over, through the parent's key.
      moveInner(node, 1, node, 0, n - 1, n);
      setChild(node, 0, innerChild(left, ln - 1));
      setKey(node, 0, innerKey(parent, pos - 1));
      setKey(parent, pos - 1, innerKey(left, ln - 2));
      setCount(left, ln - 1);
      setCount(node, n + 1);
      return;
    }
  }
  if (pos + 1 < pn) {
    const right = nodeAt(t, innerChild(parent, pos + 1));
    const rn = count(right);
    if (rn > INNER_MIN) {
      // Rotate left: the right sibling's first child moves over, through the parent's key.
      setKey(node, n - 1, innerKey(parent, pos));
      setChild(node, n, innerChild(right, 0));
      setKey(parent, pos, innerKey(right, 0));
      moveInner(right, 0, right, 1, rn - 2, rn - 1);
      setCount(right, rn - 1);
      setCount(node, n + 1);
      return;
    }
  }
  // Merge with a sibling: child l + 1 into child l, pulling the separating key down.
  const l = pos > 0 ? pos - 1 : pos;
  const left = nodeAt(t, innerChild(parent, l));
  const ri = innerChild(parent, l + 1);
  const right = nodeAt(t, ri);
  const ln = count(left);
  const rn = count(right);
  setKey(left, ln - 1, innerKey(parent, l));
  moveInner(left, ln, right, 0, rn - 1, rn);
  setCount(left, ln + rn);
  dropNode(t, ri);
  removeChild(parent, l + 1);
  fixInner(t, d - 1);
}

/** Restores the minimum fill of the leaf at depth h-1 after it lost an entry. */
function fixLeaf(t: usize, h: i32): void {
  const d = h - 1;
  if (d == 0) return; // a root leaf may hold any number of entries
  const li = pathNodeAt(d);
  const leaf = nodeAt(t, li);
  const n = count(leaf);
  if (n >= LEAF_MIN) return;
  const parent = nodeAt(t, pathNodeAt(d - 1));
  const pos = pathPosAt(d - 1);
  const pn = count(parent);
  if (pos > 0) {
    const left = nodeAt(t, innerChild(parent, pos - 1));
    const ln = count(left);
    if (ln > LEAF_MIN) {
      moveEntries(leaf, 1, leaf, 0, n);
      moveEntries(leaf, 0, left, ln - 1, 1);
      setCount(left, ln - 1);
      setCount(leaf, n + 1);
      setKey(parent, pos - 1, leafIova(leaf, 0));
      return;
    }
  }
  if (pos + 1 < pn) {
    const right = nodeAt(t, innerChild(parent, pos + 1));
    const rn = count(right);
    if (rn > LEAF_MIN) {
      moveEntries(leaf, n, right, 0, 1);
      moveEntries(right, 0, right, 1, rn - 1);
      setCount(right, rn - 1);
      setCount(leaf, n + 1);
      setKey(parent, pos, leafIova(right, 0));
      return;
    }
  }
  // Merge with a sibling: child l + 1 into child l.
  const l = pos > 0 ? pos - 1 : pos;
  const left = nodeAt(t, innerChild(parent, l));
  const ri = innerChild(parent, l + 1);
  const right = nodeAt(t, ri);
  const ln = count(left);
  moveEntries(left, ln, right, 0, count(right));
  setCount(left, ln + count(right));
  dropLeaf(t, ri);
  removeChild(parent, l + 1);
  fixInner(t, d - 1);
}

/** Removes the range that starts exactly at `iova`. Returns its value, or -ENOENT. */
export function tree_remove(t: usize, iova: u64): i32 {
  const h = load<i32>(t, 20);
  if (h == 0) return -ENOENT;
  const leaf = descend(t, iova);
  const n = count(leaf);
  const j = upperBound(leaf + L_IOVA, n, iova) - 1;
  if (j < 0 || leafIova(leaf, j) != iova) return -ENOENT;
  const value = leafVal(leaf, j);
  const left = load<u32>(t, 24) - 1;
  if (left == 0) {
    reset(t);
    return <i32>value;
  }
  store<u32>(t, left, 24);
  moveEntries(leaf, j, leaf, j + 1, n - 1 - j);
  setCount(leaf, n - 1);
  fixLeaf(t, h);
  return <i32>value;
}

// ---- lookups and the object's lifecycle ------------------------------------------------------

/** Creates an empty tree. Returns its handle, or -ENOMEM. */
export function tree_create(): i32 {
  const t = alloc(32);
  if (!t) return -ENOMEM;
  store<u32>(t, 0);
  reset(t);
  return <i32>t;
}

/** Frees a tree and its nodes. */
export function tree_free(t: usize): void {
  if (!t) return;
  free(pool(t));
  free(t);
}

/** Ranges stored. */
export function tree_count(t: usize): i32 {
  return load<i32>(t, 24);
}

/** The value of the range containing `addr`, or -ENOENT. */
export function tree_find(t: usize, addr: u64): i32 {
  return seek(t, addr) ? valueIfIn(addr) : -ENOENT;
}

/** The value of the lowest range overlapping [a, b] (inclusive), or -ENOENT. */
export function tree_first(t: usize, a: u64, b: u64): i32 {
  return seekFirst(t, a, b) ? <i32>leafVal(gLeaf, gIdx) : -ENOENT;
}

/**
 * Writes the ranges overlapping [a, b] in ascending order, at most `max`, as 24-byte records
 * {iova u64 @0, last u64 @8, value u32 @16, pad u32 @20} at `out`. Returns how many were written;
 * a caller that got `max` resumes with a = last + 1 of the final record.
 */
export function tree_collect(t: usize, a: u64, b: u64, out: usize, max: i32): i32 {
  if (max <= 0 || !seekFirst(t, a, b)) return 0;
  let n = 0;
  do {
    if (leafIova(gLeaf, gIdx) > b) break;
    const rec = out + <usize>n * 24;
    store<u64>(rec, leafIova(gLeaf, gIdx));
    store<u64>(rec, leafLast(gLeaf, gIdx), 8);
    store<u32>(rec, leafVal(gLeaf, gIdx), 16);
    store<u32>(rec, 0, 20);
    n++;
  } while (n < max && stepNext(t));
  return n;
}

// Batched lookups descend GROUP addresses together, one level at a time: the lookups of a group
// are independent, so their cache misses overlap instead of queueing one behind the other.
const GROUP: i32 = 32; // 8: 1.3x, 16: 1.6x, 32: 2.0x faster than one at a time (1M lookups)
const gNodes = memory.data(GROUP * 4, 16);

/** For `n` u64 addresses at `addrs`, writes n i32 results (value or -ENOENT) at `out`. */
export function tree_find_batch(t: usize, addrs: usize, n: i32, out: usize): i32 {
  const h = load<i32>(t, 20);
  if (h == 0) {
    for (let i = 0; i < n; i++) store<i32>(out + (<usize>i << 2), -ENOENT);
    return 0;
  }
  const root = <u32>nodeAt(t, load<u32>(t, 16));
  for (let i = 0; i < n; i += GROUP) {
    const g = min(GROUP, n - i);
    const at = addrs + (<usize>i << 3);
    for (let k = 0; k < g; k++) store<u32>(gNodes + (<usize>k << 2), root);
    for (let d = 1; d < h; d++) {
      for (let k = 0; k < g; k++) {
        const node = <usize>load<u32>(gNodes + (<usize>k << 2));
        const c = upperBoundFlat(node + I_KEY, count(node) - 1, load<u64>(at + (<usize>k << 3)));
        store<u32>(gNodes + (<usize>k << 2), <u32>nodeAt(t, innerChild(node, c)));
      }
    }
    for (let k = 0; k < g; k++) {
      const leaf = <usize>load<u32>(gNodes + (<usize>k << 2));
      const addr = load<u64>(at + (<usize>k << 3));
      const j = upperBoundFlat(leaf + L_IOVA, count(leaf), addr) - 1;
      store<i32>(out + (<usize>(i + k) << 2), settle(t, leaf, j) ? valueIfIn(addr) : -ENOENT);
    }
  }
  return 0;
}
