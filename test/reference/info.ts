// VFIO_IOMMU_GET_INFO (docs/conformance.md §3.5) of the reference model: the fixed struct and the
// capability chain MIGRATION -> DMA_AVAIL -> IOVA_RANGE, each capability padded to 8 bytes.
import type { RefContainer } from './container.js';
import {
  DIRTY_BITMAP_SIZE_MAX, EFAULT, EINVAL, VFIO_IOMMU_INFO_CAPS, VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, rd32, wr16, wr32, wr64,
} from './uapi.js';

/** The capability chain as it lands in the buffer from offset 24 (absolute `next` offsets). */
function buildCaps(c: RefContainer): Uint8Array {
  const ranges = c.iovaList;
  const sizes = [32, 16];
  if (ranges.length > 0) sizes.push(16 + 16 * ranges.length);
  const total = sizes.reduce((a, b) => a + b, 0);
  const caps = new Uint8Array(total);
  let off = 0;
  const header = (id: number, i: number): void => {
    const next = i + 1 < sizes.length ? 24 + off + sizes[i] : 0;
    wr16(caps, off, id);
    wr16(caps, off + 2, 1);
    wr32(caps, off + 4, next);
  };
  header(VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, 0);
  wr32(caps, off + 8, 0);
  wr64(caps, off + 16, c.pgsize);
  wr64(caps, off + 24, DIRTY_BITMAP_SIZE_MAX);
  off += sizes[0];
  header(VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 1);
  wr32(caps, off + 8, c.dmaAvail);
  off += sizes[1];
  if (ranges.length > 0) {
    header(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 2);
    wr32(caps, off + 8, ranges.length);
    ranges.forEach(([s, e], i) => {
      wr64(caps, off + 16 + 16 * i, s);
      wr64(caps, off + 24 + 16 * i, e);
    });
  }
  return caps;
}

/** GET_INFO: 0 or -errno; writes min(argsz, 24) bytes of the fixed struct, and the caps if room. */
export function refGetInfo(c: RefContainer, buf: Uint8Array): number {
  if (buf.length < 16) return -EFAULT;
  const argsz = rd32(buf, 0);
  if (argsz < 16) return -EINVAL;
  const caps = buildCaps(c);
  const fixed = new Uint8Array(24);
  let outArgsz = argsz;
  let capOffset = 0;
  const fits = argsz >= 24 + caps.length;
  if (!fits) outArgsz = 24 + caps.length;
  else capOffset = 24;
  wr32(fixed, 0, outArgsz);
  wr32(fixed, 4, VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS);
  wr64(fixed, 8, c.pgsizeBitmap);
  wr32(fixed, 16, capOffset);
  const n = Math.min(argsz, 24);
  if (buf.length < n || (fits && buf.length < 24 + caps.length)) return -EFAULT;
  if (fits) buf.set(caps, 24);
  buf.set(fixed.subarray(0, n), 0);
  return 0;
}
