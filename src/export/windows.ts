// Windowed reading of huge ranges: one bounded report at a time, each freed before the next is
// made, so reading 8 TiB of mappings holds one window's bitmap (64 GiB of IOVA at 4 KiB pages:
// 2 MiB) and never the whole range's (256 MiB). Windows cut mappings (collect's `partial`), which
// GET_BITMAP itself forbids; gaps between mappings read as clean.
import { DirtyBitmap } from '../core/dirty_bitmap.js';
import { vfioError } from '../errors.js';
import { EINVAL } from '../../assembly/constants.js';
import { BITMAP_MAX_BITS } from '../../assembly/constants.js';
import { coreOf, DirtyReport, pagesIn, type DirtyContainer } from './dirty_report.js';
import type { Core } from '../wasm.js';

/** Options of {@link windows}. */
export interface WindowOptions {
  /** First byte of the whole range, pgsize aligned. */
  iova: bigint;
  /** Bytes of the whole range, a positive multiple of pgsize (any size; u64 arithmetic). */
  size: bigint;
  /** Bytes of IOVA per window, a positive multiple of pgsize, at most 2^31 pages (default 64 GiB). */
  windowBytes?: bigint;
  /** Clear what was read (default true). */
  clear?: boolean;
  /** The Wasm core that holds the container; found on the container if omitted. */
  core?: Core;
}

/** The default window: 64 GiB of IOVA (a 2 MiB bitmap at 4 KiB pages). */
export const DEFAULT_WINDOW = 64n << 30n;

/**
 * Yields one report per window of `[iova, iova + size)`, in ascending order; the last may be
 * shorter. The report yielded is disposed when the consumer asks for the next one (or stops
 * iterating), so a consumer keeps what it needs (count, runs, bytes) before moving on.
 * @throws VfioError before any read: the errno GET_BITMAP would give the whole range (the
 *   container's range gate, except that windows may cut mappings and pass 2^31 pages), or
 *   InvalidArgumentError for a bad window size; TypeError for options.core of another engine
 */
export function* windows(container: DirtyContainer, opts: WindowOptions): Generator<DirtyReport, void, undefined> {
  const op = 'windows';
  const core = coreOf(container, opts.core, op);
  container.dirty.check(opts.iova, opts.size, { partial: true, op });
  const pg = container.pgsize;
  const win = opts.windowBytes ?? DEFAULT_WINDOW;
  if (typeof win !== 'bigint' || win <= 0n || win % pg !== 0n || win / pg > BigInt(BITMAP_MAX_BITS)) {
    throw vfioError(EINVAL, op, undefined, `windowBytes must be a positive multiple of the page size ${pg}, at most 2^31 pages`);
  }
  const clear = opts.clear ?? true;
  const end = opts.iova + opts.size;
  for (let at = opts.iova; at < end; at += win) {
    const size = end - at < win ? end - at : win;
    const bitmap = DirtyBitmap.create(core, pagesIn(size, pg));
    const report = new DirtyReport(bitmap, at, pg);
    try {
      container.dirty.collect(at, size, bitmap, 0, { clear, partial: true, op });
      yield report;
    } finally {
      report.dispose();
    }
  }
}
