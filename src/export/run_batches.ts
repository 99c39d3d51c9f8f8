// The runs of a dirty bitmap streamed from the core's run kernel in bounded batches: memory stays
// at one scratch buffer however many runs there are, where DirtyReport.compactRuns() holds them
// all (8 bytes a run, sized from the popcount: 2 GiB for a 1 TiB bitmap with every page dirty).
//
//   scratch (Wasm heap): | first0 | pages0 | first1 | pages1 | ...   u32 pairs, RUN_BATCH of them
import type { DirtyBitmap } from '../core/dirty_bitmap.js';
import { vfioError } from '../errors.js';

/** Runs fetched per bitmap_runs call: a 512 KiB scratch buffer in the core. */
export const RUN_BATCH = 1 << 16;

/**
 * Calls `fn(pairs)` with successive batches of the bitmap's maximal runs, ascending: `pairs` holds
 * (first page, pages) u32 pairs, relative to bit 0. `pairs` is a view on Wasm memory, valid only
 * during the call: `fn` copies what it keeps and makes no call into the core. `fn` returns false
 * to stop early.
 * @throws OutOfMemoryError when the scratch buffer cannot be allocated
 */
export function forEachRunBatch(bm: DirtyBitmap, fn: (pairs: Uint32Array) => boolean | void, batch = RUN_BATCH): void {
  const x = bm.core.x;
  const buf = x.heap_alloc(batch * 8);
  if (buf < 0) throw vfioError(buf, 'report.runs');
  try {
    for (let pos = 0; pos < bm.nbits; ) {
      const n = x.bitmap_runs(bm.handle, pos, bm.nbits - pos, buf, batch);
      if (n < 0) throw vfioError(n, 'report.runs');
      if (n === 0) break;
      const pairs = bm.core.u32().subarray(buf >>> 2, (buf >>> 2) + 2 * n);
      const end = pairs[2 * n - 2] + pairs[2 * n - 1];
      if (fn(pairs) === false || n < batch) break;
      pos = end;
    }
  } finally {
    x.heap_free(buf);
  }
}

/** The number of maximal runs of set bits, in bounded memory. */
export function countRuns(bm: DirtyBitmap): number {
  let runs = 0;
  forEachRunBatch(bm, (pairs) => {
    runs += pairs.length >>> 1;
  });
  return runs;
}
