// VFIO_IOMMU_MAP_DMA and VFIO_IOMMU_UNMAP_DMA on the type1 state (docs/conformance.md §4, §5). Both
// the ioctl decoder and the typed API call these; the checks happen here once, in the kernel's
// order.
import {
  EBUSY, EEXIST, EFAULT, EINVAL, ENOENT, ENOMEM, ENOSPC,
} from '../../assembly/constants.js';
import { uapi } from '../uapi.js';
import { Dma, IOMMU_READ, IOMMU_WRITE } from './dma.js';
import { DirtyBitmap } from '../core/dirty_bitmap.js';
import type { Process } from '../process.js';
import type { Type1 } from './type1.js';
import { PAGE_SIZE, U64_MAX } from '../u64.js';
import { sizeText } from './range_gate.js';

const hex = (v: bigint): string => `0x${v.toString(16)}`;

export const {
  VFIO_DMA_MAP_FLAG_READ: MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE: MAP_FLAG_WRITE,
  VFIO_DMA_MAP_FLAG_VADDR: MAP_FLAG_VADDR,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP: UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_DMA_UNMAP_FLAG_ALL: UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_VADDR: UNMAP_FLAG_VADDR,
  DIRTY_BITMAP_PAGES_MAX,
} = uapi;

/**
 * vfio_dma_do_map after the ioctl-level argsz/flags checks: 0 or -errno, nothing changed on
 * failure. `proc` is the calling process: its memory backs the mapping and is charged.
 */
export function mapDma(t: Type1, proc: Process, flags: number, vaddr: bigint, iova: bigint, size: bigint): number {
  const p = t.profile;
  t.refusal = null;
  const setVaddr = (flags & MAP_FLAG_VADDR) !== 0;
  const prot = (flags & MAP_FLAG_WRITE ? IOMMU_WRITE : 0) | (flags & MAP_FLAG_READ ? IOMMU_READ : 0);
  const last = iova + size - 1n;
  const wraps = last > U64_MAX || vaddr + size - 1n > U64_MAX;
  const WRAPS = 'iova + size or vaddr + size passes 2^64';
  if (p.earlyMapChecks) {
    if (size === 0n) return t.refuse(EINVAL, 'size is 0');
    if (wraps) return t.refuse(p.overflow, WRAPS);
  }
  if (prot !== 0 && setVaddr) return t.refuse(EINVAL, 'VADDR goes with neither READ nor WRITE');
  if (prot === 0 && !setVaddr) return t.refuse(EINVAL, 'a mapping needs READ or WRITE');
  const mask = t.pgsize - 1n;
  if (size === 0n) return t.refuse(EINVAL, 'size is 0');
  if (((size | iova | vaddr) & mask) !== 0n) {
    return t.refuse(EINVAL, `iova, vaddr and size must be multiples of the ${sizeText(t.pgsize)} IOMMU page size`);
  }
  if (wraps) return t.refuse(p.overflow, WRAPS);
  const hit = t.first(iova, last);
  if (setVaddr) {
    if (!hit) return t.refuse(ENOENT, 'no mapping in the range to give a vaddr');
    if (!hit.vaddrInvalid || hit.iova !== iova || hit.size !== size) {
      return t.refuse(EINVAL, 'a vaddr update needs exactly one mapping of this iova and size whose vaddr was invalidated');
    }
    const r = changeOwner(hit, proc);
    if (r < 0) return t.refuse(-r, "the new owner's RLIMIT_MEMLOCK cannot take the mapping's locked pages");
    hit.vaddr = vaddr;
    hit.vaddrInvalid = false;
    t.vaddrInvalidCount--;
    return 0;
  }
  if (hit) return t.refuse(EEXIST, `overlaps the mapping [${hex(hit.iova)}, ${hex(hit.iova + hit.size)})`);
  if (t.dmaAvail === 0) return t.refuse(ENOSPC, 'the container holds dma_entry_limit mappings');
  if (!t.iovaValid(iova, last)) return t.refuse(EINVAL, 'outside the IOMMU aperture or inside a reserved region');

  const d = new Dma(t.allocId(), iova, size, vaddr, prot, proc);
  if (t.insert(d) < 0) {
    t.releaseId(d.id);
    return -ENOMEM;
  }
  if (t.hasDomain) {
    // Pin and map: every page is charged; the first unmapped user page faults first.
    const budget = t.budget(d);
    const u = proc.firstUnmappedPage(vaddr, d.npages);
    if (u >= 0 && (budget < 0 || u <= budget)) {
      t.remove(d);
      return t.refuse(EFAULT, `vaddr page ${hex(vaddr + BigInt(u) * PAGE_SIZE)} is not mapped in the process`);
    }
    if (t.charge(d, BigInt(d.npages)) < 0) {
      t.remove(d);
      return t.refuse(ENOMEM, 'pinning it would pass the RLIMIT_MEMLOCK of the process');
    }
    d.iommuMapped = true;
  }
  if (t.tracking) {
    const nbits = t.nbits(d);
    const bm = nbits > DIRTY_BITMAP_PAGES_MAX ? -EINVAL : DirtyBitmap.tryCreate(t.core, nbits);
    if (typeof bm === 'number') {
      t.remove(d);
      return bm === -EINVAL ? t.refuse(EINVAL, 'a tracked mapping holds at most 2^31 - 1 pages') : bm;
    }
    d.bitmap = bm;
    d.nbits = nbits;
  }
  return 0;
}

/** vfio_change_dma_owner: moves d's locked_vm to `proc` when another process restores it. */
function changeOwner(d: Dma, proc: Process): number {
  if (proc === d.owner) return 0;
  const n = d.lockedVm;
  if (n > 0n && !proc.capIpcLock && proc.memlockPages !== null && proc.lockedVm + n > proc.memlockPages) {
    return -ENOMEM;
  }
  proc.lockedVm += n;
  d.owner.lockedVm -= n;
  d.owner = proc;
  d.lockCap = proc.capIpcLock;
  return 0;
}

/**
 * Reports one dma about to be removed (unmap with GET_DIRTY_BITMAP): 0 or -errno. `prepare`, if
 * present, runs before each pass of the unmap over the dmas the pass may report, and reserves
 * what the reports allocate (0 or -ENOMEM, nothing changed); `release` runs once at the end.
 */
export type ReportSink = ((d: Dma) => number) & {
  prepare?: (ds: readonly Dma[]) => number;
  release?: () => void;
};

/**
 * The result of an unmap: ret 0 or -errno, and the bytes unmapped (copied back only on 0).
 * `thrown` holds what dma_unmap callbacks threw (see unmapDma); the caller finishes its own
 * copy-back, then calls {@link rethrowCallbackErrors}.
 */
export interface UnmapResult {
  ret: number;
  size: bigint;
  thrown?: unknown[];
}

/**
 * Throws what the dma_unmap callbacks of an unmap threw, after the unmap completed: the single
 * exception itself, or an AggregateError of several. Does nothing when none threw.
 */
export function rethrowCallbackErrors(r: UnmapResult): void {
  const e = r.thrown;
  if (!e || e.length === 0) return;
  throw e.length === 1 ? e[0] : new AggregateError(e, `${e.length} dma_unmap callbacks threw`);
}

/**
 * vfio_dma_do_unmap after the ioctl-level checks (docs/conformance.md §5.2 to §5.8): removes (or,
 * with VADDR, invalidates) every dma in range, notifying drivers that hold pins and restarting.
 *
 * Driver callbacks (docs/conformance.md §5.6, §14): the container lock is dropped while they run,
 * so a callback may unpin (what it is for), pin, MAP, UNMAP other ranges, dma_rw and read the dirty
 * bitmap. What would change the container's groups, page sizes or tracking state (SET_CONTAINER
 * onto it, UNSET_CONTAINER of one of its groups, SET_IOMMU, START or STOP) fails with -EDEADLK
 * and changes nothing, as the kernel's group lock would block it; a close that would detach one
 * of its groups is such a call too: it answers -EDEADLK and the fd stays open.
 *
 * A callback that throws does not stop the unmap: the exception is caught, the unmap goes on as
 * the kernel's would once the driver returned (restart; a dma whose pins remain fails with
 * EBUSY), and the exceptions are handed back in `thrown` for the caller to rethrow once the call
 * is complete (rethrowCallbackErrors).
 */
export function unmapDma(
  t: Type1, flags: number, iova: bigint, size: bigint, bitmapPgsize: bigint, report: ReportSink | null,
): UnmapResult {
  t.refusal = null;
  const thrown: unknown[] = [];
  let r: UnmapResult;
  try {
    r = unmapLoop(t, flags, iova, size, bitmapPgsize, report, thrown);
  } finally {
    report?.release?.();
  }
  if (thrown.length) r.thrown = thrown;
  return r;
}

/** Calls every participating driver's dma_unmap op for d, catching what they throw. */
function notify(t: Type1, d: Dma, thrown: unknown[]): void {
  for (const dev of t.participants()) {
    t.callbackDepth++;
    try {
      dev.dmaUnmap!(d.iova, d.size);
    } catch (e) {
      thrown.push(e);
    } finally {
      t.callbackDepth--;
    }
  }
}

/** A failed unmap (-errno `ret`): nothing unmapped. */
function failed(ret: number): UnmapResult {
  return { ret, size: 0n };
}

/** An unmap refused by `rule`. */
function no(t: Type1, errno: number, rule: string): UnmapResult {
  return failed(t.refuse(errno, rule));
}

function unmapLoop(
  t: Type1, flags: number, iova: bigint, size: bigint, bitmapPgsize: bigint, report: ReportSink | null,
  thrown: unknown[],
): UnmapResult {
  const p = t.profile;
  const all = (flags & UNMAP_FLAG_ALL) !== 0;
  const inval = (flags & UNMAP_FLAG_VADDR) !== 0;
  // Nothing here allocates on the path of a plain unmap (no closure, set or string per call): a
  // tool unmapping one page at a time calls it hundreds of thousands of times a second.
  if (inval && t.emulatedGroups.length) return no(t, EBUSY, 'VADDR invalidation while an emulated (mdev) group is attached');
  const mask = t.pgsize - 1n;
  if ((iova & mask) !== 0n) return no(t, EINVAL, `iova not aligned to the ${sizeText(t.pgsize)} IOMMU page size`);
  let last: bigint;
  if (all) {
    if (iova !== 0n || size !== 0n) return no(t, EINVAL, 'UNMAP_ALL takes iova 0 and size 0');
    last = U64_MAX;
  } else {
    if (size === 0n) return no(t, EINVAL, 'size is 0');
    if ((size & mask) !== 0n) return no(t, EINVAL, `size not a multiple of the ${sizeText(t.pgsize)} IOMMU page size`);
    last = iova + size - 1n;
    if (last > U64_MAX) return no(t, p.overflow, 'iova + size passes 2^64');
  }
  if (report && !t.tracking) return no(t, EINVAL, 'GET_DIRTY_BITMAP while dirty tracking is not started');
  if (report && bitmapPgsize !== t.pgsize) return no(t, EINVAL, `bitmap.pgsize is not the ${sizeText(t.pgsize)} tracking page size`);
  // Before v6.18 the exclusive end of a range reaching 2^64 overflowed to 0: nothing matched.
  const topBroken = !all && !p.topEndUsable && last === U64_MAX;

  let unmapped = 0n;
  let notified: Set<Dma> | null = null; // made at the first dma holding pins
  for (;;) {
    const cut = t.v2 && !all ? t.cutBy(iova, last) : undefined;
    if (cut) return no(t, EINVAL, `the range cuts the mapping [${hex(cut.iova)}, ${hex(cut.iova + cut.size)})`);
    if (topBroken) return { ret: 0, size: 0n };
    if (report?.prepare) {
      // Reserve for every dma of the pass before the first is read: -ENOMEM removes nothing more.
      const r = report.prepare(t.inRange(iova, last));
      if (r < 0) return failed(r);
    }
    let restart = false;
    const invalidated: Dma[] | null = inval ? [] : null;
    let d = t.first(iova, last);
    while (d) {
      if (!t.v2 && iova > d.iova) break; // v1: the request begins inside this dma
      const next = t.next(d, last);
      if (invalidated) {
        if (d.vaddrInvalid) {
          for (const e of invalidated) e.vaddrInvalid = false;
          t.vaddrInvalidCount -= invalidated.length;
          return no(t, EINVAL, `the vaddr of the mapping at ${hex(d.iova)} is invalidated already`);
        }
        d.vaddrInvalid = true;
        t.vaddrInvalidCount++;
        invalidated.push(d);
        unmapped += d.size;
        d = next;
        continue;
      }
      if (t.pinned(d) > 0) {
        // One notification round (docs/conformance.md §5.6): a driver keeping its pins gets EBUSY.
        notified ??= new Set<Dma>();
        if (notified.has(d)) return no(t, EBUSY, `a driver kept its pins in the mapping at ${hex(d.iova)} after its dma_unmap op`);
        notified.add(d);
        notify(t, d, thrown);
        restart = true;
        break;
      }
      if (report) {
        const r = report(d);
        if (r < 0) return failed(r);
      }
      unmapped += d.size;
      t.remove(d);
      d = next;
    }
    if (!restart) return { ret: 0, size: unmapped };
  }
}
