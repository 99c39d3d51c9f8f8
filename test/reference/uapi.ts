// The reference model's own copy of the uAPI numbers, written from docs/conformance.md §3 and not
// from src/, so that the differential test can check the engine's `uapi` export against an
// independent source. errno numbers come from the one shared source (assembly/constants.ts), as
// everywhere else.
export {
  EPERM, ENOENT, E2BIG, EBADF, ENOMEM, EACCES, EFAULT, EBUSY, EEXIST, ENODEV, EINVAL, ENOTTY,
  ENOSPC, EOVERFLOW, EBADFD,
} from '../../assembly/constants.js';

/** `_IO(';', 100 + n)` = 0x3B00 | (100 + n). */
const io = (n: number): number => 0x3b00 | (100 + n);

export const VFIO_GET_API_VERSION = io(0);
export const VFIO_CHECK_EXTENSION = io(1);
export const VFIO_SET_IOMMU = io(2);
export const VFIO_GROUP_GET_STATUS = io(3);
export const VFIO_GROUP_SET_CONTAINER = io(4);
export const VFIO_GROUP_UNSET_CONTAINER = io(5);
export const VFIO_GROUP_GET_DEVICE_FD = io(6);
export const VFIO_DEVICE_GET_INFO = io(7);
export const VFIO_IOMMU_GET_INFO = io(12);
export const VFIO_IOMMU_MAP_DMA = io(13);
export const VFIO_IOMMU_UNMAP_DMA = io(14);
export const VFIO_IOMMU_ENABLE = io(15);
export const VFIO_IOMMU_DISABLE = io(16);
export const VFIO_IOMMU_DIRTY_PAGES = io(17);

export const VFIO_TYPE1_IOMMU = 1;
export const VFIO_SPAPR_TCE_IOMMU = 2;
export const VFIO_TYPE1v2_IOMMU = 3;
export const VFIO_DMA_CC_IOMMU = 4;
export const VFIO_EEH = 5;
export const VFIO_TYPE1_NESTING_IOMMU = 6;
export const VFIO_SPAPR_TCE_v2_IOMMU = 7;
export const VFIO_NOIOMMU_IOMMU = 8;
export const VFIO_UNMAP_ALL = 9;
export const VFIO_UPDATE_VADDR = 10;

export const VFIO_DMA_MAP_FLAG_READ = 1;
export const VFIO_DMA_MAP_FLAG_WRITE = 2;
export const VFIO_DMA_MAP_FLAG_VADDR = 4;
export const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1;
export const VFIO_DMA_UNMAP_FLAG_ALL = 2;
export const VFIO_DMA_UNMAP_FLAG_VADDR = 4;
export const VFIO_IOMMU_DIRTY_PAGES_FLAG_START = 1;
export const VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP = 2;
export const VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP = 4;
export const VFIO_GROUP_FLAGS_VIABLE = 1;
export const VFIO_GROUP_FLAGS_CONTAINER_SET = 2;
export const VFIO_IOMMU_INFO_PGSIZES = 1;
export const VFIO_IOMMU_INFO_CAPS = 2;
export const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1;
export const VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION = 2;
export const VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3;
export const IOMMU_READ = 1;
export const IOMMU_WRITE = 2;

export const PAGE_SIZE = 4096n;
export const PIN_MAX = 512;
export const DIRTY_BITMAP_SIZE_MAX = 0x10000000n;
export const INT_MAX = 0x7fffffffn;
export const TWO64 = 1n << 64n;
export const U64_MAX = TWO64 - 1n;
/** The x86-64 user-space top: access_ok fails for a range reaching past it. */
export const USER_TOP = 0x7ffffffff000n;

export type ProfileName = 'linux-6.18' | 'linux-6.6';

// ---- little-endian struct access --------------------------------------------------------------

function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}
export const rd32 = (b: Uint8Array, off: number): number => dv(b).getUint32(off, true);
export const rd64 = (b: Uint8Array, off: number): bigint => dv(b).getBigUint64(off, true);
export const wr16 = (b: Uint8Array, off: number, v: number): void => dv(b).setUint16(off, v, true);
export const wr32 = (b: Uint8Array, off: number, v: number): void => dv(b).setUint32(off, v >>> 0, true);
export const wr64 = (b: Uint8Array, off: number, v: bigint): void => dv(b).setBigUint64(off, BigInt.asUintN(64, v), true);

/** Index of the lowest set bit of a non-zero bigint (`__ffs`). */
export function ctz(x: bigint): number {
  let n = 0;
  while (((x >> BigInt(n)) & 1n) === 0n) n++;
  return n;
}

/** Lower-case hex of bytes, byte 0 first, no separators. */
export function hexOf(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}
