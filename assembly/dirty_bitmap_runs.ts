// Run listing over dirty-bitmap words: the maximal runs of set bits inside a range, as (start,
// length) pairs. assembly/dirty_bitmap.ts checks the range and the output buffer first.
import { maskFrom, maskTo, wordPtr } from './dirty_bitmap_kernels';

// Changes staged per pass of bitmap_runs: written out once this many are staged, checked after
// each block of up to 64 words (the range's first word alone adds at most 64 before the first
// check), so the stage holds one more block (64 changes a word) past it, and the three stores a
// word may make past its last change.
const RUN_STAGE: u32 = 2048;
const BLOCK: u32 = 64; // words whose masks are taken together
const runMarks = memory.data(4 * (RUN_STAGE + BLOCK * 64 + 8), 16); // bit indices where the bitmap changes

/**
 * Stores base + the index of each of the four lowest set bits of m at r (past m's last set bit
 * when it has fewer); returns m without the first three (the fourth still set).
 */
@inline function store4(r: usize, m: u64, base: u32): u64 {
  store<u32>(r, base + <u32>ctz(m));
  m &= m - 1;
  store<u32>(r, base + <u32>ctz(m), 4);
  m &= m - 1;
  store<u32>(r, base + <u32>ctz(m), 8);
  m &= m - 1;
  store<u32>(r, base + <u32>ctz(m), 12);
  return m;
}

/**
 * Stores base + the index of every set bit of m at q (u32 each) and returns the address past
 * them. Four are stored unconditionally (past the end when m has fewer): at 1 % density about
 * 6 % of the words visited hold more (three runs), and the mispredicted branch into the loop for
 * them costs about 1.5 ms of the 2.6 M runs of 32 MiB; storing six unconditionally instead cost
 * more than it saved (0.8 ms). The rest go four at a time too (at 10 % and 50 % density, where
 * most words take that path, one store a turn was 20 % slower).
 */
@inline function flatten(q: usize, m: u64, base: u32): usize {
  const c = <u32>popcnt(m);
  m = store4(q, m, base);
  if (c > 4) {
    // Four at a time again (the stage has room for three past a word's last change).
    let r = q + 16;
    do {
      m = store4(r, m & (m - 1), base);
      r += 16;
    } while (m & (m - 1));
  }
  return q + (<usize>c << 2);
}

/** Stages the changes of one word (change mask m, first bit base) after the nt staged; returns the new count. */
@inline function stageWord(nt: u32, m: u64, base: u32): u32 {
  return <u32>((flatten(runMarks + (<usize>nt << 2), m, base) - runMarks) >> 2);
}

/**
 * Stages the changes of the words of a block at p (first bit base) whose bit is set in visit,
 * after the nt staged; returns the new count. The word before the block is read for its bit 63
 * (a run going on): it is in the range, and masking the range's first word keeps that bit. A
 * function of its own, called for whole and short blocks, so it stays out of line and only these
 * values are live in its loop (inlined, the engine kept some of them on the stack).
 */
// Tried and dropped here (32 MiB at 1 %, 8.2 to 8.3 ms, old and new alternated in one process):
// two visited words a turn (0.1 to 0.2 ms slower); a word's carry from the block's bit-63 mask
// instead of a load of the word before (no change); no branch for words of more than four
// changes, their rest written afterwards into the gaps left for them, from a side list of one
// slot a word kept or not (0.3 to 0.6 ms slower) or from a per-block mask and a table of where
// each word's changes went (0.6 ms slower): the extra work on every visited word costs more than
// the mispredictions it saves, about 1 ms (the kernel with that branch never taken).
function stageBlock(p: usize, visit: u64, base: u32, nt: u32): u32 {
  let q = runMarks + (<usize>nt << 2);
  while (visit) {
    const j = <u32>ctz(visit);
    visit &= visit - 1;
    const at = p + (<usize>j << 3);
    const y = load<u64>(at);
    q = flatten(q, y ^ (y << 1) ^ (load<u64>(at - 8) >> 63), base + (j << 6));
  }
  return <u32>((q - runMarks) >> 2);
}

/** Writes the first k staged runs (change pairs) as (start, length) pairs at out. */
function pairRuns(out: usize, k: u32): void {
  // A change pair (start, end) read as one u64 lane: end - start is the high half minus the
  // lane shifted up by 32 bits (start moved to the high half, 0 in the low half).
  let src = runMarks;
  const stop = runMarks + (<usize>k << 3);
  for (; src + 64 <= stop; src += 64, out += 64) {
    const a = v128.load(src);
    const b = v128.load(src, 16);
    const c = v128.load(src, 32);
    const d = v128.load(src, 48);
    v128.store(out, i32x4.sub(a, i64x2.shl(a, 32)));
    v128.store(out, i32x4.sub(b, i64x2.shl(b, 32)), 16);
    v128.store(out, i32x4.sub(c, i64x2.shl(c, 32)), 32);
    v128.store(out, i32x4.sub(d, i64x2.shl(d, 32)), 48);
  }
  for (; src < stop; src += 8, out += 8) {
    const v = load<u64>(src);
    store<u64>(out, v - (v << 32));
  }
}

/**
 * Up to `max` (max >= 1) maximal runs of set bits of words w inside [first, first + count)
 * (count >= 1) as (start, length) u32 pairs at out; returns how many.
 */
export function listRuns(w: usize, first: u32, count: u32, out: usize, max: u32): u32 {
  // Word by word, the bits where the bitmap changes (x ^ (x << 1)) are appended to a list
  // without a branch per run: the changes alternate start, end, start, end, so pairs of them are
  // the runs. 32 MiB at 1 % density (2.6 M runs): about 8.5 ms of CPU; in blocks of 8 words
  // (a loop exit mispredicted every 8 words) it took 13.5 ms, branching per run 34 ms.
  const end = first + count;
  const lw = (end - 1) >>> 6;
  let i = first >>> 6;
  let x = load<u64>(wordPtr(w, i)) & maskFrom(first & 63);
  let prev: u64 = 0; // bit 63 of the previous word in the range: 1 while a run goes on
  let n: u32 = 0; // runs written
  let nt: u32 = 0; // staged changes
  let lim = stageLimit(max); // write out when this many changes are staged
  if (i < lw) {
    nt = stageWord(nt, x ^ (x << 1), i << 6);
    prev = x >> 63;
    i++;
    // The words between the first and the last in blocks of 64: only the words where something
    // changes are visited (a set bit, or a run ending at their bit 0), found from two SIMD masks,
    // so zero words cost no branch of their own (at 1 % density half the words are zero, in no
    // order a predictor can follow), and the visiting loop ends once per 64 words. The last
    // block, shorter, visits every word.
    while (i < lw) {
      const p = wordPtr(w, i);
      let r = lw - i;
      if (r >= BLOCK) {
        r = BLOCK;
        const zero = i64x2.splat(0);
        let zw: u64 = 0; // bit j: word j is zero
        let top: u64 = 0; // bit j: bit 63 of word j
        for (let g: u32 = 0; g < BLOCK; g += 8) {
          const q = p + (<usize>g << 3);
          const v0 = v128.load(q);
          const v1 = v128.load(q, 16);
          const v2 = v128.load(q, 32);
          const v3 = v128.load(q, 48);
          const z = i64x2.bitmask(i64x2.eq(v0, zero)) | (i64x2.bitmask(i64x2.eq(v1, zero)) << 2)
            | (i64x2.bitmask(i64x2.eq(v2, zero)) << 4) | (i64x2.bitmask(i64x2.eq(v3, zero)) << 6);
          const t = i64x2.bitmask(v0) | (i64x2.bitmask(v1) << 2) | (i64x2.bitmask(v2) << 4) | (i64x2.bitmask(v3) << 6);
          zw |= <u64>z << g;
          top |= <u64>t << g;
        }
        nt = stageBlock(p, ~zw | (top << 1) | prev, i << 6, nt); // and the words where a run ends at bit 0
        prev = top >> 63;
      } else {
        nt = stageBlock(p, (<u64>1 << r) - 1, i << 6, nt);
      }
      if (nt >= lim) {
        n = flushStage(out, n, nt, max);
        if (n == max) return n;
        nt &= 1;
        lim = stageLimit(max - n);
      }
      i += r;
    }
    x = load<u64>(wordPtr(w, i));
    prev = load<u64>(wordPtr(w, i - 1)) >> 63;
  }
  x &= maskTo((end - 1) & 63); // the last word
  nt = stageWord(nt, x ^ ((x << 1) | prev), i << 6);
  if (nt & 1) {
    store<u32>(runMarks + (<usize>nt << 2), end); // a run reaching the end of the range
    nt++;
  }
  const k = min(nt >> 1, max - n);
  pairRuns(out + (<usize>n << 3), k);
  return n + k;
}

/**
 * Writes the closed runs of nt staged changes (at most max - n) after the n runs at out; keeps
 * an open run's start as the first staged change. Returns the runs written in all.
 */
@inline function flushStage(out: usize, n: u32, nt: u32, max: u32): u32 {
  const k = min(nt >> 1, max - n);
  pairRuns(out + (<usize>n << 3), k);
  if (nt & 1) store<u32>(runMarks, load<u32>(runMarks + (<usize>(nt - 1) << 2))); // an open run
  return n + k;
}

/** Staged changes at which bitmap_runs writes out: a full stage, or `left` more runs. */
@inline function stageLimit(left: u32): u32 {
  return left >= RUN_STAGE >> 1 ? RUN_STAGE : left << 1;
}
