// Read-only scans of a pin table (assembly/pin_table.ts): marking pinned pages in a dirty
// bitmap, counting pins in a range, and the ordered export. They visit every slot, in table
// order, so they cost the table's capacity whatever the range.
import { EINVAL } from './constants';
import { alloc, free } from './heap';
import { bitmap_set_batch } from './dirty_bitmap';
import { bucketBits, bucketedBytes, bucketStarts } from './remark';
import { capOf, countAt, countOf, HI, LO, markBit, sizeOf, slotAt } from './pin_table';

/** The bitmap bit of slot `s`: -1 when the slot is empty or its page is outside the bitmap. */
@inline function slotBit<K>(s: usize, first: u64, nbits: u64, shift: u32): i64 {
  if (countAt<K>(s) == 0) return -1;
  const q = <u64>load<K>(s);
  if (q < first) return -1;
  const b = (q - first) >> shift;
  return b < nbits ? <i64>b : -1;
}

/**
 * Appends to out[m..] the bit of every pinned page of sub-table h that slotBit maps inside the
 * bitmap, and returns the new m. Branch-free (a pinned slot follows an empty one at random, a
 * branch the predictor keeps missing): each slot's bit is stored at out[m] and m advances only
 * for a bit inside, so out needs room for one entry past the bits gathered.
 */
function gatherBits<K>(h: usize, out: usize, m: u32, first: u64, nbits: u64, shift: u32): u32 {
  const cap = capOf(h);
  for (let i: u32 = 0; i < cap; i++) {
    const s = slotAt<K>(h, i);
    const q = <u64>load<K>(s);
    const b = (q - first) >> shift;
    store<u32>(out + (<usize>m << 2), <u32>b);
    m += <u32>((countAt<K>(s) != 0) & (q >= first) & (b < nbits));
  }
  return m;
}

function markScan<K>(h: usize, bm: usize, first: u64, nbits: u64, shift: u32): void {
  const cap = capOf(h);
  for (let i: u32 = 0; i < cap; i++) {
    const b = slotBit<K>(slotAt<K>(h, i), first, nbits, shift);
    if (b >= 0) markBit(bm, <u64>b);
  }
}

// Marking pins in table order touches a random cache line (and TLB page) of the bitmap per pin,
// in between the loads of the scan. Above these sizes the bit indices are gathered first and set
// as one batch (bitmap_set_batch: batch order, or its region sort for a batch with a page per
// line of the bitmap). 65,536 pins over a 32 MiB bitmap: 2.3 ms in table order, 1.8 ms through a
// 4,096-bucket sort, 1.4 ms so; 1,000,000 pins: 30, 21 and 12 ms.
const GATHERED_MIN_NBITS: u64 = <u64>1 << 23; // a 1 MiB bitmap: beyond the L2 cache
const GATHERED_MIN_PINS: u32 = 4096;

/** markScan for the u32-keyed sub-table through one batch; false (nothing done) without memory. */
function markGathered(h: usize, bm: usize, first: u64, nbits: u64, shift: u32): bool {
  const bits = alloc((<usize>sizeOf(h) + 1) << 2);
  if (!bits) return false;
  const limit = min<u64>(nbits, <u64>load<u32>(bm)); // markBit's bound: the bitmap's own bits
  const m = gatherBits<u32>(h, bits, 0, first, limit, shift);
  bitmap_set_batch(bm, bits, m); // every bit is below the bitmap's nbits: it cannot fail
  free(bits);
  return true;
}

/**
 * For every pinned page q with first <= q and ((q - first) >> shift) < nbits, sets bit
 * ((q - first) >> shift) of the dirty bitmap `bm` (docs/conformance.md §7.2, §7.6). Returns 0, or
 * -EINVAL for shift > 63.
 */
export function pins_mark(p: usize, bm: usize, first: u64, nbits: u32, shift: u32): i32 {
  if (shift > 63) return -EINVAL;
  const lo = p + LO;
  const big = <u64>nbits >= GATHERED_MIN_NBITS && sizeOf(lo) >= GATHERED_MIN_PINS;
  if (!big || !markGathered(lo, bm, first, nbits, shift)) markScan<u32>(lo, bm, first, nbits, shift);
  markScan<u64>(p + HI, bm, first, nbits, shift);
  return 0;
}

// ---- the pins as a bucketed list, to be marked again behind a read-and-clear ------------------

/**
 * The bits (page >> shift, below nbits) of every pinned page as a bucketed list
 * (assembly/remark.ts) of at most 4,096 buckets of at least 8,192 bits, or 0 when there are no
 * pins or no memory for it. The caller frees it. The bits are gathered in table order behind the
 * list, counted per bucket, then placed bucket by bucket.
 */
export function pinsBucketed(p: usize, nbits: u32, shift: u32): usize {
  const n = sizeOf(p + LO) + sizeOf(p + HI);
  if (!n || shift > 63) return 0;
  const sh = <u32>max<i32>(13, <i32>(32 - clz(nbits - 1)) - 12);
  const nb = ((nbits - 1) >>> sh) + 1;
  const size = bucketedBytes(nb, n);
  const l = alloc(size + ((<usize>n + 1) << 2));
  if (!l) return 0;
  store<u32>(l, nb);
  store<u32>(l, sh, 4);
  const t = l + size; // the gathered bits
  let m = gatherBits<u32>(p + LO, t, 0, 0, nbits, shift);
  m = gatherBits<u64>(p + HI, t, m, 0, nbits, shift);
  const c = bucketStarts(l);
  memory.fill(c, 0, (<usize>nb + 2) << 2);
  const te = t + (<usize>m << 2);
  for (let q = t; q < te; q += 4) {
    const at = c + ((<usize>(load<u32>(q) >>> sh) + 2) << 2);
    store<u32>(at, load<u32>(at) + 1);
  }
  for (let b: u32 = 2; b <= nb + 1; b++) {
    const at = c + (<usize>b << 2);
    store<u32>(at, load<u32>(at) + load<u32>(at - 4));
  }
  // c[b + 1] is now where bucket b starts; placing moves it to where bucket b ends, which is
  // where bucket b + 1 starts, so that c[b] is bucket b's start (c[0] stays 0).
  const bits = bucketBits(l);
  for (let q = t; q < te; q += 4) {
    const b = load<u32>(q);
    const at = c + ((<usize>(b >>> sh) + 1) << 2);
    const j = load<u32>(at);
    store<u32>(at, j + 1);
    store<u32>(bits + (<usize>j << 2), b);
  }
  return l;
}

function countScan<K>(h: usize, first: u64, last: u64): i32 {
  const cap = capOf(h);
  let n = 0;
  for (let i: u32 = 0; i < cap; i++) {
    const s = slotAt<K>(h, i);
    if (countAt<K>(s) == 0) continue;
    const q = <u64>load<K>(s);
    if (q >= first && q <= last) n++;
  }
  return n;
}

/** Pinned pages in [first, first + n) (clipped at 2^64 - 1). */
export function pins_count_range(p: usize, first: u64, n: u64): i32 {
  if (n == 0) return 0;
  const last = first + (n - 1) < first ? <u64>-1 : first + (n - 1);
  if (n > <u64>capOf(p + LO) + <u64>capOf(p + HI)) {
    return countScan<u32>(p + LO, first, last) + countScan<u64>(p + HI, first, last);
  }
  let c = 0;
  for (let page = first; ; page++) {
    if (countOf(p, page) != 0) c++;
    if (page == last) break;
  }
  return c;
}

// ---- ordered export: a bounded max-heap of 16-byte records, then heapsort -----------------------

@inline function recPage(out: usize, i: u32): u64 { return load<u64>(out + (<usize>i << 4)); }
function swapRec(out: usize, i: u32, j: u32): void {
  const a = out + (<usize>i << 4);
  const b = out + (<usize>j << 4);
  const k = load<u64>(a);
  const c = load<u64>(a, 8);
  store<u64>(a, load<u64>(b));
  store<u64>(a, load<u64>(b, 8), 8);
  store<u64>(b, k);
  store<u64>(b, c, 8);
}
function siftDown(out: usize, i: u32, n: u32): void {
  while (true) {
    const l: u32 = (i << 1) + 1;
    if (l >= n) return;
    let m = l;
    if (l + 1 < n && recPage(out, l + 1) > recPage(out, l)) m = l + 1;
    if (recPage(out, m) <= recPage(out, i)) return;
    swapRec(out, i, m);
    i = m;
  }
}
function heapify(out: usize, n: u32): void {
  for (let i = n >> 1; i > 0; i--) siftDown(out, i - 1, n);
}

/** Offers one entry to the bounded heap of the `max` lowest pages; returns the new fill. */
function offer(out: usize, m: u32, max: u32, page: u64, c: u32): u32 {
  if (m < max) {
    store<u64>(out + (<usize>m << 4), page);
    store<u32>(out + (<usize>m << 4), c, 8);
    store<u32>(out + (<usize>m << 4), 0, 12);
    if (m + 1 == max) heapify(out, max);
    return m + 1;
  }
  if (page < recPage(out, 0)) {
    store<u64>(out, page);
    store<u32>(out, c, 8);
    siftDown(out, 0, max);
  }
  return m;
}

function offerAll<K>(h: usize, out: usize, m: u32, max: u32): u32 {
  const cap = capOf(h);
  for (let i: u32 = 0; i < cap; i++) {
    const s = slotAt<K>(h, i);
    const c = countAt<K>(s);
    if (c != 0) m = offer(out, m, max, <u64>load<K>(s), c);
  }
  return m;
}

/**
 * Writes up to `max` records {page u64 @0, count u32 @8, pad u32 @12} (16 bytes) at `out`: the
 * lowest pinned pages in ascending order. Returns how many were written.
 */
export function pins_collect(p: usize, out: usize, max: i32): i32 {
  if (max <= 0) return 0;
  const cap = <u32>max;
  let m = offerAll<u32>(p + LO, out, 0, cap);
  m = offerAll<u64>(p + HI, out, m, cap);
  if (m < cap) heapify(out, m);
  for (let end = m; end > 1; end--) {
    swapRec(out, 0, end - 1);
    siftDown(out, 0, end - 1);
  }
  return <i32>m;
}
