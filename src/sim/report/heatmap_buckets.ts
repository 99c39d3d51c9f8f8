// The heat map as the report draws it: the simulator's cells grouped into at most
// HEATMAP_MAX_BUCKETS buckets per row, so the map keeps one width for every guest size (a 1 TiB
// guest at 4096 cells used to draw a 4,160-px-wide canvas). Whole cells are grouped, never split,
// so a bucket's share is the page-weighted mean of exactly the cells it holds.
import type { Heatmap } from '../html_report.js';

/** The most buckets a heat-map row is drawn with: about 3 px each at the report's width. */
export const HEATMAP_MAX_BUCKETS = 320;

/** The heat map regrouped for drawing; densities keep the simulator's 0..255 scale. */
export interface HeatmapBuckets {
  /** Buckets per row, 1 .. HEATMAP_MAX_BUCKETS. */
  buckets: number;
  /** RAM pages per bucket (the last bucket may hold fewer). */
  pagesPerBucket: number;
  /** Simulator cells per bucket. */
  cellsPerBucket: number;
  /** RAM pages below the hole: where high RAM starts in RAM order. */
  lowPages: number;
  /** RAM pages in all. */
  ramPages: number;
  /** One row per harvest: round number and per-bucket density, 0 (clean) to 255 (all dirty). */
  rows: { round: number; cells: Uint8Array }[];
}

/**
 * Groups `heatmap`'s cells into at most `maxBuckets` buckets per row. A bucket's density is the
 * page-weighted mean of its cells' densities, rounded, and at least 1 when any cell was dirty, so
 * "clean" stays exact.
 * @throws RangeError when maxBuckets is not a positive integer
 */
export function heatmapBucket(heatmap: Heatmap, maxBuckets = HEATMAP_MAX_BUCKETS): HeatmapBuckets {
  if (!Number.isInteger(maxBuckets) || maxBuckets < 1) throw new RangeError('maxBuckets must be a positive integer');
  const { pagesPerCell, ramPages } = heatmap;
  // Cells that hold RAM: past them a row's cells stay 0 (columns can exceed RAM pages).
  const cells = Math.max(1, Math.min(heatmap.columns, Math.ceil(ramPages / pagesPerCell)));
  const cellsPerBucket = Math.ceil(cells / maxBuckets);
  const buckets = Math.ceil(cells / cellsPerBucket);
  const pagesPerBucket = cellsPerBucket * pagesPerCell;
  const rows = heatmap.rows.map((row) => {
    const out = new Uint8Array(buckets);
    for (let b = 0; b < buckets; b++) {
      let weighted = 0; // sum of density x pages
      let pages = 0;
      let any = false;
      for (let c = b * cellsPerBucket; c < Math.min(cells, (b + 1) * cellsPerBucket); c++) {
        const n = Math.min(pagesPerCell, ramPages - c * pagesPerCell);
        weighted += row.cells[c] * n;
        pages += n;
        any ||= row.cells[c] > 0;
      }
      out[b] = any ? Math.max(1, Math.round(weighted / pages)) : 0;
    }
    return { round: row.round, cells: out };
  });
  return { buckets, pagesPerBucket, cellsPerBucket, lowPages: heatmap.lowPages, ramPages, rows };
}
