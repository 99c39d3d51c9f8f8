// The dirty bitmap: one bit per page of a tracked range, laid out as the kernel lays out a
// vfio_dma bitmap and the user's VFIO_IOMMU_DIRTY_PAGES buffer (docs/conformance.md §7.5).
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
// Invariant: every bit at or above nbits is 0, always (no phantom bits: docs/conformance.md §10.1).
//
// The shifted stream (the kernel's write footprint of update_user_bitmap, docs/conformance.md
// §7.5). Source bits [first, first+count) placed so that bit `first` lands at bit s of output
// word 0:
//
//   output word      0                      1                        L-1
//                ┌────────┬───────────┐ ┌──────────────┐     ┌─────────────┬────────┐
//                │ 0..s-1 │ first ... │ │ ...          │ ... │ ... last    │ zeros  │
//                └────────┴───────────┘ └──────────────┘     └─────────────┴────────┘
//   L = ceil((count + s) / 64) whole words. Output word k holds source bits [g + 64k, g + 64k + 64)
//   with g = first - s, bits outside the range masked to 0. When written out, word 0 with s != 0
//   is ORed into the word already there (the kernel ORs all 64 bits of U[w]); every other word is
//   stored whole, so bits above the range in the last word become 0.
import { alloc, free, realloc } from './heap';
import { BITMAP_MAX_BITS, EINVAL, ENOENT, ENOMEM } from './constants';
import {
  clearWords,
  convertWords,
  countBits,
  emit,
  fillBits,
  maskFrom,
  maskTo,
  streamAll,
  streamJob,
  wordPtr,
} from './dirty_bitmap_kernels';
import { listRuns } from './dirty_bitmap_runs';
import { setBits8 } from './remark';

const HEADER: usize = 16; // bytes before word 0

/** Bits of bitmap `bm` (its header's first u32). */
@inline export function nbitsOf(bm: usize): u32 {
  return load<u32>(bm);
}
@inline export function nwordsOf(bm: usize): u32 {
  return load<u32>(bm, 4);
}
/** The address of word 0 of bitmap `bm`, right after its header. */
@inline export function wordsOf(bm: usize): usize {
  return bm + HEADER;
}

/** The one range gate: bits [first, first + count) lie inside the bitmap. */
@inline function inRange(bm: usize, first: u32, count: u32): bool {
  return <u64>first + <u64>count <= <u64>nbitsOf(bm);
}

/** A caller's buffer: `align`-aligned and [p, p + bytes) inside linear memory. */
export function bufferOk(p: usize, bytes: u64, align: usize): bool {
  return (p & (align - 1)) == 0 && <u64>p + bytes <= <u64>memory.size() << 16;
}

/** True when `words` u64 words at p overlap bitmap bm (header included). */
function overlaps(p: usize, words: u32, bm: usize): bool {
  const end = <u64>bm + HEADER + (<u64>nwordsOf(bm) << 3);
  return <u64>p < end && <u64>p + (<u64>words << 3) > <u64>bm;
}

// ---- batches ------------------------------------------------------------------------------

// A big batch is sorted by region before its bits are set: 256 regions of 1/256 of the bitmap
// each, in two scatters. The first moves pages into 32 groups of 8 regions: a scatter into more
// streams than that runs past the first-level TLB, 1,000,000 pages 1.7 ms into 32 streams, 5 ms
// into 64 or 256. The second scatters one group at a time into its 8 regions, in a buffer the
// cache holds, and each region's bits are set right after (1,000,000 random pages into 32 MiB:
// 10.4 ms through one scatter into 256 regions, 8.7 ms so, alternated in one run). `regions`
// holds four tables of 256 u32: first four copies of the region counts, then the tables below.
const REGION_BITS: u32 = 8;
// A batch with fewer pages than the bitmap has lines is only grouped: each group's pages then
// hit a TLB that holds the group (65,536 random pages into 32 MiB: 1.10 -> 0.85 ms).
const GROUPED_MIN: u32 = 16384;
const GROUP_BITS: u32 = 3; // regions per group: 2^3
const GROUPS: u32 = 1 << (REGION_BITS - GROUP_BITS);
const regions = memory.data(4096, 16);
const STARTS = regions; // after the counts: where each region's pages start in sorted order
const GROUP_AT = regions + 1024; // each group's cursor
const ENDS = regions + 2048; // where each region's pages end
const LOCAL_AT = regions + 3072; // cursors of one group's regions in its local buffer
let touched: u64 = 0; // OR of the words a sorted batch read ahead (never read back)

/**
 * Sets the bits of the n u32 pages at `pages` in words w of a bitmap of nbits bits (nw words),
 * after checking them all: 0, or -EINVAL when a page is >= nbits (nothing changed).
 */
function setBatch(w: usize, nbits: u32, nw: u32, pages: usize, n: u32): i32 {
  // Into a bitmap past the TLB's reach (8 MiB and more), a batch with a page for every line is
  // sorted by region, so that each region's lines are fetched once (1,000,000 random pages into
  // 32 MiB take about 19 ms in batch order: a cache and a TLB miss a page); a smaller batch of
  // GROUPED_MIN pages or more is only grouped. Without scratch memory for either, batch order.
  const bytes = <usize>nw << 3;
  if (bytes >= 1 << 23 && n >= GROUPED_MIN) {
    const r = setSorted(w, nbits, bytes, pages, n, <usize>n >= bytes >> 6);
    if (r <= 0) return r;
  } else if (n) {
    if (maxOf(pages, n) >= nbits) return -EINVAL;
  }
  setBits8(w, pages, n);
  return 0;
}

/** The largest of n >= 1 u32 at p. */
function maxOf(p: usize, n: u32): u32 {
  const e = p + (<usize>n << 2);
  let mv = i32x4.splat(0);
  for (; p + 64 <= e; p += 64) {
    const a = i32x4.max_u(v128.load(p), v128.load(p, 16));
    mv = i32x4.max_u(mv, i32x4.max_u(a, i32x4.max_u(v128.load(p, 32), v128.load(p, 48))));
  }
  let mx = max(max(<u32>i32x4.extract_lane(mv, 0), <u32>i32x4.extract_lane(mv, 1)),
    max(<u32>i32x4.extract_lane(mv, 2), <u32>i32x4.extract_lane(mv, 3)));
  for (; p < e; p += 4) mx = max(mx, load<u32>(p));
  return mx;
}

/**
 * setBatch through the sort: into groups, then with `fine` into regions. 0 when done, -EINVAL
 * (nothing changed), or 1 when the scratch memory could not be had (nothing changed; the caller
 * sets the bits in batch order).
 */
function setSorted(w: usize, nbits: u32, bytes: usize, pages: usize, n: u32, fine: bool): i32 {
  const e = pages + (<usize>n << 2);
  const shift = <u32>max<i32>(0, <i32>(32 - REGION_BITS) - <i32>clz(nbits - 1)); // page >> shift < 256
  const gshift = shift + GROUP_BITS;
  // Region counts, in four tables so that repeats do not wait on each other; the largest page.
  memory.fill(regions, 0, 4096);
  let mx: u32 = 0;
  for (let p = pages, t: usize = 0; p < e; p += 4, t = (t + 1024) & 3072) {
    const v = load<u32>(p);
    const c = regions + t + (<usize>((v >>> shift) & 255) << 2);
    store<u32>(c, load<u32>(c) + 1);
    mx = max(mx, v);
  }
  if (mx >= nbits) return -EINVAL;
  // The counts become STARTS, ENDS and each group's cursor, at its first region's start.
  for (let r: usize = 0, at: u32 = 0; r < 1024; r += 4) {
    const c = load<u32>(regions + r) + load<u32>(regions + r, 1024) + load<u32>(regions + r, 2048) + load<u32>(regions + r, 3072);
    store<u32>(regions + r, at);
    at += c;
  }
  let most: u32 = 0; // pages of the fullest group
  for (let r: u32 = 0; r < 256; r++) {
    const start = load<u32>(STARTS + (<usize>r << 2));
    store<u32>(ENDS + (<usize>r << 2), r < 255 ? load<u32>(STARTS + (<usize>(r + 1) << 2)) : n);
    if (r % (1 << GROUP_BITS)) continue;
    const g = r >> GROUP_BITS;
    store<u32>(GROUP_AT + (<usize>g << 2), start);
    const next = r + (1 << GROUP_BITS);
    most = max(most, (next < 256 ? load<u32>(STARTS + (<usize>next << 2)) : n) - start);
  }
  const grouped = alloc(<usize>n << 2);
  if (!grouped) return 1;
  const local = fine ? alloc(<usize>most << 2) : grouped;
  if (!local) {
    free(grouped);
    return 1;
  }
  for (let p = pages; p < e; p += 4) {
    const v = load<u32>(p);
    const c = GROUP_AT + (<usize>(v >>> gshift) << 2);
    const at = load<u32>(c);
    store<u32>(c, at + 1);
    store<u32>(grouped + (<usize>at << 2), v);
  }
  if (!fine) {
    setBits8(w, grouped, n);
    free(grouped);
    return 0;
  }
  const rbytes = <usize>1 << (shift - 3); // bytes a region covers
  for (let g: u32 = 0; g < GROUPS; g++) {
    const r0 = g << GROUP_BITS;
    const gbegin = load<u32>(STARTS + (<usize>r0 << 2));
    const gend = load<u32>(ENDS + (<usize>(r0 + (1 << GROUP_BITS) - 1) << 2));
    if (gend == gbegin) continue;
    for (let k: u32 = 0; k < 1 << GROUP_BITS; k++) {
      store<u32>(LOCAL_AT + (<usize>k << 2), load<u32>(STARTS + (<usize>(r0 + k) << 2)) - gbegin);
    }
    const ge = grouped + (<usize>gend << 2);
    for (let p = grouped + (<usize>gbegin << 2); p < ge; p += 4) {
      const v = load<u32>(p);
      const c = LOCAL_AT + (<usize>((v >>> shift) & ((1 << GROUP_BITS) - 1)) << 2);
      const at = load<u32>(c);
      store<u32>(c, at + 1);
      store<u32>(local + (<usize>at << 2), v);
    }
    for (let k: u32 = 0; k < 1 << GROUP_BITS; k++) {
      const r = r0 + k;
      const begin = load<u32>(STARTS + (<usize>r << 2));
      const end = load<u32>(ENDS + (<usize>r << 2));
      if (end == begin) continue;
      // Read one word of every line of the region first, so that it arrives at streaming
      // speed; then its pages' bits hit the cache.
      const at = <usize>r * rbytes;
      readLines(w + at, min(rbytes, bytes - at));
      setBits8(w, local + (<usize>(begin - gbegin) << 2), end - begin);
    }
  }
  free(local);
  free(grouped);
  return 0;
}

/** Reads one word of every line of [base, base + size), in four interleaved streams. */
function readLines(base: usize, size: usize): void {
  let sum: u64 = 0;
  const q = (size >> 2) & ~63;
  for (let o: usize = 0; o < q; o += 64) {
    sum |= load<u64>(base + o) | load<u64>(base + q + o) | load<u64>(base + 2 * q + o) | load<u64>(base + 3 * q + o);
  }
  for (let o: usize = 4 * q; o < size; o += 64) sum |= load<u64>(base + o);
  touched |= sum; // keeps the reads
}

// ---- exports -------------------------------------------------------------------------------

/** A zeroed bitmap of nbits bits (1 .. 2^31): its handle, or -EINVAL, or -ENOMEM. */
export function bitmap_create(nbits: u32): i32 {
  return make(nbits, true);
}

/** A bitmap of nbits bits, its words zeroed or left as the heap had them. */
function make(nbits: u32, zero: bool): i32 {
  if (nbits == 0 || <u64>nbits > <u64>BITMAP_MAX_BITS) return -EINVAL;
  const nwords = (((nbits + 63) >>> 6) + 1) & ~1;
  const bytes = HEADER + (<usize>nwords << 3);
  const bm = alloc(bytes);
  if (!bm) return -ENOMEM;
  if (zero) memory.fill(bm + HEADER, 0, bytes - HEADER);
  store<u32>(bm, nbits);
  store<u32>(bm, nwords, 4);
  store<u64>(bm, 0, 8);
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
    // Skip zero words four at a time (sparse bitmaps).
    while (i + 4 <= nw && !v128.any_true(v128.or(v128.load(wordPtr(w, i)), v128.load(wordPtr(w, i), 16)))) i += 4;
    if (i >= nw) return -ENOENT;
    x = load<u64>(wordPtr(w, i));
  }
  return <i32>((i << 6) + <u32>ctz(x)); // below nbits: bits past it are 0
}

/** Clears every bit, writing only words that are not already zero. */
export function bitmap_clear(bm: usize): void {
  clearWords(wordsOf(bm), nwordsOf(bm));
}

/**
 * Sets the n bits whose u32 indices are at `pages`. Every index is checked before any bit
 * changes: 0, or -EINVAL (an index >= nbits, or a buffer outside memory).
 */
export function bitmap_set_batch(bm: usize, pages: usize, n: u32): i32 {
  if (!bufferOk(pages, <u64>n << 2, 4)) return -EINVAL;
  return setBatch(wordsOf(bm), nbitsOf(bm), nwordsOf(bm), pages, n);
}

/**
 * update_user_bitmap's footprint: writes the shifted stream of src bits [first, first+count)
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
  streamJob(wordsOf(src), nwordsOf(src), first, count, s, dst, false);
  streamAll(clear != 0);
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
  streamJob(wordsOf(src), nwordsOf(src), first, count, s, out, false);
  emit(out, from, n);
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
  streamJob(wordsOf(src), nwordsOf(src), srcFirst, count, s, wordPtr(wordsOf(dst), dstFirst >>> 6), true);
  streamAll(false);
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
  if (convertedBits(src, k) != <u64>nbitsOf(dst)) return -EINVAL;
  convertInto(src, dst, k);
  return 0;
}

/**
 * bitmap_convert into a bitmap it makes: the handle of a new bitmap of src at 2^k times its page
 * size, or -EINVAL (k outside -31..31, more than 2^31 bits) or -ENOMEM. The conversion writes
 * every word, so the new bitmap is not zeroed first (converting 32 MiB to 8 KiB pages, whose
 * 16 MiB zeroing cost half a memcpy of the source).
 */
export function bitmap_convert_new(src: usize, k: i32): i32 {
  if (k < -31 || k > 31) return -EINVAL;
  const want = convertedBits(src, k);
  if (want > <u64>BITMAP_MAX_BITS) return -EINVAL;
  const dst = make(<u32>want, false);
  if (dst > 0) convertInto(src, dst, k);
  return dst;
}

/** Bits of src at 2^k times its page size. */
function convertedBits(src: usize, k: i32): u64 {
  const nb = <u64>nbitsOf(src);
  return k >= 0 ? (nb + (<u64>1 << k) - 1) >> k : nb << -k;
}

/** Writes every word of dst (convertedBits(src, k) bits) from src. */
function convertInto(src: usize, dst: usize, k: i32): void {
  const used = <u32>((<u64>nbitsOf(dst) + 63) >> 6); // dst words that can hold set bits
  if (k == 0) memory.copy(wordsOf(dst), wordsOf(src), <usize>nwordsOf(src) << 3);
  else convertWords(wordsOf(src), nwordsOf(src), wordsOf(dst), used, nwordsOf(dst), k);
}

/**
 * Runs of set bits inside [first, first + count), each maximal inside the range, ascending:
 * up to `max` (start, length) u32 pairs at `out`, start counted from bit 0. Returns how many,
 * or -EINVAL (range; out not 4-aligned or outside memory). Resume at start + length of the last.
 */
export function bitmap_runs(bm: usize, first: u32, count: u32, out: usize, max: u32): i32 {
  if (!inRange(bm, first, count) || !bufferOk(out, <u64>max << 3, 4)) return -EINVAL;
  if (!count || !max) return 0;
  return <i32>listRuns(wordsOf(bm), first, count, out, max);
}
