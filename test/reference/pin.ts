// The vendor-driver API of the reference model: vfio_pin_pages, vfio_unpin_pages and vfio_dma_rw
// (docs/conformance.md §6, §9-§10).
import type { RefDevice } from './group.js';
import {
  E2BIG, EACCES, EBUSY, EFAULT, EINVAL, ENOMEM, EOVERFLOW, EPERM, IOMMU_READ, IOMMU_WRITE, PAGE_SIZE, PIN_MAX,
  U64_MAX,
} from './uapi.js';
import type { RefDma } from './dma.js';

/** vfio_pin_pages: npage, or -errno with every pin of this call undone (dirty bits kept). */
export function refPinPages(dev: RefDevice, iova: bigint, npage: number, prot: number): number {
  if (!Number.isInteger(npage) || npage <= 0) return -EINVAL;
  if (npage > PIN_MAX) return -E2BIG;
  if (!dev.participating) return -EINVAL;
  const g = dev.group;
  if (g.devices.length > 1) return -EINVAL;
  const c = g.container;
  if (!c || !c.iommu) return -EINVAL;
  if (!c.v2) return -EACCES;
  if (iova % PAGE_SIZE !== 0n) return -EINVAL;
  // linux-6.18 checks the overflow here (docs/conformance.md §9-§10); before it, a page past 2^64 fails
  // in the per-page loop below, after the EBUSY check.
  if (c.engine.profile === 'linux-6.18' && iova + BigInt(npage) * PAGE_SIZE - 1n > U64_MAX) return -EOVERFLOW;
  if (c.vaddrInvalidCount > 0) return -EBUSY;

  const accounting = !c.hasDomain;
  const done: [RefDma, number][] = [];
  let err = 0;
  for (let i = 0; i < npage; i++) {
    const a = iova + BigInt(i) * PAGE_SIZE;
    const d = c.dmaAt(a);
    if (!d) {
      err = -EINVAL;
      break;
    }
    if ((d.prot & prot) !== prot) {
      err = -EPERM;
      break;
    }
    const page = Number((a - d.iova) / PAGE_SIZE);
    const count = d.pins.get(page);
    if (count !== undefined) {
      d.pins.set(page, count + 1); // already pinned: its bit is set already (docs/conformance.md §7.9)
      done.push([d, page]);
      continue;
    }
    const owner = d.owner;
    if (!owner.memory.isMapped(d.vaddr + (a - d.iova), PAGE_SIZE)) {
      err = -EFAULT;
      break;
    }
    if (accounting) {
      const limit = owner.limitPages;
      if (!d.lockCap && limit !== null && owner.lockedVm + 1n > limit) {
        err = -ENOMEM;
        break;
      }
      owner.lockedVm += 1n;
    }
    d.pins.set(page, 1);
    done.push([d, page]);
    if (c.tracking) d.setBits(d.bitOfPage(page, c.pgshift), 1);
  }
  if (err) {
    for (const [d, page] of done) unpinOne(d, page, accounting);
    return err;
  }
  if (c.pinnedScope.get(g) === false) c.pinnedScope.set(g, true); // promotion (docs/conformance.md §6.5)
  return npage;
}

/** Drops one reference of `page`; at zero the pin goes and, with accounting, one page is uncharged. */
function unpinOne(d: RefDma, page: number, accounting: boolean): void {
  const count = d.pins.get(page);
  if (count === undefined) return;
  if (count > 1) {
    d.pins.set(page, count - 1);
    return;
  }
  d.pins.delete(page);
  if (accounting) d.owner.lockedVm -= 1n;
}

/** vfio_unpin_pages: ignores bad input; stops at the first page outside every dma (§6.4). */
export function refUnpinPages(dev: RefDevice, iova: bigint, npage: number): void {
  if (!dev.participating) return;
  if (!Number.isInteger(npage) || npage <= 0 || npage > PIN_MAX) return;
  const c = dev.group.container;
  if (!c || !c.v2) return;
  const accounting = !c.hasDomain;
  for (let i = 0; i < npage; i++) {
    const a = iova + BigInt(i) * PAGE_SIZE;
    if (a > U64_MAX) break;
    const d = c.dmaAt(a);
    if (!d) break;
    if ((a - d.iova) % PAGE_SIZE !== 0n) continue; // no vfio_pfn has an unaligned iova
    unpinOne(d, Number((a - d.iova) / PAGE_SIZE), accounting);
  }
}

/** vfio_dma_rw: 0 or -errno; chunks copied before a failing one stay copied and marked (§6.6). */
export function refDmaRw(dev: RefDevice, iova: bigint, data: Uint8Array, write: boolean): number {
  if (!(data instanceof Uint8Array) || data.length === 0) return -EINVAL;
  if (dev.openCount === 0) return -EINVAL;
  const c = dev.group.container;
  if (!c || !c.iommu) return -EINVAL;
  if (c.vaddrInvalidCount > 0) return -EBUSY;
  let cur = iova;
  let off = 0;
  while (off < data.length) {
    const d = c.dmaAt(cur);
    if (!d) return -EINVAL;
    if ((write && !(d.prot & IOMMU_WRITE)) || !(d.prot & IOMMU_READ)) return -EPERM;
    const offset = cur - d.iova;
    const left = BigInt(data.length - off);
    const count = Number(left < d.size - offset ? left : d.size - offset);
    const va = d.vaddr + offset;
    const mem = d.owner.memory;
    if (!mem.isMapped(va, BigInt(count))) return -EFAULT;
    if (write) {
      mem.write(va, data.subarray(off, off + count));
      if (c.tracking) {
        const sh = BigInt(c.pgshift);
        const first = Number(offset >> sh);
        const last = Number((offset + BigInt(count) - 1n) >> sh);
        d.setBits(first, last - first + 1);
      }
    } else {
      data.set(mem.read(va, count), off);
    }
    cur += BigInt(count);
    off += count;
  }
  return 0;
}
