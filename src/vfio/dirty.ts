// Dirty page tracking on the type1 state (SPEC §5): START, STOP, GET_BITMAP, the per-dma report
// used by GET_BITMAP and by unmap-with-bitmap, and the engine's own window reads.
import { EFAULT, EINVAL, ENOMEM } from '../../assembly/constants.js';
import { DirtyBitmap, wordOffset } from '../core/dirty_bitmap.js';
import { reportUser, reportWords } from '../core/report.js';
import type { Dma } from './dma.js';
import { uapi } from '../uapi.js';
import type { Process } from '../process.js';
import type { Type1 } from './type1.js';

const { DIRTY_BITMAP_PAGES_MAX } = uapi;

/** VFIO_IOMMU_DIRTY_PAGES_FLAG_START: 0, -EINVAL (a dma over INT_MAX pages) or -ENOMEM. */
export function dirtyStart(t: Type1): number {
  if (t.tracking) return 0; // no reset (SPEC §5.2, §8 item 16)
  const made: Dma[] = [];
  const undo = (ret: number): number => {
    for (const d of made) {
      d.bitmap!.dispose();
      d.bitmap = null;
    }
    return ret;
  };
  for (const d of t.all()) {
    const nbits = t.nbits(d);
    if (nbits > DIRTY_BITMAP_PAGES_MAX) return undo(-EINVAL);
    const bm = DirtyBitmap.tryCreate(t.core, nbits);
    if (typeof bm === 'number') return undo(bm);
    if (d.pins) d.pins.mark(bm.handle, 0n, nbits, t.bitShift);
    d.bitmap = bm;
    d.nbits = nbits;
    made.push(d);
  }
  t.tracking = true;
  return 0;
}

/** VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP: always 0; all dirty state is dropped. */
export function dirtyStop(t: Type1): number {
  if (!t.tracking) return 0;
  for (const d of t.dmas.values()) {
    d.bitmap?.dispose();
    d.bitmap = null;
  }
  t.tracking = false;
  return 0;
}

/**
 * Re-grains every dma's dirty bitmap from the container's page shift to `shift`, for a detach that
 * changes the smallest page size under tracking (an engine extension beside SPEC §8 item 21; the
 * kernel leaves the bitmaps at the old size and then reports them at the new one, losing bits).
 * A finer bit repeats its old bit and a coarser bit ORs its old bits, so no dirty page is lost.
 * All or nothing: false, with every bitmap as it was, when a bitmap would pass INT_MAX bits
 * (START's limit) or memory runs out.
 */
export function regrain(t: Type1, shift: number): boolean {
  const made: [Dma, DirtyBitmap, number][] = [];
  for (const d of t.all()) {
    const nbits = Number((d.size + (1n << BigInt(shift)) - 1n) >> BigInt(shift)); // d's bits at 2^shift
    const bm = nbits <= DIRTY_BITMAP_PAGES_MAX ? d.bitmap!.tryConvert(shift - t.pgshift) : -EINVAL;
    if (typeof bm === 'number') {
      for (const [, b] of made) b.dispose();
      return false;
    }
    made.push([d, bm, nbits]);
  }
  for (const [d, bm, nbits] of made) {
    d.bitmap!.dispose();
    d.bitmap = bm;
    d.nbits = nbits;
  }
  return true;
}

/** Whether d is reported all dirty (SPEC §5.8): an iommu_mapped dma while some group is not in pinned scope. */
export function allDirty(t: Type1, d: Dma): boolean {
  return t.nonPinnedGroups > 0 && d.iommuMapped;
}

/**
 * Writes d's report into the user bitmap at `data`, relative to `base` (SPEC §5.5), then resets
 * d's bitmap (§5.6). -EFAULT when the words it would touch are not all mapped (d unchanged).
 */
export function reportToUser(t: Type1, proc: Process, d: Dma, base: bigint, data: bigint): number {
  const o = t.bitOf(base, d.iova);
  const s = o % 64;
  const addr = data + BigInt(wordOffset(o));
  if (!proc.isMapped(addr, BigInt(Math.ceil((d.nbits + s) / 64) * 8))) return -EFAULT;
  const r = reportUser(d.bitmap!, proc.um, addr, s, d.pins, t.bitShift, allDirty(t, d));
  return r < 0 ? -ENOMEM : 0;
}

/**
 * Writes d's report into a Wasm bitmap whose bit 0 is page `base`, then resets d's bitmap: what
 * reportToUser does for a zeroed user bitmap, for callers that want the bits in the core.
 */
export function reportToBitmap(t: Type1, d: Dma, base: bigint, out: DirtyBitmap): number {
  const o = t.bitOf(base, d.iova);
  const at = out.wordAddress(o);
  reportWords(at, d.bitmap!, 0, d.nbits, o % 64, d.pins, t.bitShift, allDirty(t, d), true);
  return 0;
}

/**
 * GET_BITMAP after the range gate (dirtyReadGate, SPEC §5.4 steps 1-8) let it through (step 9):
 * every dma in [iova, last] is reported into the user bitmap at `data`, in ascending order.
 */
export function dirtyGet(t: Type1, proc: Process, iova: bigint, last: bigint, data: bigint): number {
  for (let d = t.first(iova, last); d; d = t.next(d, last)) {
    const r = reportToUser(t, proc, d, iova, data);
    if (r < 0) return r;
  }
  return 0;
}

/**
 * The engine's own read, after the range gate (dirtyReadGate) let [iova, last] through, into a
 * Wasm bitmap's words at `dstWords` (a pointer): every dma page in [iova, last] lands at bit
 * `bit0 + (page - iova) / pgsize`, with the kernel's word footprint. Pages of dmas the range cuts
 * (a windowed read) are read too; `clear` false leaves the dirty state as it was.
 */
export function dirtyCollect(t: Type1, iova: bigint, last: bigint, dstWords: number, bit0: number, clear: boolean): number {
  for (let d = t.first(iova, last); d; d = t.next(d, last)) {
    const lo = d.iova > iova ? d.iova : iova;
    const hi = d.last < last ? d.last : last;
    const first = t.bitOf(d.iova, lo);
    const count = t.bitOf(lo, hi) + 1;
    const o = bit0 + t.bitOf(iova, lo);
    const at = dstWords + wordOffset(o);
    reportWords(at, d.bitmap!, first, count, o % 64, clear ? d.pins : null, t.bitShift, allDirty(t, d), clear);
  }
  return 0;
}
