// One dma's dirty report in one call: the kernel's update_user_bitmap followed by the reset of
// vfio_iova_dirty_bitmap (docs/conformance.md §7.5, §7.6), without the kernel's phantom high bits
// (§10.1).
//
// The output is a stream of L = ceil((count + s) / 64) u64 words: the dma's bits shifted up by s,
// the whole destination word 0 ORed in when s != 0 (the kernel ORs all 64 bits of U[w]), and
// bits above the dma's end written as 0. Word k of the stream lands at destination word w + k:
//
//   dst word:     w            w+1                 w+L-1
//               ┌────────────┬──────────────┬ ─ ─ ┬──────────────┐
//   bits:       │old | d<<s  │ d[64-s..]    │     │ d[..end] 0 0 │
//               └────────────┴──────────────┴ ─ ─ ┴──────────────┘
import { bitmap_clear, bitmap_clear_range, bitmap_nbits, bitmap_read, bitmap_words } from './dirty_bitmap';
import { ENOMEM, PAGE_SIZE } from './constants';
import { alloc, free } from './heap';
import { pins_mark, pinsBucketed } from './pin_table_scan';
import { remarkBegin, remarkEnd } from './remark';
import { umContiguous, umFrame, umRead, umReserve, umWrite } from './user_memory';

/**
 * Output words [from, from + n) of an all-ones stream of `count` bits shifted by s, at `out`:
 * what the all-dirty rule reports, without touching the dma's own bitmap.
 */
function emitOnes(out: usize, count: u32, s: u32, from: u32, n: u32): void {
  const end = <u64>s + <u64>count; // one past the last set bit of the stream
  for (let k: u32 = 0; k < n; k++) {
    const lo = <u64>(from + k) << 6;
    let w: u64 = 0;
    const a = max<u64>(lo, <u64>s);
    const b = min<u64>(lo + 64, end);
    if (a < b) {
      const width = b - a;
      const ones = width == 64 ? <u64>-1 : (<u64>1 << width) - 1;
      w = ones << (a - lo);
    }
    const at = out + (<usize>k << 3);
    if (from + k == 0 && s != 0) w |= load<u64>(at);
    store<u64>(at, w);
  }
}


/**
 * The pins of table `pins` (0: none) as a list marked again behind the read-and-clear that
 * follows (assembly/remark.ts), or 0 when there is none (no pins, or no memory for the list).
 */
function remarkStart(bm: usize, pins: usize, nbits: u32, shift: u32): usize {
  if (!pins) return 0;
  const l = pinsBucketed(pins, nbits, shift);
  if (l) remarkBegin(bitmap_words(bm), l);
  return l;
}

/**
 * After the read-and-clear: marks the rest of the list `l` and frees it, or, without a list,
 * marks the pins of table `pins` in a pass of their own (which cannot fail).
 */
function remarkFinish(bm: usize, l: usize, pins: usize, nbits: u32, shift: u32): void {
  if (l) {
    remarkEnd();
    free(l);
  } else if (pins) {
    pins_mark(pins, bm, 0, nbits, shift);
  }
}

/**
 * Output words [k, k + n) of a dma's stream (its nbits bits shifted up by s) to `out`, clearing
 * the source bits they carry. Those words hold source bits [64k - s, 64(k + n) - s): one
 * bitmap_read, whose clearing is fused with the copy, writes them with the same footprint. With
 * `ones` the words of an all-ones stream are written and the source is left for the caller.
 */
function streamTo(bm: usize, nbits: u32, s: u32, ones: bool, out: usize, k: u32, n: u32): void {
  if (ones) {
    emitOnes(out, nbits, s, k, n);
    return;
  }
  const first: u32 = k ? (k << 6) - s : 0;
  const end = <u32>min<u64>((<u64>(k + n) << 6) - <u64>s, <u64>nbits);
  bitmap_read(bm, first, end - first, out, k ? 0 : s, 1);
}

/**
 * Reports a whole dma into user memory: the stream's L words go to the user address `addr`
 * (= bitmap.data + 8w), one run of contiguous frames per kernel call; the source is cleared as
 * it is copied, and the pinned pages are marked again right behind the clear
 * (assembly/remark.ts). `allDirty` reports every page (the rule of docs/conformance.md §7.8). An unaligned `addr` builds the stream a page at a time in
 * `scratch` (PAGE_SIZE bytes; 0: allocated here). A caller that reserved the frames and passes
 * the scratch makes the call infallible. Returns 0, or -ENOMEM (frames or scratch could not be had; nothing changed).
 */
export function report_user(
  um: usize, user: f64, bm: usize, s: u32, pins: usize, shift: u32, allDirty: u32, scratch: usize,
): i32 {
  const addr = <u64>user; // below 2^47 (checked by the host): exact in a double
  const nbits = bitmap_nbits(bm);
  const L = <u32>((<u64>nbits + <u64>s + 63) >> 6);
  if (umReserve(um, addr, <u64>L << 3) < 0) return -ENOMEM;
  const ones = allDirty != 0;
  const aligned = (addr & 7) == 0;
  const own = !aligned && !scratch;
  if (own) {
    scratch = alloc(PAGE_SIZE);
    if (!scratch) return -ENOMEM;
  }
  const marks = remarkStart(bm, ones ? 0 : pins, nbits, shift);
  let k: u32 = 0;
  while (k < L) {
    const a = addr + (<u64>k << 3);
    let n: u32;
    if (aligned) {
      // Words never straddle frames: write each run of contiguous frames in place.
      const off = <u64>(a & <u64>(PAGE_SIZE - 1));
      const want = (off + (<u64>(L - k) << 3) + <u64>(PAGE_SIZE - 1)) >> 12;
      const pages = umContiguous(um, a >> 12, want);
      n = <u32>min<u64>(<u64>(L - k), ((pages << 12) - off) >> 3);
      streamTo(bm, nbits, s, ones, umFrame(um, a >> 12) + <usize>off, k, n);
    } else {
      // An unaligned user bitmap: build the stream a page at a time in scratch, then copy it.
      n = min<u32>(L - k, <u32>PAGE_SIZE >> 3);
      if (k == 0) umRead(um, addr, scratch, 8); // word 0 ORs the user's existing word
      streamTo(bm, nbits, s, ones, scratch, k, n);
      umWrite(um, a, scratch, <u64>n << 3); // frames reserved: cannot fail
    }
    k += n;
  }
  if (own) free(scratch);
  if (ones) bitmap_clear(bm);
  remarkFinish(bm, marks, pins, nbits, shift);
  return 0;
}

/**
 * Reports bits [first, first + count) of a dma's bitmap into linear memory at `dst` (8-byte
 * aligned), the stream shifted by s. With `clear` the range is cleared and pinned pages are
 * marked again; without it the bitmap is untouched (a read that does not clear). Returns the
 * words written.
 */
export function report_words(
  dst: usize, bm: usize, first: u32, count: u32, s: u32, pins: usize, shift: u32, allDirty: u32, clear: u32,
): i32 {
  const L = <u32>((<u64>count + <u64>s + 63) >> 6);
  const nbits = bitmap_nbits(bm);
  const p = clear ? pins : 0;
  const marks = remarkStart(bm, allDirty ? 0 : p, nbits, shift);
  if (allDirty) {
    emitOnes(dst, count, s, 0, L);
    if (clear) bitmap_clear_range(bm, first, count);
  } else {
    bitmap_read(bm, first, count, dst, s, clear);
  }
  remarkFinish(bm, marks, p, nbits, shift);
  return <i32>L;
}
