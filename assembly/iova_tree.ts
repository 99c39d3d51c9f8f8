// The IOVA range tree: non-overlapping inclusive u64 ranges [iova, last], each carrying a u32
// value (the host's dma id). A B+tree keyed by `iova`, O(log n) for insert, remove and lookup.
//
// Nodes are 512 bytes and live in one pool that grows by realloc, so links are node indices, not
// addresses. Every call that may grow the pool does so before it changes anything, so -ENOMEM
// leaves the tree as it was. The pool is freed when the tree becomes empty.
// Node layout, field access and the pool: assembly/iova_tree_node.ts.
import { EEXIST, EINVAL, ENOENT, ENOMEM } from './constants';
import { alloc, free } from './heap';
import {
  NIL,
  LEAF_MAX,
  LEAF_MIN,
  L_IOVA,
  INNER_MAX,
  INNER_MIN,
  I_KEY,
  MAX_HEIGHT,
  MAX_VALUE,
  pool,
  nodeAt,
  indexOf,
  count,
  setCount,
  leafIova,
  leafLast,
  leafVal,
  innerKey,
  setKey,
  innerChild,
  setChild,
  upperBound,
  upperBoundFlat,
  moveEntries,
  insertEntry,
  moveInner,
  reserve,
  takeNode,
  dropNode,
  reset,
} from './iova_tree_node';

// Descent path of the last insert/remove: node index and child position at each inner level.
const pathNode = memory.data(MAX_HEIGHT * 4, 16);
const pathPos = memory.data(MAX_HEIGHT * 4, 16);

// Result of `seek`: the leaf (address) and entry index found.
let gLeaf: usize = 0;
let gIdx: i32 = 0;

@inline function pathNodeAt(d: i32): u32 { return load<u32>(pathNode + (<usize>d << 2)); }
@inline function pathPosAt(d: i32): i32 { return load<i32>(pathPos + (<usize>d << 2)); }

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
