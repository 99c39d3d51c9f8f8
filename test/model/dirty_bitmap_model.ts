// A plain-TS model of the dirty bitmap (assembly/dirty_bitmap.ts), written to be obviously correct
// rather than fast: one bit at a time over the kernel's byte layout (bit i is byte i/8, bit i%8),
// skipping only bytes that are wholly zero. Results follow the core's ABI: a value or -errno.
// The tests compare the core with it; the benchmarks use it as the plain-TS baseline.
import { EINVAL, ENOENT } from '../../assembly/constants.js';

export const MAX_BITS = 2 ** 31;

/** Bytes of the ceil(nbits / 64) words that hold nbits bits. */
export function wordBytes(nbits: number): number {
  return Math.ceil(nbits / 64) * 8;
}

export function getBit(b: Uint8Array, i: number): number {
  return (b[Math.floor(i / 8)] >> i % 8) & 1;
}

export function putBit(b: Uint8Array, i: number, v: number): void {
  const j = Math.floor(i / 8);
  b[j] = v ? b[j] | (1 << i % 8) : b[j] & ~(1 << i % 8);
}

/** Calls fn(i) for every set bit i in [first, end), ascending. */
export function forEachSet(b: Uint8Array, first: number, end: number, fn: (i: number) => void): void {
  for (let i = first; i < end; ) {
    if (i % 8 === 0 && i + 8 <= end && b[i / 8] === 0) {
      i += 8;
      continue;
    }
    if (getBit(b, i)) fn(i);
    i++;
  }
}

export class BitmapModel {
  readonly nbits: number;
  /** ceil(nbits / 64) words as bytes: what DirtyBitmap.toBytes() returns. */
  readonly bytes: Uint8Array;

  constructor(nbits: number) {
    this.nbits = nbits;
    this.bytes = new Uint8Array(wordBytes(nbits));
  }

  private ok(first: number, count: number): boolean {
    return first >= 0 && count >= 0 && first + count <= this.nbits;
  }

  set(bit: number): number {
    if (bit >= this.nbits) return -EINVAL;
    putBit(this.bytes, bit, 1);
    return 0;
  }

  setRange(first: number, count: number): number {
    if (!this.ok(first, count)) return -EINVAL;
    for (let i = first; i < first + count; i++) putBit(this.bytes, i, 1);
    return 0;
  }

  clearRange(first: number, count: number): number {
    if (!this.ok(first, count)) return -EINVAL;
    for (let i = first; i < first + count; i++) putBit(this.bytes, i, 0);
    return 0;
  }

  test(bit: number): number {
    return bit >= this.nbits ? -EINVAL : getBit(this.bytes, bit);
  }

  count(first: number, count: number): number {
    if (!this.ok(first, count)) return -EINVAL;
    let n = 0;
    forEachSet(this.bytes, first, first + count, () => n++);
    return n;
  }

  nextSet(from: number): number {
    if (from > this.nbits) return -EINVAL;
    for (let i = from; i < this.nbits; i++) {
      if (i % 8 === 0 && this.bytes[i / 8] === 0) {
        i += 7;
        continue;
      }
      if (getBit(this.bytes, i)) return i;
    }
    return -ENOENT;
  }

  clear(): void {
    this.bytes.fill(0);
  }

  /** Every page is checked before any bit changes. */
  setBatch(pages: ArrayLike<number>): number {
    for (let i = 0; i < pages.length; i++) if (pages[i] >= this.nbits) return -EINVAL;
    for (let i = 0; i < pages.length; i++) putBit(this.bytes, pages[i], 1);
    return 0;
  }

  /**
   * The shifted stream of docs/conformance.md §7.5 as L = ceil((count + s) / 64) words (bytes): source bit
   * first + i at stream bit s + i, every other bit 0. The OR of the old first word is applied by
   * the writer, not here.
   */
  stream(first: number, count: number, s: number): Uint8Array {
    const st = new Uint8Array(count ? Math.ceil((count + s) / 64) * 8 : 0);
    forEachSet(this.bytes, first, first + count, (i) => putBit(st, s + i - first, 1));
    return st;
  }

  /**
   * Output words [from, from + n) of the stream, written at word `at` of `out` (bytes); word 0
   * with s != 0 is ORed into the word already there (the kernel ORs all 64 bits of U[w]).
   */
  emit(first: number, count: number, s: number, out: Uint8Array, at: number, from: number, n: number): number {
    if (!this.ok(first, count) || s > 63) return -EINVAL;
    const st = this.stream(first, count, s);
    if (from + n > st.length / 8) return -EINVAL;
    for (let k = from; k < from + n; k++) {
      const o = (at + k - from) * 8;
      for (let b = 0; b < 8; b++) out[o + b] = k === 0 && s !== 0 ? out[o + b] | st[k * 8 + b] : st[k * 8 + b];
    }
    return n;
  }

  /** update_user_bitmap's footprint at word `at` of `out`, then optionally the clear of §5.6. */
  read(first: number, count: number, out: Uint8Array, at: number, s: number, clear: boolean): number {
    if (!this.ok(first, count) || s > 63) return -EINVAL;
    if (!count) return 0;
    const L = Math.ceil((count + s) / 64);
    this.emit(first, count, s, out, at, 0, L);
    if (clear) this.clearRange(first, count);
    return L;
  }

  orInto(dst: BitmapModel, dstFirst: number, srcFirst: number, count: number): number {
    if (!dst.ok(dstFirst, count) || !this.ok(srcFirst, count)) return -EINVAL;
    if (!count) return 0;
    if (dst === this && dstFirst < srcFirst + count && srcFirst < dstFirst + count) return -EINVAL;
    forEachSet(this.bytes, srcFirst, srcFirst + count, (i) => putBit(dst.bytes, dstFirst + i - srcFirst, 1));
    return 0;
  }

  /** The bit count bitmap_convert wants of its destination, or -EINVAL. */
  static convertedBits(nbits: number, k: number): number {
    if (!Number.isInteger(k) || k < -31 || k > 31) return -EINVAL;
    const n = k >= 0 ? Math.ceil(nbits / 2 ** k) : nbits * 2 ** -k;
    return n > MAX_BITS ? -EINVAL : n;
  }

  convert(k: number): BitmapModel | number {
    const n = BitmapModel.convertedBits(this.nbits, k);
    if (n < 0) return n;
    const out = new BitmapModel(n);
    forEachSet(this.bytes, 0, this.nbits, (i) => {
      if (k >= 0) putBit(out.bytes, Math.floor(i / 2 ** k), 1);
      else for (let t = 0; t < 2 ** -k; t++) putBit(out.bytes, i * 2 ** -k + t, 1);
    });
    return out;
  }

  /** Maximal runs of set bits inside the range as flat (start, length) pairs, at most max runs. */
  runs(first: number, count: number, max = Infinity): number[] | number {
    if (!this.ok(first, count)) return -EINVAL;
    const out: number[] = [];
    const end = first + count;
    for (let i = first; i < end && out.length < 2 * max; ) {
      if (i % 8 === 0 && i + 8 <= end && this.bytes[i / 8] === 0) {
        i += 8;
        continue;
      }
      if (!getBit(this.bytes, i)) {
        i++;
        continue;
      }
      let j = i;
      while (j < end && getBit(this.bytes, j)) j++;
      out.push(i, j - i);
      i = j;
    }
    return out;
  }
}
