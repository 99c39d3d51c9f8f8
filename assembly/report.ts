// One dma's dirty report in one call: the kernel's update_user_bitmap followed by the reset of
// vfio_iova_dirty_bitmap (SPEC §5.5, §5.6), without the kernel's phantom high bits (§8 item 14).
//
// The output is a stream of L = ceil((count + s) / 64) u64 words: the dma's bits shifted up by s,
// the whole destination word 0 ORed in when s != 0 (the kernel ORs all 64 bits of U[w]), and
// bits above the dma's end written as 0. Word k of the stream lands at destination word w + k:
//
//   dst word:     w            w+1                 w+L-1
//               ┌────────────┬──────────────┬ ─ ─ ┬──────────────┐
//   bits:       │old | d<<s  │ d[64-s..]    │     │ d[..end] 0 0 │
//               └────────────┴──────────────┴ ─ ─ ┴──────────────┘
import { bitmap_clear, bitmap_clear_range, bitmap_emit, bitmap_nbits, bitmap_read } from './dirty_bitmap';
import { ENOMEM, PAGE_SIZE } from './constants';
import { alloc, free } from './heap';
import { pins_mark } from './pin_table';
import { umFrame, umRead, umReserve, umWrite } from './user_memory';

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

/** Writes output words [from, from + n) of the dma's stream (or of all ones) at `out`. */
@inline function emit(bm: usize, nbits: u32, s: u32, allDirty: bool, out: usize, from: u32, n: u32): void {
  if (allDirty) emitOnes(out, nbits, s, from, n);
  else bitmap_emit(bm, 0, nbits, s, out, from, n);
}

/** After a clearing read: zero the whole bitmap, then mark every page still pinned (§5.6). */
@inline function reset(bm: usize, pins: usize, shift: u32): void {
  bitmap_clear(bm);
  if (pins) pins_mark(pins, bm, 0, bitmap_nbits(bm), shift);
}

/**
 * Reports a whole dma into user memory: the stream's L words go to the user address `addr`
 * (= bitmap.data + 8w), frame by frame; then the dma's bitmap is reset. `allDirty` reports every
 * page (the rule of §5.8). Returns 0, or -ENOMEM (frames could not be had; nothing changed).
 */
export function report_user(um: usize, user: f64, bm: usize, s: u32, pins: usize, shift: u32, allDirty: u32): i32 {
  const addr = <u64>user; // below 2^47 (checked by the host): exact in a double
  const nbits = bitmap_nbits(bm);
  const L = <u32>((<u64>nbits + <u64>s + 63) >> 6);
  const bytes = <u64>L << 3;
  if (umReserve(um, addr, bytes) < 0) return -ENOMEM;
  if ((addr & 7) == 0) {
    // Words never straddle frames: write each frame's share of the stream in place.
    let k: u32 = 0;
    while (k < L) {
      const a = addr + (<u64>k << 3);
      const off = <u32>(a & <u64>(PAGE_SIZE - 1));
      const n = min<u32>(L - k, (<u32>PAGE_SIZE - off) >> 3);
      emit(bm, nbits, s, allDirty != 0, umFrame(um, a >> 12) + off, k, n);
      k += n;
    }
  } else {
    // An unaligned user bitmap: build the stream a page at a time in scratch, then copy it.
    const scratch = alloc(PAGE_SIZE);
    if (!scratch) return -ENOMEM;
    let k: u32 = 0;
    while (k < L) {
      const n = min<u32>(L - k, <u32>PAGE_SIZE >> 3);
      if (k == 0) umRead(um, addr, scratch, 8); // word 0 ORs the user's existing word
      emit(bm, nbits, s, allDirty != 0, scratch, k, n);
      umWrite(um, addr + (<u64>k << 3), scratch, <u64>n << 3); // frames reserved: cannot fail
      k += n;
    }
    free(scratch);
  }
  reset(bm, pins, shift);
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
  if (allDirty) {
    emitOnes(dst, count, s, 0, L);
    if (clear) bitmap_clear_range(bm, first, count);
  } else {
    bitmap_read(bm, first, count, dst, s, clear);
  }
  if (clear && pins) pins_mark(pins, bm, 0, bitmap_nbits(bm), shift);
  return <i32>L;
}
