// The walk over the public surface as a script: container, group, device, memory, map, tracking,
// the vendor driver's pin and dma_rw, GET_BITMAP, unmap with a bitmap (a dma_unmap callback that
// unpins), and one invalid input of each kind.
import { uapi } from '../../src/uapi.js';
import {
  dirtyBitmap, dirtyBitmapGet, dmaMap, dmaUnmap, groupStatus, hex, iommuInfo,
} from '../helpers/uapi_structs.js';
import type { Step } from './script.js';

const b = (x: Uint8Array) => ({ b: hex(x) });
const v = (x: number | bigint) => ({ v: `0x${BigInt(x).toString(16)}` });

export const MEM = 0x10_0000_0000n;
export const BITMAP = MEM + 0x40_0000n + 0x1000n;

/** The walk, with its mdev device named `dev` (unique per server). */
export function contractScript(dev: string): Step[] {
  const bm = { pgsize: 4096n, size: 128n, data: BITMAP };
  const rw = uapi.VFIO_DMA_MAP_FLAG_READ | uapi.VFIO_DMA_MAP_FLAG_WRITE;
  return [
    ['open', '/dev/vfio/vfio'],
    ['ioctl', 3, uapi.VFIO_GET_API_VERSION, null],
    ['ioctl', 3, uapi.VFIO_CHECK_EXTENSION, v(uapi.VFIO_TYPE1v2_IOMMU)],
    ['group', `kind=emulated,devices=${dev}`],
    ['open_group'],
    ['ioctl', 4, uapi.VFIO_GROUP_GET_STATUS, b(groupStatus())],
    ['ioctl', 4, uapi.VFIO_GROUP_SET_CONTAINER, v(3)],
    ['ioctl', 4, uapi.VFIO_GROUP_GET_STATUS, b(groupStatus())],
    ['ioctl', 3, uapi.VFIO_SET_IOMMU, v(uapi.VFIO_TYPE1v2_IOMMU)],
    ['ioctl', 3, uapi.VFIO_IOMMU_GET_INFO, b(iommuInfo(256, { fill: 0xaa }))],
    ['ioctl', 4, uapi.VFIO_GROUP_GET_DEVICE_FD, { s: dev }],
    ['register', dev],
    ['mmap', 0x40_0000],
    ['mmap', 4096],
    ['write', `0x${MEM.toString(16)}`, 'de ad be ef'],
    ['ioctl', 3, uapi.VFIO_IOMMU_MAP_DMA, b(dmaMap({ flags: rw, vaddr: MEM, iova: 0n, size: 0x40_0000n }))],
    ['ioctl', 3, uapi.VFIO_IOMMU_DIRTY_PAGES, b(dirtyBitmap({ flags: uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START }))],
    ['pin', dev, '0x2000', 2, uapi.IOMMU_READ | uapi.IOMMU_WRITE],
    ['dma_write', dev, '0x10000', '01 02 03 04'],
    ['dma_read', dev, '0x0', 4],
    ['ioctl', 3, uapi.VFIO_IOMMU_DIRTY_PAGES, b(dirtyBitmapGet({ iova: 0n, size: 0x40_0000n, bitmap: bm, fill: 0x55 }))],
    ['read', `0x${BITMAP.toString(16)}`, 128],
    ['read', `0x${(MEM + 0x10000n).toString(16)}`, 4],
    ['ioctl', 3, uapi.VFIO_IOMMU_UNMAP_DMA, b(dmaUnmap({
      flags: uapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, iova: 0n, size: 0x40_0000n, bitmap: bm,
    }))],
    ['read', `0x${BITMAP.toString(16)}`, 128],
    ['ioctl', 3, uapi.VFIO_IOMMU_DIRTY_PAGES, b(dirtyBitmap({ flags: uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP }))],
    ['ioctl', 9, uapi.VFIO_GET_API_VERSION, null],
    ['ioctl', 3, uapi.VFIO_IOMMU_MAP_DMA, b(dmaMap({ flags: rw, vaddr: MEM, iova: 0n, size: 0x1000n, length: 8 }))],
    ['ioctl', 3, 0x3bff, null],
    ['open', '/dev/vfio/999'],
    ['close', 42],
    ['read', '0x10', 4],
    ['write', '0x10', '00'],
    ['pin', dev, '0x0', 1, 3],
    ['close', 5],
    ['close', 4],
    ['close', 3],
  ];
}
