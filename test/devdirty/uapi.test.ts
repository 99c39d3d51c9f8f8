// The uapi names and values of device dirty tracking and iommufd, and the new errno values.
import { describe, expect, it } from 'vitest';
import { errno, uapi } from '../../src/index.js';

describe('uapi and errno additions', () => {
  it('ioctl numbers of §1.1', () => {
    expect([uapi.VFIO_DEVICE_RESET, uapi.VFIO_DEVICE_FEATURE, uapi.VFIO_DEVICE_BIND_IOMMUFD,
      uapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT, uapi.VFIO_DEVICE_DETACH_IOMMUFD_PT]).toEqual([0x3b6f, 0x3b75, 0x3b76, 0x3b77, 0x3b78]);
    expect([uapi.IOMMU_DESTROY, uapi.IOMMU_IOAS_ALLOC, uapi.IOMMU_IOAS_IOVA_RANGES, uapi.IOMMU_IOAS_MAP,
      uapi.IOMMU_IOAS_UNMAP, uapi.IOMMU_HWPT_ALLOC, uapi.IOMMU_GET_HW_INFO, uapi.IOMMU_HWPT_SET_DIRTY_TRACKING,
      uapi.IOMMU_HWPT_GET_DIRTY_BITMAP]).toEqual([0x3b80, 0x3b81, 0x3b84, 0x3b85, 0x3b86, 0x3b89, 0x3b8a, 0x3b8b, 0x3b8c]);
  });

  it('flags and indexes of §1.2-§1.3', () => {
    expect([uapi.VFIO_DEVICE_FEATURE_MASK, uapi.VFIO_DEVICE_FEATURE_GET, uapi.VFIO_DEVICE_FEATURE_SET,
      uapi.VFIO_DEVICE_FEATURE_PROBE]).toEqual([0xffff, 0x10000, 0x20000, 0x40000]);
    expect([uapi.VFIO_DEVICE_FEATURE_MIGRATION, uapi.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
      uapi.VFIO_DEVICE_FEATURE_DMA_LOGGING_START, uapi.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
      uapi.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, uapi.VFIO_DEVICE_FEATURE_MIG_DATA_SIZE]).toEqual([1, 2, 6, 7, 8, 9]);
    expect([uapi.VFIO_MIGRATION_STOP_COPY, uapi.VFIO_MIGRATION_P2P, uapi.VFIO_MIGRATION_PRE_COPY]).toEqual([1, 2, 4]);
    expect([uapi.VFIO_DEVICE_BIND_FLAG_TOKEN, uapi.VFIO_DEVICE_ATTACH_PASID, uapi.VFIO_DEVICE_DETACH_PASID]).toEqual([1, 1, 1]);
    expect([uapi.IOMMU_IOAS_MAP_FIXED_IOVA, uapi.IOMMU_IOAS_MAP_WRITEABLE, uapi.IOMMU_IOAS_MAP_READABLE]).toEqual([1, 2, 4]);
    expect([uapi.IOMMU_HWPT_ALLOC_NEST_PARENT, uapi.IOMMU_HWPT_ALLOC_DIRTY_TRACKING, uapi.IOMMU_HWPT_FAULT_ID_VALID,
      uapi.IOMMU_HWPT_ALLOC_PASID, uapi.IOMMU_HWPT_DATA_NONE]).toEqual([1, 2, 4, 8, 0]);
    expect([uapi.IOMMU_HW_INFO_FLAG_INPUT_TYPE, uapi.IOMMU_HW_INFO_TYPE_NONE, uapi.IOMMU_HW_CAP_DIRTY_TRACKING,
      uapi.IOMMU_HWPT_DIRTY_TRACKING_ENABLE, uapi.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR]).toEqual([1, 0, 1, 1, 1]);
  });

  it('errno gains EMSGSIZE, EOPNOTSUPP and EADDRINUSE', () => {
    expect([errno.EMSGSIZE, errno.EOPNOTSUPP, errno.EADDRINUSE]).toEqual([90, 95, 98]);
  });
});
