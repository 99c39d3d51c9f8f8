// The ioctl argument bytes the simulator's trackers send, built the way a VMM builds them: one
// little-endian struct per call, fields at the offsets of include/uapi/linux/vfio.h and iommufd.h.
// Only the structs the simulator uses are here; each builder takes the fields it sets.
import { uapi } from '../uapi.js';

/** A struct of `size` zero bytes with `fields` ([offset, value]: u64 for bigints, u32 otherwise). */
export function struct(size: number, fields: readonly (readonly [number, number | bigint])[]): Uint8Array {
  const b = new Uint8Array(size);
  const v = new DataView(b.buffer);
  for (const [off, val] of fields) {
    if (typeof val === 'bigint') v.setBigUint64(off, val, true);
    else v.setUint32(off, val >>> 0, true);
  }
  return b;
}

/** The u32 at `off` of `b` (an id a call wrote back). */
export function u32At(b: Uint8Array, off: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(off, true);
}

/** The u64 at `off` of `b` (flags a call wrote back). */
export function u64At(b: Uint8Array, off: number): bigint {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(off, true);
}

const GET = uapi.VFIO_DEVICE_FEATURE_GET;
const SET = uapi.VFIO_DEVICE_FEATURE_SET;

/** VFIO_DEVICE_FEATURE MIGRATION GET: argsz 16, flags 0x00010001 (QEMU's probe at realize). */
export const migrationGet = (): Uint8Array => struct(16, [[0, 16], [4, GET | uapi.VFIO_DEVICE_FEATURE_MIGRATION]]);

/** VFIO_DEVICE_FEATURE PROBE of DMA logging: argsz 8, flags 0x00040006. */
export const loggingProbe = (): Uint8Array =>
  struct(8, [[0, 8], [4, uapi.VFIO_DEVICE_FEATURE_PROBE | uapi.VFIO_DEVICE_FEATURE_DMA_LOGGING_START]]);

/** DMA_LOGGING_START: argsz 32, page_size, num_ranges, and the range array's process address. */
export const loggingStart = (pageSize: bigint, numRanges: number, ranges: bigint): Uint8Array =>
  struct(32, [[0, 32], [4, SET | uapi.VFIO_DEVICE_FEATURE_DMA_LOGGING_START], [8, pageSize], [16, numRanges], [24, ranges]]);

/** DMA_LOGGING_STOP: argsz 8. */
export const loggingStop = (): Uint8Array => struct(8, [[0, 8], [4, SET | uapi.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP]]);

/** DMA_LOGGING_REPORT of [iova, iova + length) at `pageSize` into the bitmap at `bitmap`. */
export const loggingReport = (iova: bigint, length: bigint, pageSize: bigint, bitmap: bigint): Uint8Array =>
  struct(40, [[0, 40], [4, GET | uapi.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT], [8, iova], [16, length], [24, pageSize], [32, bitmap]]);

/** VFIO_DEVICE_BIND_IOMMUFD: argsz 24, flags 0, the iommufd fd; out_devid comes back at @12. */
export const bindIommufd = (iommufd: number): Uint8Array => struct(24, [[0, 24], [8, iommufd]]);

/** VFIO_DEVICE_ATTACH_IOMMUFD_PT: argsz 12, pt_id. */
export const attachPt = (ptId: number): Uint8Array => struct(12, [[0, 12], [8, ptId]]);

/** VFIO_DEVICE_DETACH_IOMMUFD_PT: argsz 8. */
export const detachPt = (): Uint8Array => struct(8, [[0, 8]]);

/** IOMMU_IOAS_ALLOC: the id comes back at @8. */
export const ioasAlloc = (): Uint8Array => struct(12, [[0, 12]]);

/** IOMMU_DESTROY of `id`. */
export const destroy = (id: number): Uint8Array => struct(8, [[0, 8], [4, id]]);

/** IOMMU_GET_HW_INFO of device `devId`, no vendor data; capabilities come back at @32. */
export const hwInfo = (devId: number): Uint8Array => struct(40, [[0, 40], [8, devId]]);

/** IOMMU_HWPT_ALLOC with `flags` on IOAS `ioasId` for device `devId`; the id comes back at @16. */
export const hwptAlloc = (flags: number, devId: number, ioasId: number): Uint8Array =>
  struct(48, [[0, 48], [4, flags], [8, devId], [12, ioasId]]);

/** IOMMU_IOAS_MAP of `length` bytes at `userVa` to the fixed IOVA `iova`, readable and writeable. */
export const ioasMapFixed = (ioasId: number, userVa: bigint, length: bigint, iova: bigint): Uint8Array =>
  struct(40, [
    [0, 40],
    [4, uapi.IOMMU_IOAS_MAP_FIXED_IOVA | uapi.IOMMU_IOAS_MAP_READABLE | uapi.IOMMU_IOAS_MAP_WRITEABLE],
    [8, ioasId], [16, userVa], [24, length], [32, iova],
  ]);

/** IOMMU_IOAS_UNMAP of [iova, iova + length); the bytes unmapped come back at @16. */
export const ioasUnmap = (ioasId: number, iova: bigint, length: bigint): Uint8Array =>
  struct(24, [[0, 24], [4, ioasId], [8, iova], [16, length]]);

/** IOMMU_HWPT_SET_DIRTY_TRACKING: enable or disable on `hwptId`. */
export const setDirtyTracking = (hwptId: number, enable: boolean): Uint8Array =>
  struct(16, [[0, 16], [4, enable ? uapi.IOMMU_HWPT_DIRTY_TRACKING_ENABLE : 0], [8, hwptId]]);

/** IOMMU_HWPT_GET_DIRTY_BITMAP of [iova, iova + length) at `pageSize` into `data`. */
export const getDirtyBitmap = (hwptId: number, iova: bigint, length: bigint, pageSize: bigint, data: bigint, noClear = false): Uint8Array =>
  struct(48, [[0, 48], [4, hwptId], [8, noClear ? uapi.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR : 0], [16, iova], [24, length], [32, pageSize], [40, data]]);
