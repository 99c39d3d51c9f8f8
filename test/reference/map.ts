// VFIO_IOMMU_MAP_DMA (docs/conformance.md §4) and VFIO_IOMMU_UNMAP_DMA (docs/conformance.md §5) of
// the reference model.
import type { RefContainer } from './container.js';
import { updateUserBitmap, verifyBitmapSize } from './dirty.js';
import { RefDma } from './dma.js';
import { chargeCheck } from './process.js';
import {
  EBUSY, EEXIST, EFAULT, EINVAL, ENOENT, ENOSPC, INT_MAX, IOMMU_READ, IOMMU_WRITE, TWO64, U64_MAX,
  USER_TOP, VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_VADDR, VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, VFIO_DMA_UNMAP_FLAG_VADDR, ctz,
  rd32, rd64, wr64,
} from './uapi.js';

const MAP_FLAGS = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE | VFIO_DMA_MAP_FLAG_VADDR;
const UNMAP_FLAGS = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_ALL | VFIO_DMA_UNMAP_FLAG_VADDR;

/** MAP_DMA: 0 or -errno; nothing is written back. */
export function refMap(c: RefContainer, buf: Uint8Array): number {
  if (buf.length < 32) return -EFAULT;
  const argsz = rd32(buf, 0);
  const flags = rd32(buf, 4);
  const vaddr = rd64(buf, 8);
  const iova = rd64(buf, 16);
  const size = rd64(buf, 24);
  if (argsz < 32 || (flags & ~MAP_FLAGS) !== 0) return -EINVAL;
  const setVaddr = (flags & VFIO_DMA_MAP_FLAG_VADDR) !== 0;
  let prot = 0;
  if (flags & VFIO_DMA_MAP_FLAG_WRITE) prot |= IOMMU_WRITE;
  if (flags & VFIO_DMA_MAP_FLAG_READ) prot |= IOMMU_READ;
  const badProt = (prot !== 0 && setVaddr) || (prot === 0 && !setVaddr);
  const wraps = iova + size - 1n > U64_MAX || vaddr + size - 1n > U64_MAX;
  const pgsize = c.pgsize;
  const misaligned = ((size | iova | vaddr) & (pgsize - 1n)) !== 0n;
  if (c.engine.profile === 'linux-6.18') {
    if (size === 0n) return -EINVAL;
    if (wraps) return -c.engine.overflowErrno;
    if (badProt) return -EINVAL;
    if (misaligned) return -EINVAL;
  } else {
    if (badProt) return -EINVAL;
    if (size === 0n || misaligned) return -EINVAL;
    if (wraps) return -EINVAL;
  }

  const overlapping = c.dmas.filter((d) => d.overlaps(iova, size));
  if (setVaddr) {
    if (overlapping.length === 0) return -ENOENT;
    const d = overlapping[0];
    if (overlapping.length > 1 || !d.vaddrInvalid || d.iova !== iova || d.size !== size) return -EINVAL;
    d.vaddr = vaddr; // same process: vfio_change_dma_owner has nothing to move
    d.vaddrInvalid = false;
    c.vaddrInvalidCount--;
    return 0;
  }
  if (overlapping.length > 0) return -EEXIST;
  if (c.dmaAvail === 0) return -ENOSPC;
  const list = c.iovaList;
  const last = iova + size - 1n;
  if (list.length > 0 && !list.some(([s, e]) => iova >= s && last <= e)) return -EINVAL;

  const d = new RefDma(iova, size, vaddr, prot, c.owner);
  let charged = 0n;
  if (c.hasDomain) {
    const r = chargeCheck(d.owner, vaddr, d.npages, d.lockCap);
    if (r.err) return r.err;
    charged = r.charge;
    d.iommuMapped = true;
  }
  if (c.tracking) {
    if (size / pgsize > INT_MAX) return -EINVAL;
    d.allocBitmap(pgsize);
  }
  d.owner.lockedVm += charged;
  c.insertDma(d);
  c.dmaAvail--;
  return 0;
}

/** UNMAP_DMA: 0 (with `size` written back) or -errno (nothing written back). */
export function refUnmap(c: RefContainer, buf: Uint8Array): number {
  if (buf.length < 24) return -EFAULT;
  const argsz = rd32(buf, 0);
  const flags = rd32(buf, 4);
  const iova = rd64(buf, 8);
  const size = rd64(buf, 16);
  if (argsz < 24 || (flags & ~UNMAP_FLAGS) !== 0) return -EINVAL;
  const getBitmap = (flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) !== 0;
  const all = (flags & VFIO_DMA_UNMAP_FLAG_ALL) !== 0;
  const invalidate = (flags & VFIO_DMA_UNMAP_FLAG_VADDR) !== 0;
  if (getBitmap && (all || invalidate)) return -EINVAL;
  let bmPgsize = 0n;
  let bmData = 0n;
  if (getBitmap) {
    if (argsz < 48) return -EINVAL;
    if (buf.length < 48) return -EFAULT;
    bmPgsize = rd64(buf, 24);
    const bmSize = rd64(buf, 32);
    bmData = rd64(buf, 40);
    if (bmData + bmSize > USER_TOP) return -EINVAL;
    if (bmPgsize === 0n) return -EINVAL;
    const r = verifyBitmapSize(size >> BigInt(ctz(bmPgsize)), bmSize);
    if (r) return r;
  }

  // vfio_dma_do_unmap
  if (invalidate && c.hasEmulated) return -EBUSY;
  const pgsize = c.pgsize;
  if ((iova & (pgsize - 1n)) !== 0n) return -EINVAL;
  if (all) {
    if (iova !== 0n || size !== 0n) return -EINVAL;
  } else {
    if (size === 0n || (size & (pgsize - 1n)) !== 0n) return -EINVAL;
    if (iova + size - 1n > U64_MAX) return -c.engine.overflowErrno;
  }
  if (getBitmap && (!c.tracking || bmPgsize !== pgsize)) return -EINVAL;

  const end = all ? TWO64 : iova + size;
  let unmapped = 0n;
  let notified: RefDma | null = null;
  for (;;) {
    if (c.v2 && !all) {
      const a = c.dmaAt(iova);
      if (a && a.iova !== iova) return -EINVAL;
      const b = c.dmaAt(end - 1n);
      if (b && b.end !== end) return -EINVAL;
    }
    // linux-6.6: the exclusive end of a range reaching 2^64 wraps to 0 and the loop stops at once
    if (c.engine.profile === 'linux-6.6' && !all && end === TWO64) break;
    let restart = false;
    const invalidated: RefDma[] = [];
    let k = c.dmas.findIndex((d) => d.end > iova);
    if (k < 0) k = c.dmas.length;
    while (k < c.dmas.length) {
      const d = c.dmas[k];
      if (d.iova >= end) break;
      if (!c.v2 && iova > d.iova) break;
      if (invalidate) {
        if (d.vaddrInvalid) {
          for (const x of invalidated) x.vaddrInvalid = false;
          c.vaddrInvalidCount -= invalidated.length;
          return -EINVAL;
        }
        d.vaddrInvalid = true;
        c.vaddrInvalidCount++;
        invalidated.push(d);
        unmapped += d.size;
        k++;
        continue;
      }
      if (d.pins.size > 0) {
        if (notified === d) return -EBUSY; // docs/conformance.md §10.2: one notification round only
        notified = d;
        for (const dev of c.participants()) dev.dmaUnmap?.(d.iova, d.size);
        restart = true;
        break;
      }
      if (getBitmap) {
        const r = updateUserBitmap(c, bmData, d, iova);
        if (r) return r;
      }
      unmapped += d.size;
      if (d.iommuMapped) d.owner.lockedVm -= d.npages;
      c.removeDma(d);
    }
    if (!restart) break;
  }
  wr64(buf, 16, unmapped);
  return 0;
}
