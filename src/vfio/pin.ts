// The vendor-driver API on a container (docs/conformance.md §6): vfio_pin_pages, vfio_unpin_pages
// and vfio_dma_rw. Pages are processed per dma segment: the host walks dmas, the core walks pages.
import {
  E2BIG, EACCES, EBUSY, EFAULT, EINVAL, ENOMEM, EPERM, PIN_PAGES_MAX_ENTRIES,
} from '../../assembly/constants.js';
import type { Dma } from './dma.js';
import { PinTable } from '../core/pin_table.js';
import { OutOfMemoryError } from '../errors.js';
import { IOMMU_READ, IOMMU_WRITE } from './dma.js';
import type { VfioDevice } from './group.js';
import type { Type1 } from './type1.js';
import { PAGE_SHIFT, PAGE_SIZE, U64_MAX } from '../u64.js';

function checkArgs(iova: unknown, npage: unknown): void {
  if (typeof iova !== 'bigint') throw new TypeError('iova must be a bigint');
  if (!Number.isInteger(npage)) throw new TypeError('npage must be an integer');
}

/** A new pin table in t's core, or null when the core is out of memory. */
function newPinTable(t: Type1): PinTable | null {
  try {
    return new PinTable(t.core);
  } catch (e) {
    if (e instanceof OutOfMemoryError) return null;
    throw e;
  }
}

/** The type1 driver behind an open device's container, if any. */
function driverOf(dev: VfioDevice): Type1 | null {
  return dev.group.container?.iommu ?? null;
}

/**
 * vfio_pin_pages: npage, or -errno with every pin of this call undone (docs/conformance.md §6.2).
 */
export function pinPages(dev: VfioDevice, iova: bigint, npage: number, prot: number, pfns?: BigUint64Array): number {
  checkArgs(iova, npage);
  if (!Number.isInteger(prot)) throw new TypeError('prot must be an integer');
  if (pfns !== undefined && (!(pfns instanceof BigUint64Array) || pfns.length < npage)) {
    throw new TypeError('pfns must be a BigUint64Array of at least npage entries');
  }
  if (npage <= 0) return -EINVAL;
  if (npage > PIN_PAGES_MAX_ENTRIES) return -E2BIG;
  if (!dev.participating) return -EINVAL;
  if (dev.group.devices.length > 1) return -EINVAL; // singleton-group rule
  const t = driverOf(dev);
  if (!t) return -EINVAL;
  if (!t.v2) return -EACCES;
  if (iova < 0n || iova > U64_MAX || (iova & (PAGE_SIZE - 1n)) !== 0n) return -EINVAL;
  if (t.profile.topEndUsable && iova + BigInt(npage) * PAGE_SIZE - 1n > U64_MAX) return -t.profile.overflow;
  if (t.vaddrInvalidCount) return -EBUSY;

  const doAccounting = !t.hasDomain;
  const done: [Dma, bigint, number][] = [];
  let err = 0;
  let a = iova;
  let left = npage;
  while (left > 0) {
    const d = t.find(a);
    if (!d) {
      err = -EINVAL;
      break;
    }
    if ((d.prot & prot) !== prot) {
      err = -EPERM;
      break;
    }
    const rel = (a - d.iova) >> PAGE_SHIFT;
    let n = Math.min(left, Number((d.last - a + 1n) >> PAGE_SHIFT));
    // A page not yet pinned must be backed by the owner's memory; the first that is not faults.
    const u = d.owner.firstUnmappedPage(d.vaddr + (a - d.iova), n);
    const fault = u >= 0;
    if (fault) n = u;
    if (!d.pins) {
      const p = newPinTable(t);
      if (!p) {
        err = -ENOMEM;
        break;
      }
      d.pins = p;
    }
    if (n > 0) {
      const fresh = d.pins.tryPinRange(rel, n, doAccounting ? t.budget(d) : -1, t.tracking ? d.bitmap : null, t.bitShift);
      if (fresh < 0) {
        err = fresh; // the core undid this segment; its new pages keep their dirty bits
        break;
      }
      if (doAccounting) t.charge(d, BigInt(fresh));
      done.push([d, rel, n]);
    }
    if (fault) {
      err = -EFAULT;
      break;
    }
    a += BigInt(n) * PAGE_SIZE; // past 2^64 no dma matches: the next lookup fails with EINVAL
    left -= n;
  }
  if (err) {
    for (const [d, rel, n] of done.reverse()) {
      const released = d.pins!.unpinRange(rel, n);
      if (doAccounting) t.uncharge(d, BigInt(released));
    }
    return err;
  }
  const g = dev.group;
  if (!g.pinnedScope) {
    g.pinnedScope = true; // by pinning, the driver declares itself a dirty-tracking participant
    t.nonPinnedGroups--;
  }
  if (pfns) {
    let i = 0;
    for (const [d, rel, n] of done) {
      const base = (d.vaddr >> PAGE_SHIFT) + rel;
      for (let k = 0; k < n; k++) pfns[i++] = base + BigInt(k);
    }
  }
  return npage;
}

/**
 * vfio_unpin_pages (docs/conformance.md §6.4): stops at the first page outside every dma; ignores
 * the rest.
 */
export function unpinPages(dev: VfioDevice, iova: bigint, npage: number): void {
  checkArgs(iova, npage);
  if (!dev.participating || npage <= 0 || npage > PIN_PAGES_MAX_ENTRIES) return;
  const t = driverOf(dev);
  if (!t || !t.v2 || iova < 0n || iova > U64_MAX || (iova & (PAGE_SIZE - 1n)) !== 0n) return;
  const doAccounting = !t.hasDomain;
  let a = iova;
  let left = npage;
  while (left > 0) {
    const d = t.find(a);
    if (!d) return;
    const n = Math.min(left, Number((d.last - a + 1n) >> PAGE_SHIFT));
    if (d.pins) {
      const released = d.pins.unpinRange((a - d.iova) >> PAGE_SHIFT, n);
      if (doAccounting) t.uncharge(d, BigInt(released));
    }
    a += BigInt(n) * PAGE_SIZE; // past 2^64 no dma matches: unpinning stops there
    left -= n;
  }
}

/** Bytes one dma_rw copy step moves through the core: the scratch buffer's largest size. */
export const DMA_RW_CHUNK = 256 * 1024;

/** One dma's part of a dma_rw: `n` bytes at d.iova + offset, which is `vaddr` in d.owner. */
interface RwSegment {
  d: Dma;
  offset: bigint;
  vaddr: bigint;
  n: number;
}

/**
 * The dmaRw checks (docs/conformance.md §6.6) of every chunk, before any byte moves: the segments
 * that the kernel would copy, in order, and the errno of the chunk that fails after them (0: none
 * does).
 */
function planRw(t: Type1, iova: bigint, length: number, write: boolean): { segs: RwSegment[]; err: number } {
  const segs: RwSegment[] = [];
  let a = iova;
  let off = 0;
  while (off < length) {
    const d = t.find(a);
    if (!d) return { segs, err: -EINVAL }; // past 2^64 no dma matches either
    if ((write && !(d.prot & IOMMU_WRITE)) || !(d.prot & IOMMU_READ)) return { segs, err: -EPERM };
    const offset = a - d.iova;
    const left = d.size - offset;
    const n = Math.min(length - off, left > 0x7fff_ffffn ? 0x7fff_ffff : Number(left));
    const vaddr = d.vaddr + offset;
    if (!d.owner.isMapped(vaddr, BigInt(n))) return { segs, err: -EFAULT };
    segs.push({ d, offset, vaddr, n });
    off += n;
    a += BigInt(n);
  }
  return { segs, err: 0 };
}

/**
 * vfio_dma_rw (docs/conformance.md §6.6): copies chunk by chunk, each clipped to its dma; a write
 * marks every page it touched while tracking. As in the kernel, the chunks before a failing one are
 * copied (and marked) and the call returns that chunk's errno; the engine finds it before any byte
 * moves. Bytes travel through one scratch buffer of at most DMA_RW_CHUNK bytes, so the Wasm
 * memory a call needs does not grow with `data`. -ENOMEM when the scratch (or, for a write, the
 * frames of the memory written) cannot be had: nothing is copied then.
 */
export function dmaRw(dev: VfioDevice, iova: bigint, data: Uint8Array, write: boolean): number {
  if (typeof iova !== 'bigint') throw new TypeError('iova must be a bigint');
  if (!(data instanceof Uint8Array)) throw new TypeError('data must be a Uint8Array');
  if (typeof write !== 'boolean') throw new TypeError('write must be a boolean');
  if (data.length === 0 || dev.openCount === 0) return -EINVAL;
  const t = driverOf(dev);
  if (!t) return -EINVAL;
  if (t.vaddrInvalidCount) return -EBUSY;
  if (iova < 0n || iova > U64_MAX) return -EINVAL;
  const { segs, err } = planRw(t, iova, data.length, write);
  if (!segs.length) return err;
  const core = t.core;
  const total = segs.reduce((sum, g) => sum + g.n, 0);
  const buf = core.alloc(Math.min(total, DMA_RW_CHUNK));
  if (buf < 0) return -ENOMEM;
  try {
    if (write && reserveFrames(segs) < 0) return -ENOMEM;
    let pos = 0;
    for (const g of segs) {
      const um = g.d.owner.um;
      for (let done = 0; done < g.n; ) {
        const k = Math.min(g.n - done, DMA_RW_CHUNK);
        const at = g.vaddr + BigInt(done);
        if (write) {
          core.u8().set(data.subarray(pos, pos + k), buf);
          if (um.writeFrom(at, buf, k) < 0) return -ENOMEM; // frames reserved: cannot happen
        } else {
          um.readTo(at, buf, k);
          data.set(core.u8().subarray(buf, buf + k), pos);
        }
        done += k;
        pos += k;
      }
      if (write) g.d.owner.markSoftDirty(g.vaddr, g.n); // a CPU-side store
      if (write && t.tracking) {
        const a = g.d.iova + g.offset;
        const lo = t.bitOf(g.d.iova, a);
        g.d.bitmap!.setRange(lo, t.bitOf(g.d.iova, a + BigInt(g.n) - 1n) - lo + 1);
      }
    }
    return err;
  } finally {
    core.free(buf);
  }
}

/** Frames under every segment of a write, per owning process: 0 or -ENOMEM. */
function reserveFrames(segs: readonly RwSegment[]): number {
  const byOwner = new Map<Dma['owner'], [bigint, bigint][]>();
  for (const g of segs) {
    const list = byOwner.get(g.d.owner) ?? [];
    list.push([g.vaddr, BigInt(g.n)]);
    byOwner.set(g.d.owner, list);
  }
  for (const [owner, ranges] of byOwner) {
    const r = owner.um.reserveRanges(ranges);
    if (r < 0) return r;
  }
  return 0;
}
