// The iommufd uAPI numbers (include/uapi/linux/iommufd.h): ioctl
// requests `_IO(';', nr)`, struct sizes and flag bits. Joined into `uapi` by src/uapi.ts.

const io = (nr: number): number => (0x3b << 8) | nr;

export const IOMMU_DESTROY = io(0x80);
export const IOMMU_IOAS_ALLOC = io(0x81);
export const IOMMU_IOAS_IOVA_RANGES = io(0x84);
export const IOMMU_IOAS_MAP = io(0x85);
export const IOMMU_IOAS_UNMAP = io(0x86);
export const IOMMU_HWPT_ALLOC = io(0x89);
export const IOMMU_GET_HW_INFO = io(0x8a);
export const IOMMU_HWPT_SET_DIRTY_TRACKING = io(0x8b);
export const IOMMU_HWPT_GET_DIRTY_BITMAP = io(0x8c);

export const IOMMU_IOAS_MAP_FIXED_IOVA = 1;
export const IOMMU_IOAS_MAP_WRITEABLE = 2;
export const IOMMU_IOAS_MAP_READABLE = 4;
export const IOMMU_HWPT_ALLOC_NEST_PARENT = 1;
export const IOMMU_HWPT_ALLOC_DIRTY_TRACKING = 2;
export const IOMMU_HWPT_FAULT_ID_VALID = 4;
export const IOMMU_HWPT_ALLOC_PASID = 8;
export const IOMMU_HWPT_DATA_NONE = 0;
export const IOMMU_HW_INFO_FLAG_INPUT_TYPE = 1;
export const IOMMU_HW_INFO_TYPE_NONE = 0;
export const IOMMU_HW_CAP_DIRTY_TRACKING = 1; // enum iommu_hw_capabilities: a plain number like every flag
export const IOMMU_HWPT_DIRTY_TRACKING_ENABLE = 1;
export const IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR = 1;

/** Every iommufd request the engine decodes: [struct size, min_size]. */
export const IOMMUFD_STRUCTS: ReadonlyMap<number, readonly [number, number]> = new Map([
  [IOMMU_DESTROY, [8, 8]],
  [IOMMU_IOAS_ALLOC, [12, 12]],
  [IOMMU_IOAS_IOVA_RANGES, [32, 32]],
  [IOMMU_IOAS_MAP, [40, 40]],
  [IOMMU_IOAS_UNMAP, [24, 24]],
  [IOMMU_HWPT_ALLOC, [48, 24]],
  [IOMMU_GET_HW_INFO, [40, 32]],
  [IOMMU_HWPT_SET_DIRTY_TRACKING, [16, 16]],
  [IOMMU_HWPT_GET_DIRTY_BITMAP, [48, 48]],
]);

/** The iommufd names of `uapi`. */
export const iommufdUapi = {
  IOMMU_DESTROY, IOMMU_IOAS_ALLOC, IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP,
  IOMMU_HWPT_ALLOC, IOMMU_GET_HW_INFO, IOMMU_HWPT_SET_DIRTY_TRACKING, IOMMU_HWPT_GET_DIRTY_BITMAP,
  IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_WRITEABLE, IOMMU_IOAS_MAP_READABLE,
  IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HWPT_ALLOC_PASID,
  IOMMU_HWPT_FAULT_ID_VALID, IOMMU_HWPT_DATA_NONE, IOMMU_HW_INFO_FLAG_INPUT_TYPE,
  IOMMU_HW_INFO_TYPE_NONE, IOMMU_HW_CAP_DIRTY_TRACKING, IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
  IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
} as const;
