// The pin table of the Wasm core (assembly/pin_table.ts): per-page refcounts of the pages of one
// vfio_dma pinned through vfio_pin_pages. Pages are PAGE_SIZE offsets from the dma's iova (u64).
import { EINVAL } from '../../assembly/constants.js';
import { check, vfioError, type ErrorRange } from '../errors.js';
import type { Core } from '../wasm.js';
import type { DirtyBitmap } from './dirty_bitmap.js';
import { U64_MAX } from '../u64.js';

const I32_MAX = 0x7fffffff;
const RECORD = 16; // bytes of one pins_collect record

/** Options of a pin call. */
export interface PinOptions {
  /** New pages the call may create (the locked-memory allowance left); default unlimited. */
  budget?: number;
  /** A dirty bitmap handle (a core address) in which each new page sets its bit; default none. */
  bitmap?: number;
  /** log2(bitmap page size / PAGE_SIZE): a new page p sets bit p >> shift; default 0. */
  shift?: number;
}

/** One pinned page and its refcount. */
export interface PinEntry {
  page: bigint;
  count: number;
}

function u64(v: bigint, op: string): bigint {
  if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) {
    throw vfioError(EINVAL, op, undefined, `${String(v)} is not a u64`);
  }
  return v;
}

function pageCount(n: number, op: string): number {
  if (!Number.isInteger(n) || n < 0 || n > I32_MAX) {
    throw vfioError(EINVAL, op, undefined, `${n} pages is not in 0..2^31-1`);
  }
  return n;
}

function span(first: bigint, n: number | bigint): ErrorRange {
  return { start: first, length: BigInt(n) };
}

/** The raw (budget, bitmap, shift) arguments of a pin call. */
function pinArgs(o: PinOptions, op: string): [number, number, number] {
  const budget = o.budget ?? -1;
  if (Number.isNaN(budget)) throw vfioError(EINVAL, op, undefined, 'budget is NaN');
  // No call creates more than 2^31-1 pages, so a larger budget is the same as none.
  const b = budget < 0 ? -1 : Math.min(Math.floor(budget), I32_MAX);
  const bm = o.bitmap ?? 0;
  const shift = o.shift ?? 0;
  if (!Number.isInteger(bm) || bm < 0) throw vfioError(EINVAL, op, undefined, `bad bitmap ${bm}`);
  if (!Number.isInteger(shift) || shift < 0 || shift > 63) {
    throw vfioError(EINVAL, op, undefined, `shift ${shift} is not in 0..63`);
  }
  return [b, bm, shift];
}

/** Refcounted pinned pages of one dma, in a hash table of the Wasm core. */
export class PinTable {
  readonly core: Core;
  private p: number;

  /** Creates an empty table. Throws OutOfMemoryError when the core cannot allocate. */
  constructor(core: Core) {
    this.core = core;
    this.p = check(core.x.pins_create(), 'pins.create');
  }

  /** The core handle; throws once disposed. */
  get handle(): number {
    if (!this.p) throw new Error('PinTable used after dispose()');
    return this.p;
  }

  /** Distinct pinned pages (the pages charged to locked memory by pinning). */
  get size(): number {
    return this.core.x.pins_size(this.handle);
  }

  /** The refcount of `page`; 0 when it is not pinned. */
  count(page: bigint): number {
    return this.core.x.pins_count(this.handle, u64(page, 'pins.count'));
  }

  /**
   * Pins pages first .. first+n-1 in order and returns how many were new. Throws
   * OutOfMemoryError when the budget runs out (the call's pins are undone; bitmap bits it set
   * stay set) or memory does (nothing changed), InvalidArgumentError for bad arguments.
   */
  pinRange(first: bigint, n: number, options: PinOptions = {}): number {
    const op = 'pins.pin';
    u64(first, op);
    pageCount(n, op);
    const [budget, bm, shift] = pinArgs(options, op);
    return check(this.core.x.pins_pin_range(this.handle, first, n, budget, bm, shift), op, span(first, n));
  }

  /** Unpins pages first .. first+n-1 once each (unpinned pages are ignored); returns how many were released. */
  unpinRange(first: bigint, n: number): number {
    u64(first, 'pins.unpin');
    return this.core.x.pins_unpin_range(this.handle, first, pageCount(n, 'pins.unpin'));
  }

  /**
   * pinRange for code that returns errno, with no option object (the vendor pin path calls it per
   * dma segment): new pages, or -ENOMEM (budget or memory; this call's pins undone, bits it set
   * in `bitmap` kept) / -EINVAL. `budget` < 0: unlimited; `bitmap` null: none.
   */
  tryPinRange(first: bigint, n: number, budget: number, bitmap: DirtyBitmap | null, shift: number): number {
    return this.core.x.pins_pin_range(this.handle, first, n, budget, bitmap ? bitmap.handle : 0, shift);
  }

  /** `pinRange` for arbitrary pages (repeats allowed), pinned in order in one core call. */
  pinBatch(pages: BigUint64Array, options: PinOptions = {}): number {
    const op = 'pins.pin_batch';
    const [budget, bm, shift] = pinArgs(options, op);
    return this.withBatch(pages, op, (buf, n) =>
      check(this.core.x.pins_pin_batch(this.handle, buf, n, budget, bm, shift), op),
    );
  }

  /** `unpinRange` for arbitrary pages (repeats allowed), in one core call; returns how many were released. */
  unpinBatch(pages: BigUint64Array): number {
    return this.withBatch(pages, 'pins.unpin_batch', (buf, n) => this.core.x.pins_unpin_batch(this.handle, buf, n));
  }

  /**
   * Sets, in the dirty bitmap `bitmap`, bit (q - first) >> shift for every pinned page q at or
   * after `first` whose bit is below `nbits` (re-marking pinned pages after a read,
   * docs/conformance.md §7.6).
   */
  mark(bitmap: number, first: bigint, nbits: number, shift = 0): void {
    const op = 'pins.mark';
    u64(first, op);
    pinArgs({ bitmap, shift }, op);
    if (!Number.isInteger(nbits) || nbits < 0 || nbits > 0xffffffff) {
      throw vfioError(EINVAL, op, undefined, `nbits ${nbits} is not a u32`);
    }
    check(this.core.x.pins_mark(this.handle, bitmap, first, nbits, shift), op);
  }

  /** Pinned pages in [first, first + n). */
  countRange(first: bigint, n: bigint): number {
    return this.core.x.pins_count_range(this.handle, u64(first, 'pins.count_range'), u64(n, 'pins.count_range'));
  }

  /** Every pinned page with its refcount, in ascending page order. */
  entries(): PinEntry[] {
    const n = this.size;
    if (n === 0) return [];
    const x = this.core.x;
    const buf = check(x.heap_alloc(n * RECORD), 'pins.collect');
    try {
      const got = x.pins_collect(this.handle, buf, n);
      const v64 = this.core.u64();
      const v32 = this.core.u32();
      const out: PinEntry[] = new Array(got);
      for (let i = 0; i < got; i++) {
        const at = buf + i * RECORD;
        out[i] = { page: v64[at / 8], count: v32[at / 4 + 2] };
      }
      return out;
    } finally {
      x.heap_free(buf);
    }
  }

  /** Drops every pin and returns the table's slots to the heap. */
  clear(): void {
    this.core.x.pins_clear(this.handle);
  }

  /** Frees the table. Idempotent. */
  dispose(): void {
    if (this.p) this.core.x.pins_free(this.p);
    this.p = 0;
  }

  /** Copies `pages` into a core scratch block, runs `fn` on it, frees it. */
  private withBatch(pages: BigUint64Array, op: string, fn: (buf: number, n: number) => number): number {
    const n = pageCount(pages.length, op);
    if (n === 0) return 0;
    const x = this.core.x;
    const buf = check(x.heap_alloc(n * 8), op);
    try {
      this.core.u64().set(pages, buf / 8);
      return fn(buf, n);
    } finally {
      x.heap_free(buf);
    }
  }
}
