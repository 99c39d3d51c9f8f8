// A sparse bitmap over 32-bit IOASIDs: the IOASID allocator's global ID space (with a record per
// allocated ID) and each set's membership (without records). Searches for the lowest clear or
// set ID in a range skip whole words, leaves and tables through summary bits, so a search in a
// nearly full 2^20 space or a walk over a set costs words, not IDs.
//
//   id (u32)  ┌──────── 10 ────────┬──────── 10 ────────┬──────── 12 ────────┐
//             │ root index id>>22  │ L2 index id>>12&1023│ leaf bit id & 4095 │
//             └────────────────────┴─────────────────────┴────────────────────┘
//
//   root / L2 table (TABLE_BYTES):
//   ┌──────────────────────┬──────────────────────┬──────────────────────┬───────┬────────┐
//   │ ptrs[1024] u32 @0    │ present[16] u64 @4096│ full[16] u64 @4224   │ n @4352│ rec @4356│
//   └──────────────────────┴──────────────────────┴──────────────────────┴───────┴────────┘
//   present bit i: child i exists; full bit i: child i holds every ID it covers.
//   n: root: IDs set in the map; L2: children. rec (root only): record bytes per ID (0 or 12).
//
//   leaf (LEAF_HEAD + 4096 * rec bytes):
//   ┌──────────────────┬─────────────┬─────────────┬───────────┬───────────────────────────┐
//   │ words[64] u64 @0 │ nonzero @512│ full u64 @520│ count @528│ records from @544          │
//   └──────────────────┴─────────────┴─────────────┴───────────┴───────────────────────────┘
//   nonzero bit w: word w has a set bit; full bit w: word w is all ones.
// Empty leaves and tables are freed as they empty, so memory follows the IDs in use.
import { alloc, free } from './heap';
import { ENOMEM } from './constants';

const FANOUT: u32 = 1024;
const PRESENT: usize = 4096;
const FULL: usize = 4224;
const COUNT: usize = 4352;
const RECBYTES: usize = 4356;
const TABLE_BYTES: usize = 4368;
const LEAF_NONZERO: usize = 512;
const LEAF_FULL: usize = 520;
const LEAF_COUNT: usize = 528;
export const LEAF_HEAD: usize = 544;
const LEAF_IDS: u32 = 4096;
/** "No ID": also INVALID_IOASID, which is never set. */
export const NONE: u32 = 0xffffffff;

@inline function child(t: usize, i: u32): usize {
  return <usize>load<u32>(t + (<usize>i << 2));
}
@inline function testBit(t: usize, at: usize, i: u32): bool {
  return ((load<u64>(t + at + (<usize>(i >> 6) << 3)) >> <u64>(i & 63)) & 1) != 0;
}
@inline function putBit(t: usize, at: usize, i: u32, on: bool): void {
  const a = t + at + (<usize>(i >> 6) << 3);
  const m = <u64>1 << <u64>(i & 63);
  store<u64>(a, on ? load<u64>(a) | m : load<u64>(a) & ~m);
}

/** Lowest index >= i (< FANOUT) whose bit in the 16-word set at t+at is `want`; FANOUT if none. */
function scan16(t: usize, at: usize, i: u32, want: bool): u32 {
  while (i < FANOUT) {
    let w = load<u64>(t + at + (<usize>(i >> 6) << 3));
    if (!want) w = ~w;
    w &= <u64>-1 << <u64>(i & 63);
    if (w) return (i & ~63) + <u32>ctz<u64>(w);
    i = (i & ~63) + 64;
  }
  return FANOUT;
}

function newTable(): usize {
  const t = alloc(TABLE_BYTES);
  if (t) memory.fill(t, 0, TABLE_BYTES);
  return t;
}

/** A new empty map whose IDs carry `recBytes` bytes each; 0 when out of memory. */
export function mapCreate(recBytes: u32): usize {
  const t = newTable();
  if (t) store<u32>(t + RECBYTES, recBytes);
  return t;
}

/** Frees a map with all its tables and leaves. */
export function mapFree(root: usize): void {
  for (let i = scan16(root, PRESENT, 0, true); i < FANOUT; i = scan16(root, PRESENT, i + 1, true)) {
    const l2 = child(root, i);
    for (let j = scan16(l2, PRESENT, 0, true); j < FANOUT; j = scan16(l2, PRESENT, j + 1, true)) free(child(l2, j));
    free(l2);
  }
  free(root);
}

/** IDs set in the map. */
@inline export function mapCount(root: usize): u32 {
  return load<u32>(root + COUNT);
}

/** The leaf holding `id`, or 0. */
@inline export function leafOf(root: usize, id: u32): usize {
  const l2 = child(root, id >> 22);
  return l2 ? child(l2, (id >> 12) & 1023) : 0;
}

/** The record of `id` (whose leaf must exist). */
@inline export function recordOf(root: usize, leaf: usize, id: u32): usize {
  return leaf + LEAF_HEAD + <usize>(id & 4095) * <usize>load<u32>(root + RECBYTES);
}

/** Whether `id` is set. */
export function mapTest(root: usize, id: u32): bool {
  const leaf = leafOf(root, id);
  return leaf != 0 && ((load<u64>(leaf + (<usize>((id >> 6) & 63) << 3)) >> <u64>(id & 63)) & 1) != 0;
}

/** Makes sure the leaf of `id` exists: 0, or -ENOMEM with nothing added. */
export function mapReserve(root: usize, id: u32): i32 {
  const i1 = id >> 22;
  let l2 = child(root, i1);
  let madeL2 = false;
  if (!l2) {
    l2 = newTable();
    if (!l2) return -ENOMEM;
    madeL2 = true;
  }
  const i2 = (id >> 12) & 1023;
  if (!child(l2, i2)) {
    const bytes = LEAF_HEAD + <usize>LEAF_IDS * <usize>load<u32>(root + RECBYTES);
    const leaf = alloc(bytes);
    if (!leaf) {
      if (madeL2) free(l2);
      return -ENOMEM;
    }
    memory.fill(leaf, 0, LEAF_HEAD);
    store<u32>(l2 + (<usize>i2 << 2), <u32>leaf);
    putBit(l2, PRESENT, i2, true);
    store<u32>(l2 + COUNT, load<u32>(l2 + COUNT) + 1);
  }
  if (madeL2) {
    store<u32>(root + (<usize>i1 << 2), <u32>l2);
    putBit(root, PRESENT, i1, true);
  }
  return 0;
}

/** Frees the leaf of `id` (and its table) if it holds no ID. */
export function mapTrim(root: usize, id: u32): void {
  const i1 = id >> 22;
  const l2 = child(root, i1);
  if (!l2) return;
  const i2 = (id >> 12) & 1023;
  const leaf = child(l2, i2);
  if (!leaf || load<u32>(leaf + LEAF_COUNT)) return;
  free(leaf);
  store<u32>(l2 + (<usize>i2 << 2), 0);
  putBit(l2, PRESENT, i2, false);
  const n = load<u32>(l2 + COUNT) - 1;
  store<u32>(l2 + COUNT, n);
  if (n) return;
  free(l2);
  store<u32>(root + (<usize>i1 << 2), 0);
  putBit(root, PRESENT, i1, false);
}

/** Sets `id`, whose leaf exists (mapReserve) and which is clear. */
export function mapSet(root: usize, leaf: usize, id: u32): void {
  const w = (id >> 6) & 63;
  const a = leaf + (<usize>w << 3);
  const word = load<u64>(a) | (<u64>1 << <u64>(id & 63));
  store<u64>(a, word);
  store<u64>(leaf + LEAF_NONZERO, load<u64>(leaf + LEAF_NONZERO) | (<u64>1 << <u64>w));
  if (word == <u64>-1) store<u64>(leaf + LEAF_FULL, load<u64>(leaf + LEAF_FULL) | (<u64>1 << <u64>w));
  const c = load<u32>(leaf + LEAF_COUNT) + 1;
  store<u32>(leaf + LEAF_COUNT, c);
  store<u32>(root + COUNT, load<u32>(root + COUNT) + 1);
  if (c < LEAF_IDS) return;
  const i1 = id >> 22;
  const l2 = child(root, i1);
  putBit(l2, FULL, (id >> 12) & 1023, true);
  if (scan16(l2, FULL, 0, false) == FANOUT) putBit(root, FULL, i1, true);
}

/** Clears `id`, which is set; frees its leaf and table when they empty. */
export function mapClear(root: usize, id: u32): void {
  const leaf = leafOf(root, id);
  const w = (id >> 6) & 63;
  const a = leaf + (<usize>w << 3);
  const word = load<u64>(a) & ~(<u64>1 << <u64>(id & 63));
  store<u64>(a, word);
  store<u64>(leaf + LEAF_FULL, load<u64>(leaf + LEAF_FULL) & ~(<u64>1 << <u64>w));
  if (!word) store<u64>(leaf + LEAF_NONZERO, load<u64>(leaf + LEAF_NONZERO) & ~(<u64>1 << <u64>w));
  const c = load<u32>(leaf + LEAF_COUNT);
  store<u32>(leaf + LEAF_COUNT, c - 1);
  store<u32>(root + COUNT, load<u32>(root + COUNT) - 1);
  if (c == LEAF_IDS) {
    const i1 = id >> 22;
    putBit(child(root, i1), FULL, (id >> 12) & 1023, false);
    putBit(root, FULL, i1, false);
  }
  if (c == 1) mapTrim(root, id);
}

/**
 * The lowest ID in [from, last] whose bit is `want` (clear: free; set: member), or NONE. Whole
 * tables and leaves are skipped through their summary bits, whole words through the leaf's.
 */
export function mapSearch(root: usize, from: u32, last: u32, want: bool): u32 {
  let id = <u64>from;
  const end = <u64>last;
  while (id <= end) {
    const i1 = <u32>(id >> 22);
    const l2 = child(root, i1);
    if (!l2) {
      if (!want) return <u32>id;
      const n = scan16(root, PRESENT, i1 + 1, true);
      id = <u64>n << 22;
      continue;
    }
    if (!want && testBit(root, FULL, i1)) {
      id = <u64>scan16(root, FULL, i1 + 1, false) << 22;
      continue;
    }
    const i2 = <u32>(id >> 12) & 1023;
    const leaf = child(l2, i2);
    if (!leaf && !want) return <u32>id;
    if (!leaf || (!want && testBit(l2, FULL, i2))) {
      const n = want ? scan16(l2, PRESENT, i2 + 1, true) : scan16(l2, FULL, i2 + 1, false);
      id = n == FANOUT ? (<u64>i1 + 1) << 22 : (<u64>i1 << 22) | (<u64>n << 12);
      continue;
    }
    const base = id & ~(<u64>4095);
    const w = <u32>(id >> 6) & 63;
    let word = load<u64>(leaf + (<usize>w << 3));
    if (!want) word = ~word;
    word &= <u64>-1 << (id & 63);
    if (word) {
      const r = base | (<u64>w << 6) | ctz<u64>(word);
      return r <= end ? <u32>r : NONE;
    }
    let m = w == 63 ? 0 : <u64>-1 << <u64>(w + 1);
    m &= want ? load<u64>(leaf + LEAF_NONZERO) : ~load<u64>(leaf + LEAF_FULL);
    if (m) {
      const w2 = <u32>ctz<u64>(m);
      let x = load<u64>(leaf + (<usize>w2 << 3));
      if (!want) x = ~x;
      const r = base | (<u64>w2 << 6) | ctz<u64>(x);
      return r <= end ? <u32>r : NONE;
    }
    id = base + <u64>LEAF_IDS;
  }
  return NONE;
}
