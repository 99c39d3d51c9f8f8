// A read of a container's dirty state, in the forms migration tools consume. The report owns one
// Wasm-resident DirtyBitmap (bit i = page iova + i * pgsize) filled by the container's collect;
// every form is computed from it in the core: the kernel-layout bytes (the one copy out of Wasm
// memory, made once and kept), page runs (the core's run kernel), counts, page-size conversion,
// and merges in both directions. Bits outside [iova, iova + size) are never reported: collect
// writes only the requested range and the bitmap has exactly size / pgsize bits.
//
//   bitmap bit:   0            1            2                    nbits - 1
//   IOVA:         iova         iova+pgsize  iova+2*pgsize  ...   iova+size-pgsize
//   bytes():      little-endian u64 words, bit i = bit (i % 64) of word (i / 64)  
// (docs/conformance.md §1.2)
import { BITMAP_MAX_BITS, EINVAL } from '../../assembly/constants.js';
import { DirtyBitmap } from '../core/dirty_bitmap.js';
import { vfioError } from '../errors.js';
import type { Core } from '../wasm.js';
import { PAGE_SIZE } from '../u64.js';

/** A run of dirty pages: the form Cloud Hypervisor sends (start and length in bytes). */
export interface PageRun {
  /** First byte of the run. */
  iova: bigint;
  /** Bytes in the run, a multiple of the report's page size. */
  length: bigint;
}

/** What `readReport` needs of a container (the typed API's Container has it). */
export interface DirtyContainer {
  /** The container's smallest IOMMU page size, bytes. */
  readonly pgsize: bigint;
  readonly dirty: {
    /** Throws what a read of the range would throw (the container's range gate), reading nothing. */
    check(iova: bigint, size: bigint, opts: { partial: boolean; op?: string }): void;
    collect(
      iova: bigint,
      size: bigint,
      target: DirtyBitmap,
      targetBit: number,
      opts: { clear: boolean; partial: boolean; op?: string },
    ): void;
  };
}

/** Options of {@link readReport}. */
export interface ReadReportOptions {
  /** First byte of the range, pgsize aligned. */
  iova: bigint;
  /** Bytes of the range, a positive multiple of pgsize, at most 2^31 pages. */
  size: bigint;
  /** Clear what was read, as GET_BITMAP does (default true); false reads without clearing. */
  clear?: boolean;
  /** Let the range cut mappings (windows); the ioctl forbids it. Default false. */
  partial?: boolean;
  /** The Wasm core that holds the container (the engine's); found on the container if omitted. */
  core?: Core;
}

/**
 * The Wasm core behind a container: the typed API's `container.core`, or `given` for another
 * container type. Throws TypeError when `given` is not the container's own core (a bitmap in
 * another engine's memory cannot receive this container's report).
 */
export function coreOf(container: object, given?: Core, op = 'readReport'): Core {
  const own = (container as { core?: Core }).core;
  if (own && given && given !== own) throw new TypeError(`${op}: options.core belongs to another engine`);
  const core = own ?? given;
  if (!core) throw new TypeError(`${op}: cannot find the Wasm core of this container; pass options.core`);
  return core;
}

/** Pages of `size` bytes at `pgsize`: exact for a size the container's range gate let through. */
export function pagesIn(size: bigint, pgsize: bigint): number {
  return Number(size / pgsize);
}

/**
 * Reads the dirty state of `[iova, iova + size)` into a new report (GET_BITMAP semantics: whole
 * mappings, unless `partial`). The caller disposes the report.
 * @throws VfioError with the errno GET_BITMAP gives the same range (the container's range gate:
 *   EINVAL for a bad or bisecting range, EOVERFLOW for one passing 2^64 in linux-6.18, ...), its
 *   message naming readReport and the rule; nothing is allocated then. TypeError for options.core
 *   of another engine
 */
export function readReport(container: DirtyContainer, opts: ReadReportOptions): DirtyReport {
  const op = 'readReport';
  const partial = opts.partial ?? false;
  const core = coreOf(container, opts.core, op);
  container.dirty.check(opts.iova, opts.size, { partial, op });
  if (partial && opts.size / container.pgsize > BigInt(BITMAP_MAX_BITS)) {
    throw vfioError(EINVAL, op, { start: opts.iova, length: opts.size }, 'more than 2^31 pages in one report; use windows');
  }
  const pgsize = container.pgsize;
  const bitmap = DirtyBitmap.create(core, pagesIn(opts.size, pgsize));
  try {
    container.dirty.collect(opts.iova, opts.size, bitmap, 0, { clear: opts.clear ?? true, partial, op });
  } catch (e) {
    bitmap.dispose();
    throw e;
  }
  return new DirtyReport(bitmap, opts.iova, pgsize);
}

/** The dirty state of one range, over a bitmap it owns. Call dispose() when done. */
export class DirtyReport {
  /** First byte covered. */
  readonly iova: bigint;
  /** Bytes per bit. */
  readonly pgsize: bigint;
  /** Bits (pages) covered. */
  readonly pages: number;
  private bm: DirtyBitmap | null;
  private cachedBytes?: Uint8Array;
  private cachedRuns?: Uint32Array;
  private cachedCount?: number;
  private runsAt = 0; // heap block of the runs in the core (compactRunsView), 0 until gathered
  private runsLen = 0; // u32 entries in it: 2 per run

  /** Takes ownership of `bitmap`, whose bit i is the page at iova + i * pgsize. */
  constructor(bitmap: DirtyBitmap, iova: bigint, pgsize: bigint) {
    this.bm = bitmap;
    this.iova = iova;
    this.pgsize = pgsize;
    this.pages = bitmap.nbits;
  }

  /** The Wasm-resident bitmap; throws once disposed. */
  get bitmap(): DirtyBitmap {
    if (!this.bm) throw new Error('DirtyReport used after dispose()');
    return this.bm;
  }

  /** Bytes covered: pages * pgsize. */
  get size(): bigint {
    return BigInt(this.pages) * this.pgsize;
  }

  /** Dirty pages (the core's popcount). */
  get count(): number {
    return (this.cachedCount ??= this.bitmap.count());
  }

  /** Dirty pages among report pages [first, first + count). */
  countRange(first: number, count: number): number {
    return this.bitmap.count(first, count);
  }

  /**
   * The kernel layout: ceil(pages / 64) little-endian u64 words as bytes. Copied out of Wasm
   * memory on the first call, then the same array is returned (do not modify it).
   */
  bytes(): Uint8Array {
    return (this.cachedBytes ??= this.bitmap.toBytes());
  }

  /**
   * The compact form of the runs: pairs (first page, pages), page indices relative to iova,
   * ascending and maximal, from the core's run kernel. A copy made once and kept (one array of
   * 8 bytes a run); {@link compactRunsView} gives the same values without the copy.
   */
  compactRuns(): Uint32Array {
    return (this.cachedRuns ??= this.compactRunsView().slice());
  }

  /**
   * The compact form of the runs as a view of the core's memory, without a copy: the same values
   * as compactRuns(), gathered by the core once and kept in its memory until dispose().
   *
   * Lifetime rules (as a view of any WebAssembly memory): the view is valid until the report is
   * disposed or mergeFrom() changes it, and until the engine's linear memory grows (any later
   * call into the engine that allocates may grow it; the old view then reads as empty, length 0).
   * Read it right away, or call compactRunsView() again, which is cheap once gathered (no new
   * walk). Do not write to it. Copy what outlives those rules (compactRuns() does).
   * @throws OutOfMemoryError when the core cannot hold the runs (8 bytes a run)
   */
  compactRunsView(): Uint32Array {
    const core = this.bitmap.core;
    if (!this.runsAt) this.gatherRuns();
    const at = this.runsAt >>> 2;
    return core.u32().subarray(at, at + this.runsLen);
  }

  /** Fills runsAt/runsLen from the core's run kernel: one call, the runs written where they stay. */
  private gatherRuns(): void {
    const op = 'report.runs';
    const x = this.bitmap.core.x;
    const slot = x.heap_alloc(4);
    if (slot < 0) throw vfioError(slot, op);
    try {
      const n = x.bitmap_runs_all(this.bitmap.handle, slot);
      if (n < 0) throw vfioError(n, op);
      this.runsAt = this.bitmap.core.u32()[slot >>> 2];
      this.runsLen = 2 * n;
    } finally {
      x.heap_free(slot);
    }
  }

  /**
   * Frees the runs compactRunsView() gathered in the core (8 bytes a run) while the report is
   * kept: views taken before are invalid after; the next compactRunsView() gathers them again.
   * compactRuns()'s copy is dropped too. Idempotent.
   */
  releaseRuns(): void {
    if (this.runsAt && this.bm) this.bm.core.x.heap_free(this.runsAt);
    this.runsAt = 0;
    this.runsLen = 0;
    this.cachedRuns = undefined;
  }

  /**
   * Sorted, merged runs of dirty pages in bytes: `{ iova, length }`. Two bigints per run cost
   * about 1 us a run (seconds for the 2.7 M runs of 1 TiB at 1 %): for millions of runs use
   * compactRuns() or chunks().
   */
  runs(): PageRun[] {
    const r = this.cachedRuns ?? this.compactRunsView(); // no engine call below: the view stays valid
    const out: PageRun[] = new Array(r.length >>> 1);
    const base = this.iova;
    const pg = this.pgsize;
    for (let i = 0, j = 0; i < r.length; i += 2, j++) {
      out[j] = { iova: base + BigInt(r[i]) * pg, length: BigInt(r[i + 1]) * pg };
    }
    return out;
  }

  /**
   * The runs cut into chunks of at most `maxPages` pages each, in order, for parallel senders:
   * a run that does not fit the current chunk is split across chunks. Every chunk but the last
   * holds exactly maxPages pages.
   */
  chunks(maxPages: number): PageRun[][] {
    if (!Number.isSafeInteger(maxPages) || maxPages <= 0) {
      throw vfioError(EINVAL, 'report.chunks', undefined, `maxPages must be a positive integer, got ${maxPages}`);
    }
    const r = this.cachedRuns ?? this.compactRunsView(); // no engine call below: the view stays valid
    const pg = this.pgsize;
    const chunks: PageRun[][] = [];
    let cur: PageRun[] = [];
    let room = maxPages;
    for (let i = 0; i < r.length; i += 2) {
      let start = r[i];
      let left = r[i + 1];
      while (left > 0) {
        const take = Math.min(left, room);
        cur.push({ iova: this.iova + BigInt(start) * pg, length: BigInt(take) * pg });
        start += take;
        left -= take;
        room -= take;
        if (room === 0) {
          chunks.push(cur);
          cur = [];
          room = maxPages;
        }
      }
    }
    if (cur.length) chunks.push(cur);
    return chunks;
  }

  /**
   * The report at another page size `bytes` (a power of two, at least 4 KiB), as a new report the
   * caller disposes. Larger pages: bit j is the OR of the pages it covers, and the new report
   * starts at iova rounded down to `bytes`. Smaller pages: every bit is repeated.
   * @throws InvalidArgumentError for a bad size or more than 2^31 resulting pages;
   *   OutOfMemoryError when the core cannot allocate
   */
  atPageSize(bytes: bigint | number): DirtyReport {
    const op = 'report.atPageSize';
    const p = BigInt(bytes);
    if (p < PAGE_SIZE || (p & (p - 1n)) !== 0n) {
      throw vfioError(EINVAL, op, undefined, `page size must be a power of two >= ${PAGE_SIZE}, got ${p}`);
    }
    const k = log2(p) - log2(this.pgsize);
    const bm = this.bitmap;
    if (k <= 0) return new DirtyReport(bm.convert(k), this.iova, p);
    const base = this.iova - (this.iova % p);
    const shift = Number((this.iova - base) / this.pgsize);
    if (shift === 0) return new DirtyReport(bm.convert(k), base, p);
    // Misaligned start: place the bits at their offset inside the first large page, then fold.
    if (shift + this.pages > BITMAP_MAX_BITS) throw vfioError(EINVAL, op, undefined, 'range too large to realign');
    const tmp = DirtyBitmap.create(bm.core, shift + this.pages);
    try {
      bm.orInto(tmp, shift);
      return new DirtyReport(tmp.convert(k), base, p);
    } finally {
      tmp.dispose();
    }
  }

  /**
   * ORs the report into `target` with report page 0 at target bit `bitOffset` (QEMU folding a
   * device bitmap into its RAM dirty bitmap). The report's page size must be the target's.
   * @throws InvalidArgumentError when the report does not fit in target at that offset
   */
  mergeInto(target: DirtyBitmap, bitOffset: number): void {
    this.bitmap.orInto(target, bitOffset);
  }

  /**
   * ORs a second source into the report: report page i |= other bit (otherFirst + i), for the
   * pages both cover (a CPU dirty log kept in an engine bitmap over the same pages).
   */
  mergeFrom(other: DirtyBitmap, otherFirst = 0): void {
    const count = Math.min(this.pages, other.nbits - otherFirst);
    if (count <= 0) return;
    other.orInto(this.bitmap, 0, otherFirst, count);
    this.cachedBytes = undefined;
    this.releaseRuns();
    this.cachedCount = undefined;
  }

  /** Frees the bitmap. Idempotent; later use throws. */
  dispose(): void {
    this.releaseRuns();
    this.bm?.dispose();
    this.bm = null;
    this.cachedBytes = undefined;
  }
}

function log2(p: bigint): number {
  return p.toString(2).length - 1;
}
