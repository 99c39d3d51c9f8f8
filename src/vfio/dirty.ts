// Dirty page tracking on the type1 state (docs/conformance.md §7): START, STOP, GET_BITMAP, the
// per-dma report used by GET_BITMAP and by unmap-with-bitmap, and the engine's own window reads.
import { EDEADLK, EFAULT, EINVAL, ENOMEM, PAGE_SIZE } from '../../assembly/constants.js';
import { DirtyBitmap, wordOffset } from '../core/dirty_bitmap.js';
import { reportUser, reportWords } from '../core/report.js';
import type { Dma } from './dma.js';
import type { ReportSink } from './dma_map.js';
import type { UserBitmap } from './range_gate.js';
import { uapi } from '../uapi.js';
import type { Process } from '../process.js';
import type { Type1 } from './type1.js';

const { DIRTY_BITMAP_PAGES_MAX } = uapi;

/**
 * VFIO_IOMMU_DIRTY_PAGES_FLAG_START: 0, -EINVAL (a dma over INT_MAX pages), -ENOMEM, or
 * -EDEADLK from inside one of the container's dma_unmap callbacks (tracking would change under
 * the running unmap).
 */
export function dirtyStart(t: Type1): number {
  if (t.tracking) return 0; // no reset (docs/conformance.md §7.2)
  if (t.inCallback) return -EDEADLK;
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

/**
 * VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP: 0; all dirty state is dropped. From inside one of the
 * container's dma_unmap callbacks, while tracking is on, -EDEADLK with nothing changed: the
 * running unmap may still have to report the dirty bits STOP would drop.
 */
export function dirtyStop(t: Type1): number {
  if (!t.tracking) return 0;
  if (t.inCallback) return -EDEADLK;
  for (const d of t.each()) {
    d.bitmap?.dispose();
    d.bitmap = null;
  }
  t.tracking = false;
  return 0;
}

/**
 * Re-grains every dma's dirty bitmap from the container's page shift to `shift`, for a detach that
 * changes the smallest page size under tracking (an engine extension, docs/conformance.md §10.5;
 * the kernel leaves the bitmaps at the old size and then reports them at the new one, losing bits).
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

/**
 * Whether d is reported all dirty (docs/conformance.md §7.8): an iommu_mapped dma while some group
 * is not in pinned scope.
 */
export function allDirty(t: Type1, d: Dma): boolean {
  return t.nonPinnedGroups > 0 && d.iommuMapped;
}

/**
 * Where one dma's report lands in a user bitmap (docs/conformance.md §7.5): its first word's
 * address and shift.
 */
interface Footprint {
  /** bitmap.data + 8w. */
  addr: bigint;
  /** Bytes written: 8L. */
  len: bigint;
  /** s: the dma's first bit within that word. */
  s: number;
}

/**
 * The words d's report writes into the user bitmap `bm` for a request starting at `base`, or
 * null when any of them would lie outside [bm.data, bm.data + bm.size): the one guard that keeps
 * every write inside the caller's buffer, whatever happened to the page size since the checks.
 */
function footprint(t: Type1, d: Dma, base: bigint, bm: UserBitmap): Footprint | null {
  if (d.iova < base) return null;
  const o = t.bitOf(base, d.iova);
  const s = o % 64;
  const addr = bm.data + BigInt(wordOffset(o));
  const len = BigInt(Math.ceil((d.nbits + s) / 64) * 8);
  return addr + len <= bm.data + bm.size ? { addr, len, s } : null;
}

/**
 * Writes d's report into the user bitmap `bm`, relative to `base` (docs/conformance.md §7.5), then
 * resets d's bitmap (§7.6). -EFAULT when the words it would touch are not all mapped, -EINVAL when
 * they would pass bm.size, -ENOMEM when frames are missing and cannot be had (d unchanged in each
 * case). `scratch` is a PAGE_SIZE block for an unaligned bitmap (0: allocated per call).
 */
export function reportToUser(t: Type1, proc: Process, d: Dma, base: bigint, bm: UserBitmap, scratch = 0): number {
  const f = footprint(t, d, base, bm);
  if (!f) return -EINVAL;
  if (!proc.isMapped(f.addr, f.len)) return -EFAULT;
  const r = reportUser(d.bitmap!, proc.um, f.addr, f.s, d.pins, t.bitShift, allDirty(t, d), scratch);
  return r < 0 ? -ENOMEM : 0;
}

/**
 * The footprints of the longest prefix of `ds` whose words all lie inside bm and are mapped: the
 * dmas a harvest can report (the next one fails there, EINVAL or EFAULT, as it would anyway).
 */
function reportable(t: Type1, proc: Process, ds: readonly Dma[], base: bigint, bm: UserBitmap): Footprint[] {
  const fps: Footprint[] = [];
  for (const d of ds) {
    const f = footprint(t, d, base, bm);
    if (!f || !proc.isMapped(f.addr, f.len)) break;
    fps.push(f);
  }
  return fps;
}

/** reserveHarvest over footprints already computed (reportable). */
function reserveFootprints(t: Type1, proc: Process, fps: readonly Footprint[], bm: UserBitmap, scratch: number): number {
  const own = scratch === 0 && (bm.data & 7n) !== 0n;
  if (own) {
    scratch = t.core.alloc(PAGE_SIZE);
    if (scratch < 0) return -ENOMEM;
  }
  // One dma (the usual GET): one core call, without staging a list of ranges.
  const r = fps.length === 1
    ? proc.um.reserve(fps[0].addr, Number(fps[0].len))
    : proc.um.reserveRanges(fps.map((f) => [f.addr, f.len] as const));
  if (r < 0) {
    if (own) t.core.free(scratch);
    return r;
  }
  return scratch;
}

/**
 * Everything a harvest of `ds` (ascending) into the user bitmap `bm` allocates, taken before the
 * first dma is read, all or nothing: a scratch page when bm.data is unaligned, and user memory
 * frames under every word the reports will write. The reservation stops at the first dma whose
 * words are unmapped or outside bm (its report fails there, EFAULT or EINVAL, as it would
 * anyway). Returns the scratch address (0: none needed), or -ENOMEM with nothing changed.
 * `scratch` is one the caller already holds (a restarted unmap), reused.
 */
export function reserveHarvest(
  t: Type1, proc: Process, ds: readonly Dma[], base: bigint, bm: UserBitmap, scratch = 0,
): number {
  return reserveFootprints(t, proc, reportable(t, proc, ds, base, bm), bm, scratch);
}

/**
 * The report sink of an unmap with GET_DIRTY_BITMAP into the user bitmap `bm` (request at
 * `base`): reserves before each pass of the unmap (reserveHarvest), so a lack of memory fails
 * the unmap before any dma of the pass is read or removed.
 */
export function userSink(t: Type1, proc: Process, base: bigint, bm: UserBitmap): ReportSink {
  let scratch = 0;
  const reserved = new Set<Dma>(); // a restart reserves only for dmas a callback mapped since
  return Object.assign((d: Dma) => reportToUser(t, proc, d, base, bm, scratch), {
    prepare(ds: readonly Dma[]): number {
      const fresh = ds.filter((d) => !reserved.has(d));
      if (!fresh.length) return 0;
      const r = reserveHarvest(t, proc, fresh, base, bm, scratch);
      if (r < 0) return r;
      scratch = r;
      for (const d of fresh) reserved.add(d);
      return 0;
    },
    release(): void {
      if (scratch) t.core.free(scratch);
      scratch = 0;
    },
  });
}

/**
 * Writes d's report into a Wasm bitmap whose bit 0 is page `base`, then resets d's bitmap: what
 * reportToUser does for a zeroed user bitmap, for callers that want the bits in the core.
 * -EINVAL, with nothing written, when the report would pass the end of `out`.
 */
export function reportToBitmap(t: Type1, d: Dma, base: bigint, out: DirtyBitmap): number {
  if (d.iova < base) return -EINVAL;
  const o = t.bitOf(base, d.iova);
  if (Math.ceil((o + d.nbits) / 64) > Math.ceil(out.nbits / 64)) return -EINVAL;
  reportWords(out.wordAddress(o), d.bitmap!, 0, d.nbits, o % 64, d.pins, t.bitShift, allDirty(t, d), true);
  return 0;
}

/**
/**
 * GET_BITMAP after the range gate (dirtyReadGate, docs/conformance.md §7.4, §7.11) let it through:
 * every dma in [iova, last] is reported into the user bitmap `bm`, in ascending order.
 * Everything the reports allocate is taken first (reserveHarvest), so -ENOMEM comes before any
 * dma is read: no dirty bit is lost to a failure the caller cannot tell from a report. Only a
 * fault (EFAULT) stops part-way.
 */
export function dirtyGet(t: Type1, proc: Process, iova: bigint, last: bigint, bm: UserBitmap): number {
  const ds = t.inRange(iova, last);
  if (!ds.length) return 0;
  const fps = reportable(t, proc, ds, iova, bm); // each footprint computed and checked once
  const scratch = reserveFootprints(t, proc, fps, bm, 0);
  if (scratch < 0) return scratch;
  try {
    for (let i = 0; i < fps.length; i++) {
      const d = ds[i];
      const f = fps[i];
      if (reportUser(d.bitmap!, proc.um, f.addr, f.s, d.pins, t.bitShift, allDirty(t, d), scratch) < 0) return -ENOMEM;
    }
    // The first dma whose words are outside bm or unmapped: its EINVAL or EFAULT.
    return fps.length < ds.length ? reportToUser(t, proc, ds[fps.length], iova, bm, scratch) : 0;
  } finally {
    if (scratch) t.core.free(scratch);
  }
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
