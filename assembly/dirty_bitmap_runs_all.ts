// The runs of a whole bitmap gathered in one call (bitmap_runs_all): a heap block sized from a
// sample of the words, so no counting pass runs first and no run is copied twice.
import { alloc, free, realloc } from './heap';
import { EINVAL, ENOMEM } from './constants';
import { bufferOk, nbitsOf, nwordsOf, wordsOf } from './dirty_bitmap';
import { wordPtr } from './dirty_bitmap_kernels';
import { listRuns } from './dirty_bitmap_runs';

// bitmap_runs_all sizes its block from the run starts of one 4 KiB block of words in every
// RUNS_SAMPLE (1/16 of the words read), plus 1/8 and RUNS_ALL_SLACK runs, and doubles it in
// the rare case the estimate falls short. Doubling from 64 K runs instead copied 21 MiB of runs
// on the way to the 2.6 M runs of 32 MiB at 1 % (2 ms of its 15).
const RUNS_SAMPLE: u32 = 16;
const RUNS_ALL_SLACK: u64 = 4096;

/** Estimated runs of bm: run starts in every RUNS_SAMPLE-th 512-word block, scaled up. */
function estimateRuns(bm: usize): u64 {
  const w = wordsOf(bm);
  const nw = nwordsOf(bm);
  let starts: u64 = 0;
  let seen: u32 = 0;
  for (let b: u32 = 0; b < nw; b += 512 * RUNS_SAMPLE) {
    const e = min(nw, b + 512);
    let prev: u64 = b ? load<u64>(wordPtr(w, b - 1)) >> 63 : 0;
    for (let i = b; i < e; i++) {
      const x = load<u64>(wordPtr(w, i));
      starts += popcnt(x & ~((x << 1) | prev));
      prev = x >> 63;
    }
    seen += e - b;
  }
  return seen ? (starts * <u64>nw) / <u64>seen : 0;
}

/**
 * Every maximal run of set bits of bm, ascending, as (start, length) u32 pairs in one heap block
 * it allocates, sized from a sample (estimateRuns) and grown by doubling if it fills: no
 * counting pass first, and the runs are written once where they stay. Stores the block's address at the u32 `slot` (4-aligned) and
 * returns the number of runs (the block holds 2 u32 per run; the caller frees it), or -EINVAL
 * (slot) or -ENOMEM with nothing allocated.
 */
export function bitmap_runs_all(bm: usize, slot: usize): i32 {
  if (!bufferOk(slot, 4, 4)) return -EINVAL;
  const nb = nbitsOf(bm);
  const most = (<u64>nb + 1) >> 1; // runs a bitmap of nb bits can hold
  const est = estimateRuns(bm);
  let cap = min<u64>(est + (est >> 3) + RUNS_ALL_SLACK, most);
  let buf = alloc(<usize>(cap << 3));
  if (!buf) return -ENOMEM;
  let n: u32 = 0;
  let pos: u32 = 0;
  for (;;) {
    n += listRuns(wordsOf(bm), pos, nb - pos, buf + (<usize>n << 3), <u32>cap - n);
    if (<u64>n < cap) break; // room left over: the rest of the bitmap had no more runs
    const last = buf + (<usize>(n - 1) << 3);
    pos = load<u32>(last) + load<u32>(last, 4); // resume past the last run (a clear bit)
    if (pos >= nb) break;
    const grown = min<u64>(cap << 1, most);
    const bytes = grown << 3;
    const p = bytes < <u64>1 << 32 ? realloc(buf, <usize>bytes) : 0;
    if (!p) {
      free(buf);
      return -ENOMEM;
    }
    buf = p;
    cap = grown;
  }
  store<u32>(slot, <u32>buf);
  return <i32>n;
}
