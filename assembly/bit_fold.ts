// Bit folds for page-size conversion: SIMD kernels that turn groups of 2^k fine bits into one
// coarse bit (any set), and one coarse bit into two fine ones. Pure functions of their arguments;
// assembly/dirty_bitmap_kernels.ts drives them over whole bitmaps.

/** Doubles each of the low 32 bits of x: bit i becomes bits 2i and 2i + 1. */
export function double32(x: u64): u64 {
  x = (x | (x << 16)) & 0x0000ffff0000ffff;
  x = (x | (x << 8)) & 0x00ff00ff00ff00ff;
  x = (x | (x << 4)) & 0x0f0f0f0f0f0f0f0f;
  x = (x | (x << 2)) & 0x3333333333333333;
  x = (x | (x << 1)) & 0x5555555555555555;
  return x | (x << 1);
}

/**
 * 8 coarse bits at k = 1 in the low byte of each 16-bit lane of the result: coarse bit j = bit 2j
 * | bit 2j + 1 of the lane. A nibble holds two pairs: a 16-entry table turns the low nibble into
 * bits 0-1 and another the high nibble into bits 2-3; the two bytes of a lane then fold together.
 */
function pairBytes(v: v128): v128 {
  const lo = i8x16(0, 1, 1, 1, 2, 3, 3, 3, 2, 3, 3, 3, 2, 3, 3, 3);
  const hi = i8x16(0, 4, 4, 4, 8, 12, 12, 12, 8, 12, 12, 12, 8, 12, 12, 12);
  const nib = i8x16.splat(0x0f);
  const b = v128.or(i8x16.swizzle(lo, v128.and(v, nib)), i8x16.swizzle(hi, v128.and(i16x8.shr_u(v, 4), nib)));
  return v128.or(b, i16x8.shr_u(b, 4));
}

/**
 * 128 coarse bits at k = 1 from the 256 bits of a then b. The scalar fold (halve, twice a word)
 * took 6.75x memcpy on 32 MiB; a table per nibble and one byte shuffle per 128 output bits take
 * 1.8x to 2.0x in one stream, against 2.3x to 2.9x with a 64-bit result per 128 input bits.
 */
@inline export function pairs2(a: v128, b: v128): v128 {
  return i8x16.shuffle(pairBytes(a), pairBytes(b), 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
}

/** 64 coarse bits from 128 bits at k = 1. */
function pairsOf(v: v128): u64 {
  return <u64>i64x2.extract_lane(pairs2(v, v), 0);
}

/** 32 coarse bits from 128 bits at k = 2: bit j = any of bits [4j, 4j + 4), one per nibble. */
function nibblesOf(v: v128): u32 {
  const z = i64x2.splat(0);
  const lo = v128.and(i8x16.ne(v128.and(v, i8x16.splat(0x0f)), z), i8x16.splat(1));
  const hi = v128.and(i8x16.ne(i8x16.shr_u(v, 4), z), i8x16.splat(2));
  const b = v128.or(lo, hi); // two coarse bits per byte
  const h = v128.or(v128.and(b, i16x8.splat(0x03)), v128.and(i16x8.shr_u(b, 6), i16x8.splat(0x0c)));
  const w = v128.or(v128.and(h, i32x4.splat(0x0f)), v128.and(i32x4.shr_u(h, 12), i32x4.splat(0xf0)));
  const n = i16x8.narrow_i32x4_u(w, w);
  return <u32>i32x4.extract_lane(i8x16.narrow_i16x8_u(n, n), 0);
}

/** One coarse word (k in 1..6) from the 2^k source words at p: bit j = any of bits [j<<k, (j+1)<<k). */
export function coarseBlock(p: usize, k: i32): u64 {
  if (k == 1) return pairsOf(v128.load(p));
  if (k == 2) return <u64>nibblesOf(v128.load(p)) | (<u64>nibblesOf(v128.load(p, 16)) << 32);
  // k = 3..6: lanes of 2^(k-3) bytes compared with zero, narrowed to bytes where that saves
  // bitmask work, and the mask of zero lanes inverted once at the end.
  const z = i64x2.splat(0);
  let v: u64 = 0;
  if (k == 3) {
    for (let t = 0; t < 4; t++) v |= <u64>i8x16.bitmask(i8x16.eq(v128.load(p + (t << 4)), z)) << (t << 4);
  } else if (k == 4) {
    for (let t = 0; t < 4; t++) {
      const q = p + (t << 5);
      const e = i8x16.narrow_i16x8_s(i16x8.eq(v128.load(q), z), i16x8.eq(v128.load(q, 16), z));
      v |= <u64>i8x16.bitmask(e) << (t << 4);
    }
  } else if (k == 5) {
    for (let t = 0; t < 4; t++) {
      const q = p + (t << 6);
      const a = i16x8.narrow_i32x4_s(i32x4.eq(v128.load(q), z), i32x4.eq(v128.load(q, 16), z));
      const b = i16x8.narrow_i32x4_s(i32x4.eq(v128.load(q, 32), z), i32x4.eq(v128.load(q, 48), z));
      v |= <u64>i8x16.bitmask(i8x16.narrow_i16x8_s(a, b)) << (t << 4);
    }
  } else {
    for (let t = 0; t < 32; t++) v |= <u64>i64x2.bitmask(i64x2.eq(v128.load(p + (t << 4)), z)) << (t << 1);
  }
  return ~v;
}
