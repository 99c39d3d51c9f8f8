// Run listing over dirty-bitmap words: the maximal runs of set bits inside a range, as (start,
// length) pairs. assembly/dirty_bitmap.ts checks the range and the output buffer first.
import { maskFrom, maskTo, wordPtr } from './dirty_bitmap_kernels';

const RUN_STAGE: u32 = 2048; // changes staged per pass of bitmap_runs (flushed at this many)
const runMarks = memory.data(4 * (RUN_STAGE + 72), 16); // bit indices where the bitmap changes

/**
 * Appends base + the index of every set bit of m to the staged changes, which hold k; returns
 * the new count. Four are stored unconditionally (past the count when m has fewer): a word holds
 * more than four changes (two runs) in under 3 % of words at 1 % density.
 */
@inline function flatten(k: u32, m: u64, base: u32): u32 {
  const c = <u32>popcnt(m);
  const q = runMarks + (<usize>k << 2);
  store<u32>(q, base + <u32>ctz(m));
  m &= m - 1;
  store<u32>(q, base + <u32>ctz(m), 4);
  m &= m - 1;
  store<u32>(q, base + <u32>ctz(m), 8);
  m &= m - 1;
  store<u32>(q, base + <u32>ctz(m), 12);
  m &= m - 1;
  for (let t: u32 = 4; t < c; t++, m &= m - 1) store<u32>(q + (<usize>t << 2), base + <u32>ctz(m));
  return k + c;
}

/** Writes the first k staged runs (change pairs) as (start, length) pairs at out. */
function pairRuns(out: usize, k: u32): void {
  const zero = i32x4.splat(0);
  let j: u32 = 0;
  for (; j + 2 <= k; j += 2, out += 16) {
    const v = v128.load(runMarks + (<usize>j << 3)); // start, end, start, end
    v128.store(out, i32x4.sub(v, i32x4.shuffle(zero, v, 0, 4, 0, 6)));
  }
  if (j < k) {
    const st = load<u32>(runMarks + (<usize>j << 3));
    store<u32>(out, st);
    store<u32>(out, load<u32>(runMarks + (<usize>j << 3), 4) - st, 4);
  }
}

/**
 * Up to `max` (max >= 1) maximal runs of set bits of words w inside [first, first + count)
 * (count >= 1) as (start, length) u32 pairs at out; returns how many.
 */
export function listRuns(w: usize, first: u32, count: u32, out: usize, max: u32): u32 {
  // Word by word, the bits where the bitmap changes (x ^ (x << 1)) are appended to a list
  // without a branch per run: the changes alternate start, end, start, end, so pairs of them are
  // the runs. 32 MiB at 1 % density (2.6 M runs): 20 ms; branching per run took 34 ms.
  const end = first + count;
  const lw = (end - 1) >>> 6;
  let i = first >>> 6;
  let x = load<u64>(wordPtr(w, i)) & maskFrom(first & 63);
  let prev: u64 = 0; // bit 63 of the previous word in the range: 1 while a run goes on
  let n: u32 = 0; // runs written
  let nt: u32 = 0; // staged changes
  let lim = stageLimit(max); // flush when this many changes are staged
  while (i < lw) {
    nt = flatten(nt, x ^ ((x << 1) | prev), i << 6);
    prev = x >> 63;
    if (nt >= lim) {
      n = flushStage(out, n, nt, max);
      if (n == max) return n;
      nt &= 1;
      lim = stageLimit(max - n);
    }
    i++;
    // Whole blocks of 64 words before the last: only the words where something changes are
    // visited (a set bit, or a run ending at their bit 0), found from two SIMD masks, so zero
    // words cost no branch of their own (at 1 % density half the words are zero, in no order
    // a predictor can follow), and the visiting loop ends once per 64 words.
    while (i + 64 <= lw) {
      const p = wordPtr(w, i);
      const zero = i64x2.splat(0);
      let zw: u64 = 0; // bit j: word j is zero
      let top: u64 = 0; // bit j: bit 63 of word j
      for (let g: u32 = 0; g < 64; g += 8) {
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
      const carry = (top << 1) | prev; // bit j: bit 63 of the word before word j
      let visit = ~zw | carry;
      while (visit) {
        const j = <u32>ctz(visit);
        visit &= visit - 1;
        const y = load<u64>(p + (<usize>j << 3));
        nt = flatten(nt, y ^ ((y << 1) | ((carry >> j) & 1)), (i + j) << 6);
        if (nt >= lim) {
          n = flushStage(out, n, nt, max);
          if (n == max) return n;
          nt &= 1;
          lim = stageLimit(max - n);
        }
      }
      prev = top >> 63;
      i += 64;
    }
    x = load<u64>(wordPtr(w, i));
  }
  x &= maskTo((end - 1) & 63); // the last word
  nt = flatten(nt, x ^ ((x << 1) | prev), i << 6);
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
