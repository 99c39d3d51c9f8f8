// The VFIO uAPI numbers under their kernel names (include/uapi/linux/vfio.h): ioctl
// requests, IOMMU types and extensions, flag bits, capability ids, struct sizes and limits.
// Plain numbers, except quantities the kernel types as u64, which are bigint.

/** `_IO(';', 100 + n)`: VFIO ioctls encode neither direction nor size (the size is `argsz`). */
import { kvmUapi } from './kvm/uapi.js';
import { iommufdUapi } from './iommufd/uapi.js';
import { deviceUapi } from './vfio/device_uapi.js';
import { PIN_PAGES_MAX_ENTRIES } from '../assembly/constants.js';

const VFIO_TYPE = 0x3b;
const VFIO_BASE = 100;
const io = (n: number): number => (VFIO_TYPE << 8) | (VFIO_BASE + n);

export const uapi = Object.freeze({
  // ---- ioctl requests (docs/conformance.md §3.1) ----------------------------------------------
  /** Container: returns VFIO_API_VERSION. */
  VFIO_GET_API_VERSION: io(0), // 0x3B64
  /**
   * Container: the argument is the extension number itself; returns 0 or 1 (docs/conformance.md
   * §3.2).
   */
  VFIO_CHECK_EXTENSION: io(1), // 0x3B65
  /** Container: the argument is the IOMMU type number itself. */
  VFIO_SET_IOMMU: io(2), // 0x3B66
  /** Group: fills a `vfio_group_status`. */
  VFIO_GROUP_GET_STATUS: io(3), // 0x3B67
  /** Group: the argument is the container fd (the kernel reads an `__s32` through a pointer). */
  VFIO_GROUP_SET_CONTAINER: io(4), // 0x3B68
  /** Group: no argument. */
  VFIO_GROUP_UNSET_CONTAINER: io(5), // 0x3B69
  /** Group: the argument is the device name; returns a new device fd. */
  VFIO_GROUP_GET_DEVICE_FD: io(6), // 0x3B6A
  /** Device: for reference only. */
  VFIO_DEVICE_GET_INFO: io(7), // 0x3B6B
  /** Container: fills a `vfio_iommu_type1_info` and its capability chain. */
  VFIO_IOMMU_GET_INFO: io(12), // 0x3B70
  /** Container: takes a `vfio_iommu_type1_dma_map`. */
  VFIO_IOMMU_MAP_DMA: io(13), // 0x3B71
  /** Container: takes a `vfio_iommu_type1_dma_unmap`; `size` is written back. */
  VFIO_IOMMU_UNMAP_DMA: io(14), // 0x3B72
  /** Container, sPAPR only: type1 answers ENOTTY. */
  VFIO_IOMMU_ENABLE: io(15), // 0x3B73
  /** Container, sPAPR only: type1 answers ENOTTY. */
  VFIO_IOMMU_DISABLE: io(16), // 0x3B74
  /** Container: takes a `vfio_iommu_type1_dirty_bitmap` (START / STOP / GET_BITMAP). */
  VFIO_IOMMU_DIRTY_PAGES: io(17), // 0x3B75

  /** What VFIO_GET_API_VERSION returns. */
  VFIO_API_VERSION: 0,

  /**
   * Container: takes a `vfio_iommu_type1_pasid_request` (docs/conformance.md §15.7); ALLOC returns
   * the PASID.
   */
  VFIO_IOMMU_PASID_REQUEST: io(18), // 0x3B76
  /** Accelerator queue (`_IO('W', 0)`): start the queue. */
  UACCE_CMD_START_Q: 0x5700,
  /** Accelerator queue (`_IO('W', 1)`): return the hardware queue. */
  UACCE_CMD_PUT_Q: 0x5701,

  // ---- IOMMU types and extensions, CHECK_EXTENSION / SET_IOMMU (docs/conformance.md §3.2) ----
  /** Type1 with v1 unmap semantics (no bisection check, whole dmas removed). */
  VFIO_TYPE1_IOMMU: 1,
  /** sPAPR TCE; no type1 driver accepts it. */
  VFIO_SPAPR_TCE_IOMMU: 2,
  /** Type1 with v2 unmap semantics. */
  VFIO_TYPE1v2_IOMMU: 3,
  /** Every IOMMU domain enforces cache coherency. */
  VFIO_DMA_CC_IOMMU: 4,
  /** sPAPR EEH. */
  VFIO_EEH: 5,
  /** Removed in v6.13 (`__VFIO_RESERVED_TYPE1_NESTING_IOMMU`); the engine answers 0. */
  VFIO_TYPE1_NESTING_IOMMU: 6,
  /** sPAPR TCE v2. */
  VFIO_SPAPR_TCE_v2_IOMMU: 7,
  /** No-IOMMU mode; not from type1. */
  VFIO_NOIOMMU_IOMMU: 8,
  /** UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_ALL (an extension, not an IOMMU type). */
  VFIO_UNMAP_ALL: 9,
  /** MAP/UNMAP with the VADDR flag (an extension, not an IOMMU type). */
  VFIO_UPDATE_VADDR: 10,

  // ---- flags (docs/conformance.md §3.3) -------------------------------------------------------
  /** vfio_iommu_type1_info.flags: `iova_pgsizes` is valid. */
  VFIO_IOMMU_INFO_PGSIZES: 1 << 0,
  /** vfio_iommu_type1_info.flags: `cap_offset` is valid. */
  VFIO_IOMMU_INFO_CAPS: 1 << 1,
  /** vfio_iommu_type1_dma_map.flags: the device may read the memory. */
  VFIO_DMA_MAP_FLAG_READ: 1 << 0,
  /** vfio_iommu_type1_dma_map.flags: the device may write the memory. */
  VFIO_DMA_MAP_FLAG_WRITE: 1 << 1,
  /** vfio_iommu_type1_dma_map.flags: re-point an invalidated mapping at a new vaddr. */
  VFIO_DMA_MAP_FLAG_VADDR: 1 << 2,
  /** vfio_iommu_type1_dma_unmap.flags: report the removed dmas' dirty bits (`vfio_bitmap` @24). */
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP: 1 << 0,
  /** vfio_iommu_type1_dma_unmap.flags: every dma (iova and size must be 0). */
  VFIO_DMA_UNMAP_FLAG_ALL: 1 << 1,
  /** vfio_iommu_type1_dma_unmap.flags: invalidate the vaddr instead of removing the mapping. */
  VFIO_DMA_UNMAP_FLAG_VADDR: 1 << 2,
  /** vfio_iommu_type1_dirty_bitmap.flags: start tracking. */
  VFIO_IOMMU_DIRTY_PAGES_FLAG_START: 1 << 0,
  /** vfio_iommu_type1_dirty_bitmap.flags: stop tracking and discard every bitmap. */
  VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP: 1 << 1,
  /** vfio_iommu_type1_dirty_bitmap.flags: read and clear (`vfio_iommu_type1_dirty_bitmap_get` @8). */
  VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP: 1 << 2,
  /** vfio_group_status.flags: the group may be used. */
  VFIO_GROUP_FLAGS_VIABLE: 1 << 0,
  /** vfio_group_status.flags: the group is attached to a container. */
  VFIO_GROUP_FLAGS_CONTAINER_SET: 1 << 1,

  // ---- GET_INFO capability ids, each at version 1 (docs/conformance.md §3.5) ------------------
  /** Valid IOVA ranges: `nr_iovas` then inclusive {start, end} u64 pairs. */
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE: 1,
  /** Dirty tracking: smallest page size and `max_dirty_bitmap_size`. */
  VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION: 2,
  /** Remaining vfio_dma entries (`dma_avail`). */
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL: 3,
  /** The version every capability above carries. */
  VFIO_INFO_CAP_VERSION: 1,

  // ---- `prot` bits of vfio_pin_pages (docs/conformance.md §6) ---------------------------------
  /** The device reads the pinned pages. */
  IOMMU_READ: 1 << 0,
  /** The device writes the pinned pages. */
  IOMMU_WRITE: 1 << 1,

  // ---- struct sizes and minsz, LP64 bytes (docs/conformance.md §3.3) --------------------------
  /** vfio_info_cap_header: id u16, version u16, next u32. */
  INFO_CAP_HEADER_SIZE: 8,
  /** vfio_iommu_type1_info, pad included; also where the capability chain starts. */
  IOMMU_INFO_SIZE: 24,
  /** vfio_iommu_type1_info minsz: the end of `iova_pgsizes`. */
  IOMMU_INFO_MINSZ: 16,
  /** vfio_iommu_type1_info_cap_migration. */
  CAP_MIGRATION_SIZE: 32,
  /** vfio_iommu_type1_info_dma_avail (padded to 16 in the v6.6+ chain). */
  CAP_DMA_AVAIL_SIZE: 12,
  /** vfio_iommu_type1_info_cap_iova_range without its ranges. */
  CAP_IOVA_RANGE_SIZE: 16,
  /** One vfio_iova_range: inclusive start and end. */
  IOVA_RANGE_SIZE: 16,
  /** Alignment of each capability in the chain (v6.6+). */
  CAP_ALIGN: 8,
  /** vfio_iommu_type1_dma_map; also its minsz. */
  DMA_MAP_SIZE: 32,
  /** vfio_iommu_type1_dma_unmap without data[]; also its minsz. */
  DMA_UNMAP_SIZE: 24,
  /** vfio_bitmap: pgsize, size (bytes), data (user pointer). */
  BITMAP_SIZE: 24,
  /** vfio_iommu_type1_dma_unmap followed by a vfio_bitmap: the argsz GET_DIRTY_BITMAP needs. */
  DMA_UNMAP_BITMAP_SIZE: 48,
  /** vfio_iommu_type1_dirty_bitmap without data[]; also its minsz. */
  DIRTY_BITMAP_SIZE: 8,
  /** vfio_iommu_type1_dirty_bitmap_get alone (iova, size, vfio_bitmap). */
  DIRTY_BITMAP_GET_BODY_SIZE: 40,
  /** vfio_iommu_type1_dirty_bitmap with its dirty_bitmap_get: the argsz GET_BITMAP needs. */
  DIRTY_BITMAP_GET_SIZE: 48,
  /** vfio_group_status. */
  GROUP_STATUS_SIZE: 8,

  // ---- PASIDs and shared accelerators (docs/conformance.md §15, §16) --------------------------
  /** vfio_iommu_type1_pasid_request.flags: allocate a PASID in [min, max]. */
  VFIO_IOMMU_FLAG_ALLOC_PASID: 1 << 0,
  /** vfio_iommu_type1_pasid_request.flags: free the VM's PASIDs in [min, max]. */
  VFIO_IOMMU_FLAG_FREE_PASID: 1 << 1,
  /** Every valid flag of a PASID request. */
  VFIO_PASID_REQUEST_MASK: 3,
  /** PASIDs a VM may request are below 2^VFIO_IOMMU_PASID_BITS. */
  VFIO_IOMMU_PASID_BITS: 31,
  /** vfio_iommu_type1_pasid_request: argsz, flags, range.min, range.max; also its minsz. */
  PASID_REQUEST_SIZE: 16,
  /** Accelerator flag: the device works in process address spaces (shared virtual addressing). */
  UACCE_DEV_SVA: 1,
  /** Queue region (mmap page offset 0): the device registers. */
  UACCE_QFRT_MMIO: 0,
  /** Queue region (mmap page offset 1): device-user shared memory. */
  UACCE_QFRT_DUS: 1,
  /** Number of queue regions. */
  UACCE_MAX_REGION: 2,
  /** Queue state: released or put. */
  UACCE_Q_ZOMBIE: 0,
  /** Queue state: opened, not started. */
  UACCE_Q_INIT: 1,
  /** Queue state: started. */
  UACCE_Q_STARTED: 2,
  /** No IOASID. */
  INVALID_IOASID: 0xffff_ffff,
  /** No IOASID set. */
  INVALID_IOASID_SET: -1,
  /** IOASID events. */
  IOASID_ALLOC: 1,
  IOASID_FREE: 2,
  IOASID_BIND: 3,
  IOASID_UNBIND: 4,
  /** Notifier results. */
  NOTIFY_DONE: 0,
  NOTIFY_OK: 1,
  NOTIFY_STOP_MASK: 0x8000,
  NOTIFY_STOP: 0x8001,
  NOTIFY_BAD: 0x8002,
  /** Notifier priorities. */
  IOASID_PRIO_LAST: 0,
  IOASID_PRIO_DEVICE: 1,
  IOASID_PRIO_IOMMU: 2,
  IOASID_PRIO_CPU: 3,

  // ---- limits ---------------------------------------------------------------------------------
  /** Most pages one dirty bitmap may describe: INT_MAX (`DIRTY_BITMAP_PAGES_MAX`, u64). */
  DIRTY_BITMAP_PAGES_MAX: 0x7fff_ffffn,
  /** Largest user bitmap in bytes (`DIRTY_BITMAP_SIZE_MAX`, u64): 256 MiB. */
  DIRTY_BITMAP_SIZE_MAX: 0x1000_0000n,
  /** Most pages one vfio_pin_pages call takes: PAGE_SIZE / sizeof(unsigned long). */
  VFIO_PIN_PAGES_MAX_ENTRIES: PIN_PAGES_MAX_ENTRIES,
  /** Default of the type1 module parameter `dma_entry_limit`. */
  DMA_ENTRY_LIMIT_DEFAULT: 65535,
  /** The container's `pgsize_bitmap` with no IOMMU domain (emulated-only). */
  PGSIZE_BITMAP_NO_DOMAIN: 0xffff_ffff_ffff_f000n,
  /** x86-64 user-space top (TASK_SIZE_MAX): a user range reaching past it is invalid. */
  TASK_SIZE_MAX: 0x7fff_ffff_f000n,

  // ---- KVM (docs/conformance.md §19) ----------------------------------------------------------
  ...kvmUapi,
  // ---- device features, device cdevs and iommufd (docs/conformance.md §20, §21) ---------------
  ...deviceUapi,
  ...iommufdUapi,
});

/** The type of `uapi`. */
export type Uapi = typeof uapi;
