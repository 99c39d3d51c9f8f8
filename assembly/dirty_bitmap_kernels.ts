// The dirty bitmap's word kernels (assembly/dirty_bitmap.ts holds the layout, the range gate and
// the exports): masked end words with whole words filled between, interleaved passes over long
// ranges, the shifted stream of the kernel's footprint and page-size conversion (its bit folds are in
// assembly/bit_fold.ts).
// Callers have validated every range; nothing here checks or fails.

import { coarseBlock, double32, pairs2 } from './bit_fold';
import { remarkBelow, remarking } from './remark';

const ONES: u64 = 0xffffffffffffffff;
// Passes over long ranges may be cut into STREAMS parts visited in turn, STEP words at a time.
// Six streams once kept more lines in flight than one; measured again on this machine, in one
// process against the kernels of six streams (CPU time over Buffer.copy of 32 MiB, load 12 on 2
// cores), one sequential stream is faster in every pass: count 1.56x -> 0.54x, clear 1.52x ->
// 0.49x, conversion to 8 KiB / 64 KiB / 2 MiB pages 2.07x / 1.01x / 0.57x -> 1.05x / 0.72x /
// 0.51x (presumably the hardware prefetcher follows one stream and not six).
const STREAMS: u32 = 1;
const STEP: u32 = 64; // words per turn of one stream
// A read-and-clear (the stream) goes in one pass of blocks of 64 KiB, each copied
// (memory.copy when the shift is a whole word) and its source zeroed (memory.fill) while it is
// still in the cache. 1 TiB (32 MiB) read and cleared, CPU time over Buffer.copy of 32 MiB,
// interleaved in one process (load 2): six streams 3.0x at shift 0 and 3.2x at shift 13, this
// 1.1x at both (blocks of 16 KiB or 256 KiB: within 0.1x of it).
const CHUNK: u32 = 8192; // stream words per block
// Zero-padded copy of a partial source block for page-size coarsening (at most 64 words).
const scratch = memory.data(512, 16);

// The job of the current interleaved pass, read by its blocks (AssemblyScript has no closures).
let jw: usize = 0; // source words
let jnw: u32 = 0; // source words allocated
let jfirst: u32 = 0; // stream: first source bit
let jcount: u32 = 0; // stream: source bits
let js: u32 = 0; // stream: bit of output word 0 where source bit jfirst lands
let jout: usize = 0; // output word 0
let jmerge = false; // stream: OR into the output instead of storing
let jq0: i64 = 0; // stream: source word of output word 0
let jlo: u32 = 0; // read-and-clear: interior source words [jlo, jhi) to clear; jlo == jhi: none
let jhi: u32 = 0;
let jk: i32 = 0; // conversion: 2^jk source bits per coarse bit, or 2^-jk fine bits per source bit
let jacc: u64 = 0; // count: running total

@inline export function wordPtr(w: usize, i: u32): usize {
  return w + (<usize>i << 3);
}
/** Bits [lo, 64) of a word, lo in 0..63. */
@inline export function maskFrom(lo: u32): u64 {
  return ONES << lo;
}
/** Bits [0, hi] of a word, hi in 0..63. */
@inline export function maskTo(hi: u32): u64 {
  return ONES >> (63 - hi);
}

/** What an interleaved pass does with each block (switched on, not called through a table). */
const enum Job {
  Count, // jacc += popcount of words jw[from, from + n)
  Clear, // zero words jw[from, from + n), skipping zero groups
  Coarsen, // coarse words [from, from + n)
  Refine, // fine words [from, from + n)
}

/**
 * Runs `job` over blocks of [0, total): the range is cut into STREAMS segments of whole STEPs,
 * visited in turn, STEP words at a time. Returns the segment length.
 */
function interleave(total: u32, job: Job): u32 {
  const seg = ((total + STREAMS * STEP - 1) / (STREAMS * STEP)) * STEP;
  for (let t: u32 = 0; t < seg; t += STEP) {
    for (let i: u32 = 0; i < STREAMS; i++) {
      const from = i * seg + t;
      if (from >= total) break;
      const n = min(STEP, total - from);
      switch (job) {
        case Job.Count: jacc += popcntWords(wordPtr(jw, from), n); break;
        case Job.Clear: clearSparse(wordPtr(jw, from), n); break;
        case Job.Coarsen: coarsenBlock(from, n); break;
        default: refineBlock(from, n);
      }
    }
  }
  return seg;
}

/** Sets (ones) or clears bits [first, first + count): masks the end words, fills those between. */
export function fillBits(w: usize, first: u32, count: u32, ones: bool): void {
  if (!count) return;
  const last = first + count - 1;
  const fw = first >>> 6;
  const lw = last >>> 6;
  let fm = maskFrom(first & 63);
  const lm = maskTo(last & 63);
  if (fw == lw) fm &= lm;
  const pf = wordPtr(w, fw);
  store<u64>(pf, ones ? load<u64>(pf) | fm : load<u64>(pf) & ~fm);
  if (fw == lw) return;
  memory.fill(pf + 8, ones ? 0xff : 0, <usize>(lw - fw - 1) << 3);
  const pl = wordPtr(w, lw);
  store<u64>(pl, ones ? load<u64>(pl) | lm : load<u64>(pl) & ~lm);
}

/**
 * Zeroes n words at p, skipping 64-byte groups that are already zero: a line never written is
 * never written back (bitmap_clear, where the lines are not in the cache yet).
 */
function clearSparse(p: usize, n: u32): void {
  const zero = i64x2.splat(0);
  for (; n >= 8; n -= 8, p += 64) {
    const a = v128.or(v128.load(p), v128.load(p, 16));
    const b = v128.or(v128.load(p, 32), v128.load(p, 48));
    if (v128.any_true(v128.or(a, b))) {
      v128.store(p, zero);
      v128.store(p, zero, 16);
      v128.store(p, zero, 32);
      v128.store(p, zero, 48);
    }
  }
  for (; n; n--, p += 8) if (load<u64>(p)) store<u64>(p, 0);
}

/** Popcount of n whole words at p. */
function popcntWords(p: usize, n: u32): u64 {
  let a: u64 = 0, b: u64 = 0, c: u64 = 0, d: u64 = 0;
  for (; n >= 4; n -= 4, p += 32) {
    a += popcnt(load<u64>(p));
    b += popcnt(load<u64>(p, 8));
    c += popcnt(load<u64>(p, 16));
    d += popcnt(load<u64>(p, 24));
  }
  for (; n; n--, p += 8) a += popcnt(load<u64>(p));
  return a + b + c + d;
}

export function countBits(w: usize, first: u32, count: u32): u32 {
  if (!count) return 0;
  const last = first + count - 1;
  const fw = first >>> 6;
  const lw = last >>> 6;
  const fm = maskFrom(first & 63);
  const lm = maskTo(last & 63);
  if (fw == lw) return <u32>popcnt(load<u64>(wordPtr(w, fw)) & fm & lm);
  jw = wordPtr(w, fw + 1);
  jacc = popcnt(load<u64>(wordPtr(w, fw)) & fm) + popcnt(load<u64>(wordPtr(w, lw)) & lm);
  interleave(lw - fw - 1, Job.Count);
  return <u32>jacc;
}

/** Zeroes n words at w in interleaved blocks, writing only groups that are not zero. */
export function clearWords(w: usize, n: u32): void {
  jw = w;
  interleave(n, Job.Clear);
}

/** True when any of n words at p is non-zero (n even: p is a bitmap's words). */
function anyWords(p: usize, n: u32): bool {
  for (; n >= 2; n -= 2, p += 16) if (v128.any_true(v128.load(p))) return true;
  return n != 0 && load<u64>(p) != 0;
}

/** 1 when any of the n words at p is non-zero, n a power of two >= 2: ORed whole, no early exit. */
@inline function orAny(p: usize, n: u32): u32 {
  if (n == 2) return <u32>v128.any_true(v128.load(p));
  let a = v128.load(p);
  let b = v128.load(p, 16);
  for (let i: u32 = 4; i < n; i += 4) {
    a = v128.or(a, v128.load(p + (<usize>i << 3)));
    b = v128.or(b, v128.load(p + (<usize>i << 3), 16));
  }
  return <u32>v128.any_true(v128.or(a, b));
}

// ---- the shifted stream -------------------------------------------------------------------

/** Word i of a bitmap's words, 0 outside [0, nw). */
@inline function wordAt(w: usize, nw: u32, i: i64): u64 {
  return <u64>i < <u64>nw ? load<u64>(w + (<usize>i << 3)) : 0;
}

/** The 64 source bits from bit p on (p >= -63; bits before 0 or past the words read as 0). */
function bitsAt(w: usize, nw: u32, p: i64): u64 {
  const q = p >> 6;
  const r = p & 63;
  const lo = wordAt(w, nw, q) >> r;
  return r ? lo | (wordAt(w, nw, q + 1) << (64 - r)) : lo;
}

/**
 * Stores v over the 16 bytes at p after loading them. The load is wasted work, but loads that
 * miss run ahead where stores that miss wait in line for their lines: a shifted copy of 32 MiB
 * went from 1.52x to 1.40x the time of Buffer.copy, read-and-clear from 1.70x to 1.49x.
 */
@inline function storeOver(p: usize, v: v128): void {
  v128.store(p, v128.or(v128.and(v128.load(p), i64x2.splat(0)), v));
}

/**
 * m interior stream words: word j = source words (sp[j] >> r) | (sp[j+1] << (64 - r)), r in 1..63,
 * stored to dp[j] or, with `merge`, ORed into it. Reads sp[0..m], all inside the source range.
 */
function shiftWords(dp: usize, sp: usize, m: u32, r: i32, merge: bool): void {
  const rl = 64 - r;
  if (merge) {
    for (; m >= 4; m -= 4, sp += 32, dp += 32) {
      const a = v128.or(i64x2.shr_u(v128.load(sp), r), i64x2.shl(v128.load(sp, 8), rl));
      const b = v128.or(i64x2.shr_u(v128.load(sp, 16), r), i64x2.shl(v128.load(sp, 24), rl));
      v128.store(dp, v128.or(v128.load(dp), a));
      v128.store(dp, v128.or(v128.load(dp, 16), b), 16);
    }
  } else if (m >= 6) {
    // A funnel shift over v128 lanes: each source vector is loaded once and the vector one word
    // on is built from it and the next (a byte shuffle, palignr on x86) instead of loaded again
    // from an address 8 bytes on, a load that straddles a cache line once in four. Plain stores:
    // in 64 KiB blocks, loading each destination line first (storeOver) cost 0.05x to 0.1x.
    let a = v128.load(sp);
    for (; m >= 6; m -= 4, sp += 32, dp += 32) {
      const b = v128.load(sp, 16);
      const c = v128.load(sp, 32); // sp[4], sp[5]: inside the m + 1 words while m >= 6
      const ab = i8x16.shuffle(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23);
      const bc = i8x16.shuffle(b, c, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23);
      v128.store(dp, v128.or(i64x2.shr_u(a, r), i64x2.shl(ab, rl)));
      v128.store(dp + 16, v128.or(i64x2.shr_u(b, r), i64x2.shl(bc, rl)));
      a = c;
    }
  }
  for (; m; m--, sp += 8, dp += 8) {
    const v = (load<u64>(sp) >> r) | (load<u64>(sp, 8) << rl);
    store<u64>(dp, merge ? load<u64>(dp) | v : v);
  }
}

/** Copies m words from sp to dp (not overlapping). */
function copyWords(dp: usize, sp: usize, m: u32): void {
  memory.copy(dp, sp, <usize>m << 3);
}

/** ORs m words at sp into m words at dp. */
function orWords(dp: usize, sp: usize, m: u32): void {
  for (; m >= 2; m -= 2, sp += 16, dp += 16) v128.store(dp, v128.or(v128.load(dp), v128.load(sp)));
  if (m) store<u64>(dp, load<u64>(dp) | load<u64>(sp));
}

/**
 * Writes output words [from, from + n) of the job's stream to consecutive words at `out`. Word 0
 * with s != 0, and every word when merging, is ORed into the word already at its place; the
 * others are stored whole. The one inner loop of bitmap_read, bitmap_emit and bitmap_or.
 */
export function emit(out: usize, from: u32, n: u32): void {
  const total = jcount + js; // stream bits, at most 2^31 + 63
  const L = (total + 63) >>> 6;
  const g = <i64>jfirst - <i64>js;
  const end = from + n;
  let k = from;
  if (k == 0 && k < end) {
    emitEdge(out, 0, g, L);
    k = 1;
  }
  const inner = min(end, L - 1); // interior words [1, L - 1) need no mask
  if (k < inner) {
    const m = inner - k;
    const sp = jw + (<usize>((g >> 6) + k) << 3); // (g >> 6) + k >= 0 since g >= -63 and k >= 1
    const dp = out + (<usize>(k - from) << 3);
    const r = <i32>(g & 63);
    if (r) shiftWords(dp, sp, m, r, jmerge);
    else if (jmerge) orWords(dp, sp, m);
    else copyWords(dp, sp, m);
    k = inner;
  }
  if (k < end) emitEdge(out + (<usize>(k - from) << 3), k, g, L);
}

/** Output word k (0 or L - 1) of the job's stream, masked to the range, written to p. */
function emitEdge(p: usize, k: u32, g: i64, L: u32): void {
  let v = bitsAt(jw, jnw, g + (<i64>k << 6));
  if (k == 0) v &= maskFrom(js);
  if (k == L - 1) {
    const e = jcount + js - (k << 6); // stream bits in the last word, 1..64
    if (e < 64) v &= (<u64>1 << e) - 1;
  }
  if (jmerge || (k == 0 && js != 0)) v |= load<u64>(p);
  store<u64>(p, v);
}

/**
 * Output words [from, from + n) of the job's stream to jout + 8 * from; with a clear range, then
 * clears the source words the stream no longer reads. Output k reads source words q0 + k and
 * q0 + k + 1, so after this block (blocks go in order) words below q0 + from + n are done with.
 * The words were just read and are zeroed whole (memory.fill): testing them first for zero
 * groups cost more than the write-backs it saves at every density measured. Returns the end of
 * the interior words cleared so far (jlo when none yet, or when there are none).
 */
function emitBlock(from: u32, n: u32): i64 {
  emit(jout + (<usize>from << 3), from, n);
  const lo = max<i64>(jq0 + from, jlo);
  const hi = min<i64>(jq0 + from + n, jhi);
  if (hi > lo) memory.fill(wordPtr(jw, <u32>lo), 0, <usize>(hi - lo) << 3);
  return max<i64>(hi, jlo);
}

/** Makes the stream of bits [first, first + count) (count >= 1) of words w at bit s the job. */
export function streamJob(w: usize, nw: u32, first: u32, count: u32, s: u32, out: usize, merge: bool): void {
  jw = w;
  jnw = nw;
  jfirst = first;
  jcount = count;
  js = s;
  jout = out;
  jmerge = merge;
  jq0 = (<i64>first - <i64>s) >> 6;
  jlo = jhi = 0;
}

/**
 * Writes the whole stream of the job (L words at jout) in blocks of CHUNK words, in order; with
 * `clear`, the source range is cleared behind it while it is still in the cache: the first word
 * after the first block (the only one that reads it), the interior words after each block, the
 * last word at the end. While a list of pins is being marked again (assembly/remark.ts), its
 * buckets are set as soon as every bit below them is cleared.
 */
export function streamAll(clear: bool): void {
  const L = (jcount + js + 63) >>> 6;
  const end = <u64>jfirst + <u64>jcount;
  const last = jfirst + jcount - 1;
  const fw = jfirst >>> 6;
  const lw = last >>> 6;
  if (clear && lw > fw + 1) {
    jlo = fw + 1;
    jhi = lw;
  }
  const marks = clear && remarking();
  for (let from: u32 = 0; from < L; from += CHUNK) {
    const done = emitBlock(from, min(CHUNK, L - from));
    if (!clear) continue;
    if (!from) fillBits(jw, jfirst, min(jcount, 64 - (jfirst & 63)), false);
    // Cleared: the first word's bits of the range, and the interior words below `done`.
    if (marks) remarkBelow(min<u64>(end, <u64>max<i64>(done, fw + 1) << 6));
  }
  if (!clear) return;
  if (lw != fw) fillBits(jw, lw << 6, last - (lw << 6) + 1, false);
  if (marks) remarkBelow(end);
}

// ---- page-size conversion -----------------------------------------------------------------

/** Coarse word J of the job (source jw of jnw words, 2^jk source bits per coarse bit). */
function coarseWord(J: u32): u64 {
  const k = jk;
  let v: u64 = 0;
  if (k >= 7) {
    // Each coarse bit covers G = 2^(k-6) whole words (G even: whole v128 steps). While all 64
    // groups exist, each is ORed whole with no early exit: at 1 % dirty the first 16 bytes of a
    // group decide it about three times in four, a branch the predictor keeps missing (32 MiB
    // to 2 MiB pages: 1.8x to x memcpy).
    const G: u64 = <u64>1 << (k - 6);
    if (((<u64>J << 6) + 64) * G <= <u64>jnw) {
      const g = <u32>G;
      let p = wordPtr(jw, <u32>((<u64>J << 6) * G));
      for (let b: u32 = 0; b < 64; b++, p += <usize>g << 3) v |= <u64>orAny(p, g) << b;
      return v;
    }
    for (let b: u32 = 0; b < 64; b++) {
      const a = ((<u64>J << 6) + b) * G;
      if (a >= jnw) break;
      if (anyWords(wordPtr(jw, <u32>a), <u32>min<u64>(G, jnw - a))) v |= <u64>1 << b;
    }
    return v;
  }
  const a = J << k; // < jnw: a coarse word in use holds at least one source bit
  let p = wordPtr(jw, a);
  if (a + (1 << k) > jnw) {
    memory.fill(scratch, 0, 512);
    memory.copy(scratch, p, <usize>(jnw - a) << 3);
    p = scratch;
  }
  return coarseBlock(p, k);
}

/** Coarse words [from, from + n) of the job: whole source blocks in tight loops, then the rest. */
function coarsenBlock(from: u32, n: u32): void {
  const k = jk;
  const end = from + n;
  let J = from;
  if (k <= 6) {
    const whole = min(end, jnw >> k); // coarse words whose 2^k source words all exist
    if (k == 1) {
      for (; J + 2 <= whole; J += 2) {
        const p = wordPtr(jw, J << 1);
        v128.store(wordPtr(jout, J), pairs2(v128.load(p), v128.load(p, 16)));
      }
    } else for (; J < whole; J++) store<u64>(wordPtr(jout, J), coarseBlock(wordPtr(jw, J << k), k));
  }
  for (; J < end; J++) store<u64>(wordPtr(jout, J), coarseWord(J));
}

/** Fine words [from, from + n) of the job, m = -jk in 1..5: each source bit repeated 2^m times. */
function refineBlock(from: u32, n: u32): void {
  const m = -jk;
  const end = from + n;
  let J = from;
  if (m == 1) {
    // Each source nibble becomes one byte through a 16-entry table; bytes interleave low, high.
    const table = i8x16(0, 3, 12, 15, 48, 51, 60, 63, -64, -61, -52, -49, -16, -13, -4, -1);
    const nib = i8x16.splat(0x0f);
    for (; J + 4 <= end; J += 4) {
      const v = v128.load(wordPtr(jw, J >> 1)); // from is even: J >> 1 holds fine words J, J + 1
      const lo = i8x16.swizzle(table, v128.and(v, nib));
      const hi = i8x16.swizzle(table, i8x16.shr_u(v, 4));
      const dp = wordPtr(jout, J);
      storeOver(dp, i8x16.shuffle(lo, hi, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23));
      storeOver(dp + 16, i8x16.shuffle(lo, hi, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31));
    }
  }
  const per: u32 = 64 >> m; // source bits per fine word, at most 32
  const sub: u32 = (1 << m) - 1;
  for (; J < end; J++) {
    let c = (load<u64>(wordPtr(jw, J >> m)) >> ((J & sub) * per)) & ((<u64>1 << per) - 1);
    for (let t = 0; t < m; t++) c = double32(c);
    store<u64>(wordPtr(jout, J), c);
  }
}

/** Fine words [0, used) for m >= 6: each source bit becomes 2^(m-6) whole words. */
function refineWide(sw: usize, snw: u32, dw: usize, used: u32, m: i32): void {
  const bytes = <usize>8 << (m - 6);
  memory.fill(dw, 0, <usize>used << 3);
  for (let i: u32 = 0; i < snw; i++) {
    let x = load<u64>(wordPtr(sw, i));
    while (x) {
      memory.fill(dw + ((<usize>i << 6) + <usize>ctz(x)) * bytes, 0xff, bytes);
      x &= x - 1;
    }
  }
}

/**
 * Converts source words sw (snw of them) into dst words dw [0, used) at 2^k times the page size
 * (k != 0, -31..31), then zeroes dst words [used, dnw).
 */
export function convertWords(sw: usize, snw: u32, dw: usize, used: u32, dnw: u32, k: i32): void {
  jw = sw;
  jnw = snw;
  jout = dw;
  jk = k;
  if (k > 0) interleave(used, Job.Coarsen);
  else if (k > -6) interleave(used, Job.Refine);
  else refineWide(sw, snw, dw, used, -k);
  if (dnw > used) memory.fill(wordPtr(dw, used), 0, <usize>(dnw - used) << 3);
}
