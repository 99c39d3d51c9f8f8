// VFIO_IOMMU_DIRTY_PAGES (docs/conformance.md §7) of the reference model, and the copy of one dma's
// dirty state into a user bitmap (`update_user_bitmap`, §7.5) shared with unmap-with-bitmap.
import type { RefContainer } from './container.js';
import type { RefDma } from './dma.js';
import {
  EACCES, EFAULT, EINVAL, DIRTY_BITMAP_SIZE_MAX, INT_MAX, TWO64, U64_MAX, USER_TOP,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, VFIO_IOMMU_DIRTY_PAGES_FLAG_START,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP, ctz, rd32, rd64,
} from './uapi.js';

const ALL_FLAGS =
  VFIO_IOMMU_DIRTY_PAGES_FLAG_START | VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP | VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;

/** verify_bitmap_size: 0 or -EINVAL. */
export function verifyBitmapSize(npages: bigint, bitmapSize: bigint): number {
  if (npages === 0n || bitmapSize === 0n || bitmapSize > DIRTY_BITMAP_SIZE_MAX) return -EINVAL;
  if (bitmapSize < ((npages + 63n) / 64n) * 8n) return -EINVAL;
  return 0;
}

/** DIRTY_PAGES: START, STOP or GET_BITMAP; 0 or -errno. Nothing is written back into `buf`. */
export function refDirtyPages(c: RefContainer, buf: Uint8Array): number {
  if (!c.v2) return -EACCES;
  if (buf.length < 8) return -EFAULT;
  const argsz = rd32(buf, 0);
  const flags = rd32(buf, 4);
  if (argsz < 8 || (flags & ~ALL_FLAGS) !== 0) return -EINVAL;
  if (flags !== VFIO_IOMMU_DIRTY_PAGES_FLAG_START && flags !== VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP &&
      flags !== VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP) {
    return -EINVAL;
  }
  if (flags === VFIO_IOMMU_DIRTY_PAGES_FLAG_START) return start(c);
  if (flags === VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP) {
    if (c.tracking) {
      c.tracking = false;
      for (const d of c.dmas) d.freeBitmap();
    }
    return 0;
  }
  return getBitmap(c, buf, argsz);
}

function start(c: RefContainer): number {
  if (c.tracking) return 0; // no reset (docs/conformance.md §9-§10)
  const pgsize = c.pgsize;
  for (const d of c.dmas) if (d.size / pgsize > INT_MAX) return -EINVAL;
  for (const d of c.dmas) {
    d.allocBitmap(pgsize);
    d.resetToPinned(c.pgshift);
  }
  c.tracking = true;
  return 0;
}

function getBitmap(c: RefContainer, buf: Uint8Array, argsz: number): number {
  if (argsz - 8 < 40) return -EINVAL;
  if (buf.length < 48) return -EFAULT;
  const iova = rd64(buf, 8);
  const size = rd64(buf, 16);
  const bmPgsize = rd64(buf, 24);
  const bmSize = rd64(buf, 32);
  const bmData = rd64(buf, 40);
  if (c.engine.profile === 'linux-6.18') {
    if (size === 0n) return -EINVAL;
    if (iova + size - 1n > U64_MAX) return -c.engine.overflowErrno;
  } else if (iova + size > U64_MAX) {
    return -EINVAL; // iova + size wraps (strictly): a range ending at 2^64 is refused
  }
  if (bmData + bmSize > USER_TOP) return -EINVAL;
  if (bmPgsize === 0n) return -EINVAL;
  const r = verifyBitmapSize(size >> BigInt(ctz(bmPgsize)), bmSize);
  if (r) return r;
  const pgsize = c.pgsize;
  if (bmPgsize !== pgsize) return -EINVAL;
  if ((iova & (pgsize - 1n)) !== 0n) return -EINVAL;
  if (size === 0n || (size & (pgsize - 1n)) !== 0n) return -EINVAL;
  if (!c.tracking) return -EINVAL;
  const end = iova + size;
  const a = c.dmaAt(iova);
  if (a && a.iova !== iova) return -EINVAL;
  const b = c.dmaAt(end - 1n);
  if (b && b.end !== end) return -EINVAL;
  for (const d of [...c.dmas]) {
    if (d.iova < iova) continue;
    if (d.iova > end - 1n) break;
    const e = updateUserBitmap(c, bmData, d, iova);
    if (e) return e;
    d.resetToPinned(c.pgshift);
  }
  return 0;
}

/**
 * Writes dma d's dirty state into the user bitmap at `data` whose bit 0 is the page at `base`
 * (docs/conformance.md §7.5): the all-dirty rule, the shift by s, the whole-word OR of the user's first word,
 * whole-word writes of words w .. w+L-1. Faults (-EFAULT) write nothing and leave d unchanged.
 */
export function updateUserBitmap(c: RefContainer, data: bigint, d: RefDma, base: bigint): number {
  const pgshift = BigInt(c.pgshift);
  const nbits = Number(d.size >> pgshift);
  const o = Number((d.iova - base) >> pgshift);
  const w = Math.floor(o / 64);
  const s = o % 64;
  const L = Math.ceil((nbits + s) / 64);
  const addr = data + BigInt(w) * 8n;
  const mem = c.owner.memory;
  if (addr + BigInt(L) * 8n > TWO64 || !mem.isMapped(addr, BigInt(L) * 8n)) return -EFAULT;
  const allDirty = c.nonPinnedGroups > 0 && d.iommuMapped;
  const out = new Uint8Array(L * 8);
  for (let i = 0; i < nbits; i++) {
    if (allDirty || d.bit(i)) {
      const j = i + s;
      out[j >> 3] |= 1 << (j & 7);
    }
  }
  if (s !== 0) {
    const first = mem.read(addr, 8);
    for (let k = 0; k < 8; k++) out[k] |= first[k];
  }
  mem.write(addr, out);
  return 0;
}
