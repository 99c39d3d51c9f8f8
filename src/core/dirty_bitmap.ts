// The dirty bitmap of the Wasm core (assembly/dirty_bitmap.ts) behind a class. The bits stay in
// linear memory in the kernel's layout (little-endian u64 words, bit i = bit i%64 of word i/64);
// every method is one call into the core, and bits at or above nbits are always 0.
import { BITMAP_MAX_BITS, EINVAL, ENOENT, ENOMEM } from '../../assembly/constants.js';
import { check, vfioError, type ErrorRange } from '../errors.js';
import type { Core } from '../wasm.js';

const RUNS_CHUNK = 4096; // runs fetched per bitmap_runs call: 32 KiB of (start, length) pairs
const ERRNO_MAX = 4095; // results in [-ERRNO_MAX, -1] are -errno; the core never returns more

/**
 * The byte offset, from word 0, of the u64 word holding bit `bit` (the kernel's layout: bit i is
 * bit i % 64 of word i / 64). Exact for every bit a bitmap or a report offset can have (< 2^53).
 */
export function wordOffset(bit: number): number {
  return Math.floor(bit / 64) * 8;
}

/** Throws InvalidArgumentError unless `v` is an integer in [0, 2^32): what the core's u32 takes. */
function u32(v: number, op: string, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw vfioError(EINVAL, op, undefined, `${what} ${v} is not a u32`);
  }
  return v;
}

function bits(first: number, count: number): ErrorRange {
  return { start: BigInt(first), length: BigInt(count) };
}

/** Options of {@link DirtyBitmap.readInto}. */
export interface ReadOptions {
  /** First source bit; default 0. */
  first?: number;
  /** Source bits to read; default nbits - first. */
  count?: number;
  /** Clear the source range after the copy (a GET_BITMAP read); default false. */
  clear?: boolean;
}

/** A dirty bitmap of 1 .. 2^31 bits in the Wasm core; free it with dispose(). */
export class DirtyBitmap {
  readonly core: Core;
  /** Bits of the bitmap (pages it covers). */
  readonly nbits: number;
  private h: number;
  private batch = 0; // heap buffer reused by setBatch, 0 until first needed
  private batchCap = 0; // its capacity in u32 entries

  private constructor(core: Core, h: number, nbits: number) {
    this.core = core;
    this.h = h;
    this.nbits = nbits;
  }

  /**
   * A zeroed bitmap of `nbits` bits (1 .. 2^31). Throws InvalidArgumentError for another size,
   * OutOfMemoryError when the core cannot allocate.
   */
  static create(core: Core, nbits: number): DirtyBitmap {
    const op = 'bitmap.create';
    const h = check(core.x.bitmap_create(u32(nbits, op, 'nbits')), op, bits(0, nbits));
    return new DirtyBitmap(core, h, nbits);
  }

  /**
   * create() for code that returns errno: a zeroed bitmap of `nbits` bits, or -EINVAL / -ENOMEM.
   * No argument checks beyond the core's: the caller computed nbits.
   */
  static tryCreate(core: Core, nbits: number): DirtyBitmap | number {
    const h = core.x.bitmap_create(nbits);
    return h < 0 ? h : new DirtyBitmap(core, h, nbits);
  }

  /** The core handle; throws once disposed. */
  get handle(): number {
    if (!this.h) throw new Error('DirtyBitmap used after dispose()');
    return this.h;
  }

  /** Sets one bit. Throws InvalidArgumentError when bit >= nbits. */
  set(bit: number): void {
    const op = 'bitmap.set';
    check(this.core.x.bitmap_set(this.handle, u32(bit, op, 'bit')), op, bits(bit, 1));
  }

  /** Sets bits [first, first + count). Throws InvalidArgumentError past nbits. */
  setRange(first: number, count: number): void {
    const op = 'bitmap.setRange';
    check(this.core.x.bitmap_set_range(this.handle, u32(first, op, 'first'), u32(count, op, 'count')), op, bits(first, count));
  }

  /** Clears bits [first, first + count). Throws InvalidArgumentError past nbits. */
  clearRange(first: number, count: number): void {
    const op = 'bitmap.clearRange';
    check(this.core.x.bitmap_clear_range(this.handle, u32(first, op, 'first'), u32(count, op, 'count')), op, bits(first, count));
  }

  /** Whether the bit is set. Throws InvalidArgumentError when bit >= nbits. */
  test(bit: number): boolean {
    const op = 'bitmap.test';
    return check(this.core.x.bitmap_test(this.handle, u32(bit, op, 'bit')), op, bits(bit, 1)) === 1;
  }

  /** Set bits in [first, first + count); the whole bitmap by default. Throws InvalidArgumentError. */
  count(first = 0, count = this.nbits - first): number {
    const op = 'bitmap.count';
    const r = this.core.x.bitmap_count(this.handle, u32(first, op, 'first'), u32(count, op, 'count'));
    if (r < 0 && r >= -ERRNO_MAX) throw vfioError(r, op, bits(first, count));
    return r >>> 0; // a u32: a count of 2^31 arrives as -2^31
  }

  /** The first set bit at or after `from` (default 0), or -1 when there is none. */
  nextSet(from = 0): number {
    const op = 'bitmap.nextSet';
    const r = this.core.x.bitmap_next_set(this.handle, u32(from, op, 'from'));
    return r === -ENOENT ? -1 : check(r, op, bits(from, 0));
  }

  /**
   * Sets the bit of every page in `pages` (repeats allowed) in one core call, after copying the
   * batch into a heap buffer kept for the next call. All pages are checked first: on
   * InvalidArgumentError (a page >= nbits) or OutOfMemoryError no bit has changed.
   */
  setBatch(pages: Uint32Array): void {
    const op = 'bitmap.setBatch';
    const h = this.handle;
    const n = pages.length;
    if (n === 0) return;
    if (n > BITMAP_MAX_BITS / 4) throw vfioError(ENOMEM, op, undefined, `${n} pages do not fit linear memory`);
    if (n > this.batchCap) {
      const p = check(this.core.x.heap_alloc(n * 4), op);
      this.core.x.heap_free(this.batch);
      this.batch = p;
      this.batchCap = n;
    }
    this.core.u32().set(pages, this.batch >>> 2);
    check(this.core.x.bitmap_set_batch(h, this.batch, n), op, bits(0, n));
  }

  /** Clears every bit (only words that hold set bits are written). */
  clear(): void {
    this.core.x.bitmap_clear(this.handle);
  }

  /**
   * The kernel's write footprint (update_user_bitmap's) into another bitmap: source bits [first,
   * first + count) land at dst bits [dstBit, dstBit + count), written as whole words from dst word
   * dstBit >> 6 on, with s = dstBit & 63: the first word keeps all its old bits when s != 0, the
   * last word's bits above the range become 0. With `clear` the source range is cleared after.
   * Returns the words written. Throws InvalidArgumentError (a range outside its bitmap, or dst is
   * this bitmap); nothing has changed then.
   */
  readInto(dst: DirtyBitmap, dstBit: number, opts: ReadOptions = {}): number {
    const op = 'bitmap.read';
    const first = u32(opts.first ?? 0, op, 'first');
    const count = u32(opts.count ?? this.nbits - first, op, 'count');
    u32(dstBit, op, 'dstBit');
    if (dstBit + count > dst.nbits) {
      throw vfioError(EINVAL, op, bits(dstBit, count), 'destination range outside the destination bitmap');
    }
    const at = dst.wordAddress(dstBit);
    return check(this.core.x.bitmap_read(this.handle, first, count, at, dstBit & 63, opts.clear ? 1 : 0), op, bits(first, count));
  }

  /**
   * ORs this bitmap's bits [first, first + count) (default: all) into dst bits [dstBit, dstBit +
   * count). Throws InvalidArgumentError for a range outside its bitmap or, when dst is this
   * bitmap, overlapping ranges.
   */
  orInto(dst: DirtyBitmap, dstBit: number, first = 0, count = this.nbits - first): void {
    const op = 'bitmap.or';
    const r = this.core.x.bitmap_or(dst.handle, u32(dstBit, op, 'dstBit'), this.handle, u32(first, op, 'first'), u32(count, op, 'count'));
    check(r, op, bits(first, count));
  }

  /**
   * A new bitmap at another page size. k > 0: 2^k times coarser, bit j = OR of bits [j << k,
   * (j + 1) << k), ceil(nbits / 2^k) bits. k < 0: 2^-k times finer, each bit repeated, nbits <<
   * -k bits (at most 2^31). k = 0: a copy. Throws InvalidArgumentError (k outside -31..31, or a
   * result over 2^31 bits) or OutOfMemoryError.
   */
  convert(k: number): DirtyBitmap {
    const op = 'bitmap.convert';
    const h = this.handle;
    if (!Number.isInteger(k) || k < -31 || k > 31) throw vfioError(EINVAL, op, undefined, `k ${k} is not in -31..31`);
    const n = k >= 0 ? Math.ceil(this.nbits / 2 ** k) : this.nbits * 2 ** -k;
    if (n > BITMAP_MAX_BITS) throw vfioError(EINVAL, op, bits(0, this.nbits), `${n} bits is over 2^31`);
    const r = this.core.x.bitmap_convert_new(h, k);
    if (r < 0) throw vfioError(r, op, bits(0, this.nbits));
    return new DirtyBitmap(this.core, r, n);
  }

  /** convert(k) for code that returns errno: the new bitmap, or -EINVAL / -ENOMEM. */
  tryConvert(k: number): DirtyBitmap | number {
    const n = k >= 0 ? Math.ceil(this.nbits / 2 ** k) : this.nbits * 2 ** -k;
    if (!Number.isInteger(k) || k < -31 || k > 31 || n > BITMAP_MAX_BITS) return -EINVAL;
    const r = this.core.x.bitmap_convert_new(this.handle, k);
    return r < 0 ? r : new DirtyBitmap(this.core, r, n);
  }

  /**
   * Every maximal run of set bits inside [first, first + count) (default: all), ascending, as
   * (start, length) pairs: element 2i is a start, 2i + 1 its length. Gathered from the core in
   * chunks of RUNS_CHUNK runs through one scratch buffer. Throws InvalidArgumentError or
   * OutOfMemoryError.
   */
  runs(first = 0, count = this.nbits - first): Uint32Array {
    const op = 'bitmap.runs';
    const h = this.handle;
    u32(first, op, 'first');
    u32(count, op, 'count');
    const x = this.core.x;
    const buf = check(x.heap_alloc(RUNS_CHUNK * 8), op);
    try {
      let out = new Uint32Array(64);
      let len = 0;
      const end = first + count;
      for (let pos = first; ; ) {
        const n = check(x.bitmap_runs(h, pos, end - pos, buf, RUNS_CHUNK), op, bits(first, count));
        const got = this.core.u32().subarray(buf >>> 2, (buf >>> 2) + 2 * n);
        if (len + got.length > out.length) {
          const grown = new Uint32Array(Math.max(out.length * 2, len + got.length));
          grown.set(out.subarray(0, len));
          out = grown;
        }
        out.set(got, len);
        len += got.length;
        if (n < RUNS_CHUNK) break;
        pos = got[2 * n - 2] + got[2 * n - 1];
      }
      return out.slice(0, len);
    } finally {
      x.heap_free(buf);
    }
  }

  /**
   * The address in linear memory of the u64 word holding `bit` (bit >> 6 words past word 0), for
   * core calls that write a report into this bitmap. Valid until the bitmap is disposed.
   */
  wordAddress(bit: number): number {
    return this.core.x.bitmap_words(this.handle) + wordOffset(bit);
  }

  /** A BigUint64Array view on the ceil(nbits / 64) words; valid until linear memory grows. */
  asTypedArray(): BigUint64Array {
    const words = this.core.x.bitmap_words(this.handle);
    return new BigUint64Array(this.core.memory.buffer, words, Math.ceil(this.nbits / 64));
  }

  /** A copy of the ceil(nbits / 64) words. */
  toTypedArray(): BigUint64Array {
    return this.asTypedArray().slice();
  }

  /** A copy of the words as bytes, ceil(nbits / 64) * 8 of them: the kernel's bitmap layout. */
  toBytes(): Uint8Array {
    const words = this.core.x.bitmap_words(this.handle);
    return this.core.u8().slice(words, words + Math.ceil(this.nbits / 64) * 8);
  }

  /** Frees the bitmap and its batch buffer. Idempotent; any later use throws. */
  dispose(): void {
    if (!this.h) return;
    this.core.x.heap_free(this.batch);
    this.core.x.bitmap_free(this.h);
    this.h = 0;
    this.batch = 0;
    this.batchCap = 0;
  }
}
