// VFIO_IOMMU_GET_INFO's capability chain (docs/conformance.md §3.5): MIGRATION, DMA_AVAIL, then
// IOVA_RANGE when the valid-IOVA list is not empty; each capability padded to 8 bytes with zeros;
// `next` fields are absolute offsets in the whole INFO buffer, whose fixed part is 24 bytes.
import type { Type1 } from './type1.js';
import { uapi } from '../uapi.js';

const {
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE: CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION: CAP_MIGRATION,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL: CAP_DMA_AVAIL,
  DIRTY_BITMAP_SIZE_MAX,
} = uapi;

const FIXED = 24;

/** The capability chain as it sits in the INFO buffer from offset 24. */
export function buildInfo(t: Type1): Uint8Array {
  const ranges = t.validRanges;
  const size = 32 + 16 + (ranges.length ? 16 + 16 * ranges.length : 0);
  const b = new Uint8Array(size);
  const v = new DataView(b.buffer);
  const header = (at: number, id: number, next: number): void => {
    v.setUint16(at, id, true);
    v.setUint16(at + 2, 1, true);
    v.setUint32(at + 4, next, true);
  };
  // MIGRATION @0: flags 0, pgsize_bitmap = the smallest page size, max_dirty_bitmap_size.
  header(0, CAP_MIGRATION, FIXED + 32);
  v.setBigUint64(16, t.pgsize, true);
  v.setBigUint64(24, DIRTY_BITMAP_SIZE_MAX, true);
  // DMA_AVAIL @32: 12 bytes, padded to 16.
  header(32, CAP_DMA_AVAIL, ranges.length ? FIXED + 48 : 0);
  v.setUint32(40, t.dmaAvail, true);
  if (ranges.length) {
    header(48, CAP_IOVA_RANGE, 0);
    v.setUint32(56, ranges.length, true);
    ranges.forEach(([s, e], i) => {
      v.setBigUint64(64 + 16 * i, s, true);
      v.setBigUint64(72 + 16 * i, e, true);
    });
  }
  return b;
}
