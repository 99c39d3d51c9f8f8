// The dirty bitmap: one bit per page of a tracked range, laid out as the kernel lays out a
// vfio_dma bitmap and the user's VFIO_IOMMU_DIRTY_PAGES buffer (SPEC §0.2, §5.1).
//
//   bm          bm+4         bm+8                 bm+16       bm+24           bm+16+8*nwords
//   ├───────────┼────────────┼────────────────────┼───────────┼───────────┬ ─ ─ ┤
//   │ nbits u32 │ nwords u32 │ reserved, 8 bytes  │ word 0    │ word 1    │ ... │
//   └───────────┴────────────┴────────────────────┴───────────┴───────────┴ ─ ─ ┘
//   nbits   pages covered, 1 .. BITMAP_MAX_BITS
//   nwords  u64 words allocated: ceil(nbits / 64) rounded up to even, so a 16-byte SIMD step
//           never needs a scalar tail inside the allocation
//   word i  little-endian u64 holding bits 64i .. 64i+63: bit b is bit b%64 of word b/64, which
//           is byte b/8, bit b%8 of the words read as bytes
// Invariant: every bit at or above nbits is 0, always (no phantom bits, SPEC §5.11 / §8 item 14).
//
// The shifted stream (SPEC §5.5, the kernel's write footprint of update_user_bitmap). Source bits
// [first, first+count) placed so that bit `first` lands at bit s of output word 0:
//
//   output word      0                      1                        L-1
//                ┌────────┬───────────┐ ┌──────────────┐     ┌─────────────┬────────┐
//                │ 0..s-1 │ first ... │ │ ...          │ ... │ ... last    │ zeros  │
//                └────────┴───────────┘ └──────────────┘     └─────────────┴────────┘
//   L = ceil((count + s) / 64) whole words. Output word k holds source bits [g + 64k, g + 64k + 64)
//   with g = first - s, bits outside the range masked to 0. When written out, word 0 with s != 0
//   is ORed into the word already there (the kernel ORs all 64 bits of U[w]); every other word is
//   stored whole, so bits above the range in the last word become 0.
import { alloc, free } from './heap';
import { BITMAP_MAX_BITS, EINVAL, ENOENT, ENOMEM } from './constants';

const HEADER: usize = 16; // bytes before word 0
const ONES: u64 = 0xffffffffffffffff;
// One sequential pass over a bitmap in DRAM is bound by latency, not bandwidth: a single stream
// reads 32 MiB in 4.1 ms here. Four passes over four quarters, taking 512-byte steps in turn,
// keep more lines in flight: 2.6 ms for the same count (Buffer.copy of 32 MiB: 3.1 ms), and
// read-and-clear of 32 MiB drops from 6.8 ms to 5.5 ms.
const STREAMS: u32 = 4;
const STEP: u32 = 64; // words per turn of one stream
// Zero-padded copy of a partial source block for page-size coarsening (at most 64 words).
const scratch = memory.data(512, 16);
// Region counts of a sorted bitmap_set_batch: four tables of 256 u32.
const regions = memory.data(4096, 16);

// The job of the current interleaved pass, read by its block function (no closures here).
let jw: usize = 0; // source words
let jnw: u32 = 0; // source words allocated
let jfirst: u32 = 0; // stream: first source bit
let jcount: u32 = 0; // stream: source bits
let js: u32 = 0; // stream: bit of output word 0 where source bit jfirst lands
let jout: usize = 0; // output word 0
let jmerge = false; // OR into the output instead of storing
let jq0: i64 = 0; // read-and-clear: source word of output word 0
let jlo: u32 = 0; // read-and-clear: interior source words [jlo, jhi) to clear; jlo == jhi: none
let jhi: u32 = 0;
let jk: i32 = 0; // conversion: source words per coarse word are 2^jk, or fine words per source word 2^-jk
let jacc: u64 = 0; // count: running total

@inline function nbitsOf(bm: usize): u32 {
  return load<u32>(bm);
}
@inline function nwordsOf(bm: usize): u32 {
  return load<u32>(bm, 4);
}
@inline function wordsOf(bm: usize): usize {
  return bm + HEADER;
}
@inline function wordPtr(w: usize, i: u32): usize {
  return w + (<usize>i << 3);
}
/** Bits [lo, 64) of a word, lo in 0..63. */
@inline function maskFrom(lo: u32): u64 {
  return ONES << lo;
}
/** Bits [0, hi] of a word, hi in 0..63. */
@inline function maskTo(hi: u32): u64 {
  return ONES >> (63 - hi);
}

/** The one range gate: bits [first, first + count) lie inside the bitmap. */
@inline function inRange(bm: usize, first: u32, count: u32): bool {
  return <u64>first + <u64>count <= <u64>nbitsOf(bm);
}

/** A caller's buffer: `align`-aligned and [p, p + bytes) inside linear memory. */
function bufferOk(p: usize, bytes: u64, align: usize): bool {
  return (p & (align - 1)) == 0 && <u64>p + bytes <= <u64>memory.size() << 16;
}

/** True when `words` u64 words at p overlap bitmap bm (header included). */
function overlaps(p: usize, words: u32, bm: usize): bool {
  const end = <u64>bm + HEADER + (<u64>nwordsOf(bm) << 3);
  return <u64>p < end && <u64>p + (<u64>words << 3) > <u64>bm;
}

// ---- word-level kernels (no validation; callers pass ranges already checked) -------------

/** What an interleaved pass does with each block (switched on, not called through a table). */
const enum Job {
  Count, // jacc += popcount of words jw[from, from + n)
  Clear, // zero words jw[from, from + n), skipping zero groups
  Stream, // output words [from, from + n) of the stream, then the clear behind it (emitBlock)
  Coarsen, // coarse words [from, from + n)
  Refine, // fine words [from, from + n)
}

/**
 * Runs `job` over blocks of [0, total): the range is cut into STREAMS segments of whole STEPs,
 * visited in turn, STEP words at a time. head is true for the first block of every segment but
 * the first. Returns the segment length.
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
        case Job.Stream: emitBlock(from, n, t == 0 && i != 0); break;
        case Job.Coarsen: for (let J = from; J < from + n; J++) store<u64>(wordPtr(jout, J), coarseWord(J)); break;
        default: refineBlock(from, n);
      }
    }
  }
  return seg;
}

/** Sets (ones) or clears bits [first, first + count): masks the end words, fills those between. */
function fillBits(w: usize, first: u32, count: u32, ones: bool): void {
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

/** Sets bit b through its byte: no 64-bit shift, and a short dependency chain per page. */
@inline function setBit8(w: usize, b: u32): void {
  const a = w + (b >>> 3);
  store<u8>(a, load<u8>(a) | <u8>(<u32>1 << (b & 7)));
}

/** Zeroes n words at p, skipping 64-byte groups that are already zero (sparse bitmaps stay clean). */
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

function countBits(w: usize, first: u32, count: u32): u32 {
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

/** True when any of n words at p is non-zero (n even: p is a bitmap's words). */
function anyWords(p: usize, n: u32): bool {
  for (; n >= 2; n -= 2, p += 16) if (v128.any_true(v128.load(p))) return true;
  return n != 0 && load<u64>(p) != 0;
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
  } else {
    for (; m >= 4; m -= 4, sp += 32, dp += 32) {
      const a = v128.or(i64x2.shr_u(v128.load(sp), r), i64x2.shl(v128.load(sp, 8), rl));
      const b = v128.or(i64x2.shr_u(v128.load(sp, 16), r), i64x2.shl(v128.load(sp, 24), rl));
      v128.store(dp, a);
      v128.store(dp, b, 16);
    }
  }
  for (; m; m--, sp += 8, dp += 8) {
    const v = (load<u64>(sp) >> r) | (load<u64>(sp, 8) << rl);
    store<u64>(dp, merge ? load<u64>(dp) | v : v);
  }
}

/** ORs m words at sp into m words at dp. */
function orWords(dp: usize, sp: usize, m: u32): void {
  for (; m >= 2; m -= 2, sp += 16, dp += 16) v128.store(dp, v128.or(v128.load(dp), v128.load(sp)));
  if (m) store<u64>(dp, load<u64>(dp) | load<u64>(sp));
}

/**
 * Writes output words [from, from + n) of the shifted stream of source bits [first, first+count)
 * at bit s (count >= 1, s in 0..63) to consecutive words at `out`. Word 0 with s != 0, and every
 * word when `merge`, is ORed into the word already at its place; the others are stored whole.
 * The one inner loop of bitmap_read, bitmap_emit and bitmap_or.
 */
function emit(w: usize, nw: u32, first: u32, count: u32, s: u32, out: usize, from: u32, n: u32, merge: bool): void {
  const total = count + s; // stream bits, at most 2^31 + 63
  const L = (total + 63) >>> 6;
  const g = <i64>first - <i64>s;
  const end = from + n;
  let k = from;
  if (k == 0 && k < end) {
    emitEdge(w, nw, g, s, total, L, out, 0, merge);
    k = 1;
  }
  const inner = min(end, L - 1); // interior words [1, L - 1) need no mask
  if (k < inner) {
    const m = inner - k;
    const sp = w + (<usize>((g >> 6) + k) << 3); // (g >> 6) + k >= 0 since g >= -63 and k >= 1
    const dp = out + (<usize>(k - from) << 3);
    const r = <i32>(g & 63);
    if (r) shiftWords(dp, sp, m, r, merge);
    else if (merge) orWords(dp, sp, m);
    else memory.copy(dp, sp, <usize>m << 3);
    k = inner;
  }
  if (k < end) emitEdge(w, nw, g, s, total, L, out + (<usize>(k - from) << 3), k, merge);
}

/** Output word k (0 or L - 1) of the stream, masked to the range, written to p. */
function emitEdge(w: usize, nw: u32, g: i64, s: u32, total: u32, L: u32, p: usize, k: u32, merge: bool): void {
  let v = bitsAt(w, nw, g + (<i64>k << 6));
  if (k == 0) v &= maskFrom(s);
  if (k == L - 1) {
    const e = total - (k << 6); // stream bits in the last word, 1..64
    if (e < 64) v &= (<u64>1 << e) - 1;
  }
  if (merge || (k == 0 && s != 0)) v |= load<u64>(p);
  store<u64>(p, v);
}

/**
 * Output words [from, from + n) of the job's stream to jout + 8 * from; with a clear range, then
 * clears the source words this segment no longer reads. Output k reads source words q0 + k and
 * q0 + k + 1, so after this block words below q0 + from + n are done with, except a segment's
 * first word: the previous segment's last output reads it too, so it is cleared after the pass.
 */
function emitBlock(from: u32, n: u32, head: bool): void {
  emit(jw, jnw, jfirst, jcount, js, jout + (<usize>from << 3), from, n, jmerge);
  const lo = max<i64>(jq0 + from + (head ? 1 : 0), jlo);
  const hi = min<i64>(jq0 + from + n, jhi);
  if (hi > lo) clearSparse(wordPtr(jw, <u32>lo), <u32>(hi - lo));
}

/** Sets the job for the stream of bits [first, first + count) of src at bit s, written to out. */
function streamJob(src: usize, first: u32, count: u32, s: u32, out: usize, merge: bool): void {
  jw = wordsOf(src);
  jnw = nwordsOf(src);
  jfirst = first;
  jcount = count;
  js = s;
  jout = out;
  jmerge = merge;
  jq0 = (<i64>first - <i64>s) >> 6;
  jlo = jhi = 0;
}

// ---- page-size conversion -----------------------------------------------------------------

/** ORs adjacent bit pairs of w and packs the 32 results into the low half. */
function halve(w: u64): u64 {
  let x = (w | (w >> 1)) & 0x5555555555555555;
  x = (x | (x >> 1)) & 0x3333333333333333;
  x = (x | (x >> 2)) & 0x0f0f0f0f0f0f0f0f;
  x = (x | (x >> 4)) & 0x00ff00ff00ff00ff;
  x = (x | (x >> 8)) & 0x0000ffff0000ffff;
  return (x | (x >> 16)) & 0x00000000ffffffff;
}

/** Doubles each of the low 32 bits of x: bit i becomes bits 2i and 2i + 1. */
function double32(x: u64): u64 {
  x = (x | (x << 16)) & 0x0000ffff0000ffff;
  x = (x | (x << 8)) & 0x00ff00ff00ff00ff;
  x = (x | (x << 4)) & 0x0f0f0f0f0f0f0f0f;
  x = (x | (x << 2)) & 0x3333333333333333;
  x = (x | (x << 1)) & 0x5555555555555555;
  return x | (x << 1);
}

/** One coarse word (k in 1..6) from the 2^k source words at p: bit j = any of bits [j<<k, (j+1)<<k). */
function coarseBlock(p: usize, k: i32): u64 {
  let v: u64 = 0;
  const z = i64x2.splat(0);
  if (k == 1) return halve(load<u64>(p)) | (halve(load<u64>(p, 8)) << 32);
  if (k == 2) {
    for (let t = 0; t < 4; t++) v |= halve(halve(load<u64>(p + (t << 3)))) << (t << 4);
  } else if (k == 3) {
    for (let t = 0; t < 4; t++) v |= <u64>i8x16.bitmask(i8x16.ne(v128.load(p + (t << 4)), z)) << (t << 4);
  } else if (k == 4) {
    for (let t = 0; t < 8; t++) v |= <u64>i16x8.bitmask(i16x8.ne(v128.load(p + (t << 4)), z)) << (t << 3);
  } else if (k == 5) {
    for (let t = 0; t < 16; t++) v |= <u64>i32x4.bitmask(i32x4.ne(v128.load(p + (t << 4)), z)) << (t << 2);
  } else {
    for (let t = 0; t < 32; t++) v |= <u64>i64x2.bitmask(i64x2.ne(v128.load(p + (t << 4)), z)) << (t << 1);
  }
  return v;
}

/** Coarse word J of the job (source jw of jnw words, 2^jk source bits per coarse bit). */
function coarseWord(J: u32): u64 {
  const k = jk;
  let v: u64 = 0;
  if (k >= 7) {
    // Each coarse bit covers G = 2^(k-6) whole words (G even: whole v128 steps).
    const G: u64 = <u64>1 << (k - 6);
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
      v128.store(dp, i8x16.shuffle(lo, hi, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23));
      v128.store(dp, i8x16.shuffle(lo, hi, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), 16);
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

// ---- runs --------------------------------------------------------------------------------

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

// ---- exports -------------------------------------------------------------------------------

/** A zeroed bitmap of nbits bits (1 .. 2^31): its handle, or -EINVAL, or -ENOMEM. */
export function bitmap_create(nbits: u32): i32 {
  if (nbits == 0 || <u64>nbits > <u64>BITMAP_MAX_BITS) return -EINVAL;
  const nwords = (((nbits + 63) >>> 6) + 1) & ~1;
  const bytes = HEADER + (<usize>nwords << 3);
  const bm = alloc(bytes);
  if (!bm) return -ENOMEM;
  memory.fill(bm, 0, bytes);
  store<u32>(bm, nbits);
  store<u32>(bm, nwords, 4);
  return <i32>bm;
}

/** Frees a bitmap. */
export function bitmap_free(bm: usize): void {
  free(bm);
}

/** Bits of the bitmap (u32: 2^31 reads as negative through a signed i32). */
export function bitmap_nbits(bm: usize): u32 {
  return nbitsOf(bm);
}

/** Address of word 0. */
export function bitmap_words(bm: usize): usize {
  return wordsOf(bm);
}

/** Sets one bit: 0, or -EINVAL when bit >= nbits. */
export function bitmap_set(bm: usize, bit: u32): i32 {
  if (bit >= nbitsOf(bm)) return -EINVAL;
  const p = wordPtr(wordsOf(bm), bit >>> 6);
  store<u64>(p, load<u64>(p) | (<u64>1 << (bit & 63)));
  return 0;
}

/** Sets bits [first, first + count): 0 or -EINVAL. */
export function bitmap_set_range(bm: usize, first: u32, count: u32): i32 {
  if (!inRange(bm, first, count)) return -EINVAL;
  fillBits(wordsOf(bm), first, count, true);
  return 0;
}

/** Clears bits [first, first + count): 0 or -EINVAL. */
export function bitmap_clear_range(bm: usize, first: u32, count: u32): i32 {
  if (!inRange(bm, first, count)) return -EINVAL;
  fillBits(wordsOf(bm), first, count, false);
  return 0;
}

/** 1 when the bit is set, 0 when clear, -EINVAL when bit >= nbits. */
export function bitmap_test(bm: usize, bit: u32): i32 {
  if (bit >= nbitsOf(bm)) return -EINVAL;
  return <i32>((load<u64>(wordPtr(wordsOf(bm), bit >>> 6)) >> (bit & 63)) & 1);
}

/** Set bits in [first, first + count) as u32 (up to 2^31), or -EINVAL. */
export function bitmap_count(bm: usize, first: u32, count: u32): u32 {
  if (!inRange(bm, first, count)) return <u32>-EINVAL;
  return countBits(wordsOf(bm), first, count);
}

/** The first set bit at or after `from`; -ENOENT when none (from == nbits too), -EINVAL past it. */
export function bitmap_next_set(bm: usize, from: u32): i32 {
  const nb = nbitsOf(bm);
  if (from > nb) return -EINVAL;
  if (from == nb) return -ENOENT;
  const w = wordsOf(bm);
  const nw = nwordsOf(bm);
  let i = from >>> 6;
  let x = load<u64>(wordPtr(w, i)) & maskFrom(from & 63);
  while (!x) {
    if (++i >= nw) return -ENOENT;
    // Skip zero words four at a time (sparse bitmaps); nw is even, so pairs never pass the end.
    while (i + 4 <= nw && !v128.any_true(v128.or(v128.load(wordPtr(w, i)), v128.load(wordPtr(w, i), 16)))) i += 4;
    if (i >= nw) return -ENOENT;
    x = load<u64>(wordPtr(w, i));
  }
  return <i32>((i << 6) + <u32>ctz(x)); // below nbits: bits past it are 0
}

/** Clears every bit, writing only words that are not already zero. */
export function bitmap_clear(bm: usize): void {
  jw = wordsOf(bm);
  interleave(nwordsOf(bm), Job.Clear);
}

/**
 * Sets the n bits whose u32 indices are at `pages`. Every index is checked before any bit
 * changes: 0, or -EINVAL (an index >= nbits, or a buffer outside memory).
 */
export function bitmap_set_batch(bm: usize, pages: usize, n: u32): i32 {
  if (!bufferOk(pages, <u64>n << 2, 4)) return -EINVAL;
  const w = wordsOf(bm);
  const e = pages + (<usize>n << 2);
  // A batch with a page for every line of a bitmap past the TLB's reach is sorted into 256
  // regions first, so that each region's lines are fetched once: 1,000,000 random pages into
  // 32 MiB take 11 ms so, 16.6 ms in batch order (cache and TLB misses). Without scratch memory,
  // batch order.
  const bytes = <usize>nwordsOf(bm) << 3;
  if (bytes >= 1 << 23 && <usize>n >= bytes >> 6) {
    const shift = <u32>max<i32>(0, 24 - <i32>clz(nbitsOf(bm) - 1)); // page >> shift < 256
    memory.fill(regions, 0, 4096);
    let mx: u32 = 0;
    for (let p = pages, t: usize = 0; p < e; p += 4, t = (t + 1024) & 3072) {
      const v = load<u32>(p); // four count tables, so repeats do not wait on each other
      const c = regions + t + (<usize>((v >>> shift) & 255) << 2);
      store<u32>(c, load<u32>(c) + 1);
      mx = max(mx, v);
    }
    if (mx >= nbitsOf(bm)) return -EINVAL;
    const sorted = alloc(<usize>n << 2);
    if (sorted) {
      for (let r: usize = 0, at: u32 = 0; r < 1024; r += 4) {
        const c = load<u32>(regions + r) + load<u32>(regions + r, 1024) + load<u32>(regions + r, 2048) + load<u32>(regions + r, 3072);
        store<u32>(regions + r, at);
        at += c;
      }
      for (let p = pages; p < e; p += 4) {
        const v = load<u32>(p);
        const c = regions + (<usize>(v >>> shift) << 2);
        const at = load<u32>(c);
        store<u32>(c, at + 1);
        store<u32>(sorted + (<usize>at << 2), v);
      }
      setBits8(w, sorted, n);
      free(sorted);
      return 0;
    }
  } else if (n) {
    let mv = i32x4.splat(0);
    let p = pages;
    for (; p + 64 <= e; p += 64) {
      const a = i32x4.max_u(v128.load(p), v128.load(p, 16));
      mv = i32x4.max_u(mv, i32x4.max_u(a, i32x4.max_u(v128.load(p, 32), v128.load(p, 48))));
    }
    let mx = max(max(<u32>i32x4.extract_lane(mv, 0), <u32>i32x4.extract_lane(mv, 1)),
      max(<u32>i32x4.extract_lane(mv, 2), <u32>i32x4.extract_lane(mv, 3)));
    for (; p < e; p += 4) mx = max(mx, load<u32>(p));
    if (mx >= nbitsOf(bm)) return -EINVAL;
  }
  setBits8(w, pages, n);
  return 0;
}

/** Sets the bits of the n u32 pages at p, byte-wide: bit b is byte b/8, bit b%8 (SPEC §0.2). */
function setBits8(w: usize, p: usize, n: u32): void {
  const e = p + (<usize>n << 2);
  for (; p + 16 <= e; p += 16) {
    setBit8(w, load<u32>(p));
    setBit8(w, load<u32>(p, 4));
    setBit8(w, load<u32>(p, 8));
    setBit8(w, load<u32>(p, 12));
  }
  for (; p < e; p += 4) setBit8(w, load<u32>(p));
}

/**
 * The kernel footprint (SPEC §5.5): writes the shifted stream of src bits [first, first+count)
 * at bit s (0..63) of the word at dst, L = ceil((count + s) / 64) whole words, word 0 ORed when
 * s != 0. With clear != 0 the range is then cleared in src (only words that are not zero are
 * written). Returns L (0 for count 0), or -EINVAL: range, s, dst misaligned, outside memory or
 * overlapping src.
 */
export function bitmap_read(src: usize, first: u32, count: u32, dst: usize, s: u32, clear: u32): i32 {
  if (!inRange(src, first, count) || s > 63) return -EINVAL;
  if (!count) return 0;
  const L = (count + s + 63) >>> 6;
  if (!bufferOk(dst, <u64>L << 3, 8) || overlaps(dst, L, src)) return -EINVAL;
  streamJob(src, first, count, s, dst, false);
  const last = first + count - 1;
  const fw = first >>> 6;
  const lw = last >>> 6;
  if (clear && lw > fw + 1) {
    jlo = fw + 1; // interior words are cleared behind the copy, the two end words after it
    jhi = lw;
  }
  const seg = interleave(L, Job.Stream);
  if (!clear) return <i32>L;
  for (let i: u32 = 1; i < STREAMS && i * seg < L; i++) {
    const b = jq0 + i * seg; // the first source word of segment i, left by emitBlock
    if (b >= <i64>jlo && b < <i64>jhi) store<u64>(wordPtr(jw, <u32>b), 0);
  }
  fillBits(jw, first, min(count, 64 - (first & 63)), false);
  if (lw != fw) fillBits(jw, lw << 6, last - (lw << 6) + 1, false);
  return <i32>L;
}

/**
 * Output words [from, from + n) of bitmap_read's stream, written to consecutive words at `out`;
 * word 0 (from == 0) with s != 0 is ORed into the word already at out. Never clears. Returns n,
 * or -EINVAL: range, s, from + n > L, out misaligned, outside memory or overlapping src.
 */
export function bitmap_emit(src: usize, first: u32, count: u32, s: u32, out: usize, from: u32, n: u32): i32 {
  if (!inRange(src, first, count) || s > 63) return -EINVAL;
  const L: u32 = count ? (count + s + 63) >>> 6 : 0;
  if (<u64>from + <u64>n > <u64>L) return -EINVAL;
  if (!n) return 0;
  if (!bufferOk(out, <u64>n << 3, 8) || overlaps(out, n, src)) return -EINVAL;
  emit(wordsOf(src), nwordsOf(src), first, count, s, out, from, n, false);
  return <i32>n;
}

/**
 * ORs src bits [srcFirst, srcFirst + count) into dst bits [dstFirst, dstFirst + count).
 * 0, or -EINVAL: a range outside its bitmap, or overlapping ranges of one bitmap.
 */
export function bitmap_or(dst: usize, dstFirst: u32, src: usize, srcFirst: u32, count: u32): i32 {
  if (!inRange(dst, dstFirst, count) || !inRange(src, srcFirst, count)) return -EINVAL;
  if (!count) return 0;
  if (dst == src && dstFirst < srcFirst + count && srcFirst < dstFirst + count) return -EINVAL;
  const s = dstFirst & 63;
  streamJob(src, srcFirst, count, s, wordPtr(wordsOf(dst), dstFirst >>> 6), true);
  interleave((count + s + 63) >>> 6, Job.Stream);
  return 0;
}

/**
 * Page-size conversion into dst (overwritten whole). k > 0: dst bit j = OR of src bits
 * [j << k, (j + 1) << k), dst has ceil(nbits / 2^k) bits. k < 0: each src bit repeated 2^-k
 * times, dst has nbits << -k bits. k = 0 copies. 0, or -EINVAL: k outside -31..31, dst == src,
 * or dst of another size.
 */
export function bitmap_convert(src: usize, dst: usize, k: i32): i32 {
  if (k < -31 || k > 31 || src == dst) return -EINVAL;
  const nb = <u64>nbitsOf(src);
  const want: u64 = k >= 0 ? (nb + (<u64>1 << k) - 1) >> k : nb << -k;
  if (want != <u64>nbitsOf(dst)) return -EINVAL;
  jw = wordsOf(src);
  jnw = nwordsOf(src);
  jout = wordsOf(dst);
  jk = k;
  const dnw = nwordsOf(dst);
  const used = <u32>((want + 63) >> 6); // dst words that can hold set bits
  if (k == 0) memory.copy(jout, jw, <usize>jnw << 3);
  else if (k > 0) interleave(used, Job.Coarsen);
  else if (k > -6) interleave(used, Job.Refine);
  else refineWide(jw, jnw, jout, used, -k);
  if (dnw > used) memory.fill(wordPtr(jout, used), 0, <usize>(dnw - used) << 3);
  return 0;
}

/**
 * Runs of set bits inside [first, first + count), each maximal inside the range, ascending:
 * up to `max` (start, length) u32 pairs at `out`, start counted from bit 0. Returns how many,
 * or -EINVAL (range; out not 4-aligned or outside memory). Resume at start + length of the last.
 */
export function bitmap_runs(bm: usize, first: u32, count: u32, out: usize, max: u32): i32 {
  if (!inRange(bm, first, count) || !bufferOk(out, <u64>max << 3, 4)) return -EINVAL;
  if (!count || !max) return 0;
  // Word by word, the bits where the bitmap changes (x ^ (x << 1)) are appended to a list
  // without a branch per run: the changes alternate start, end, start, end, so pairs of them are
  // the runs. Branching per run cost 12.8 ns a run at 1 % density.
  const w = wordsOf(bm);
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
      const k = min(nt >> 1, max - n);
      pairRuns(out + (<usize>n << 3), k);
      n += k;
      if (n == max) return <i32>n;
      if (nt & 1) store<u32>(runMarks, load<u32>(runMarks + (<usize>(nt - 1) << 2))); // an open run
      nt &= 1;
      lim = stageLimit(max - n);
    }
    i++;
    // Every fourth word, skip groups of four zero words while no run is open (sparse bitmaps).
    if (!(i & 3) && !prev) {
      while (i + 4 <= lw && !v128.any_true(v128.or(v128.load(wordPtr(w, i)), v128.load(wordPtr(w, i), 16)))) i += 4;
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
  return <i32>(n + k);
}

/** Staged changes at which bitmap_runs writes out: a full stage, or `left` more runs. */
@inline function stageLimit(left: u32): u32 {
  return left >= RUN_STAGE >> 1 ? RUN_STAGE : left << 1;
}
