"""Worked example: map guest memory, start dirty tracking, write through a device as its vendor
driver would (vfio_dma_rw), and harvest the dirty bitmap through the shared file.

usage: python3 example.py SOCKET [DEVICE]
"""
import struct
import sys

from vfio_dirty import (
    Client, VFIO_GROUP_SET_CONTAINER, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU, VFIO_GROUP_GET_DEVICE_FD,
    VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_DIRTY_PAGES, VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE,
    VFIO_IOMMU_DIRTY_PAGES_FLAG_START, VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
)

GUEST = 64 << 20            # 64 MiB of guest memory
PAGES = GUEST >> 12
BITMAP_BYTES = PAGES // 8   # one bit per 4 KiB page


def check(what, ret):
    if ret < 0:
        sys.exit('%s failed: errno %d' % (what, -ret))
    return ret


sock = sys.argv[1]
dev = sys.argv[2] if len(sys.argv) > 2 else 'vgpu0'
c = Client(sock, shm_bytes=BITMAP_BYTES)

# The host side: a mediated device in its own group (or use a group made with serve --group).
gid = check('create group', c.create_group('kind=emulated,devices=' + dev))
container = check('open container', c.open('/dev/vfio/vfio'))
group = check('open group', c.open('/dev/vfio/%d' % gid))
check('set container', c.ioctl(group, VFIO_GROUP_SET_CONTAINER, container))
check('set iommu', c.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
check('device fd', c.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, dev))

# Guest memory, mapped for DMA at IOVA 0, and a user buffer for the bitmap.
guest = check('mmap', c.mmap(GUEST))
bitmap = check('mmap', c.mmap(BITMAP_BYTES))
check('map', c.ioctl(container, VFIO_IOMMU_MAP_DMA, bytearray(struct.pack(
    '<IIQQQ', 32, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE, guest, 0, GUEST))))
check('start', c.ioctl(container, VFIO_IOMMU_DIRTY_PAGES, bytearray(struct.pack(
    '<II', 8, VFIO_IOMMU_DIRTY_PAGES_FLAG_START))))

# The device writes guest memory (as its vendor driver, through vfio_dma_rw).
check('dma write', c.dma_rw(dev, 0x5000, b'hello', True))
check('dma write', c.dma_rw(dev, 0x200000, b'\xab' * 8192, True))
assert c.read(guest + 0x5000, 5) == b'hello'

# Harvest: GET_BITMAP writes into process memory; one request copies it to the shared file.
check('get bitmap', c.ioctl(container, VFIO_IOMMU_DIRTY_PAGES, bytearray(struct.pack(
    '<IIQQQQQ', 48, VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, 0, GUEST, 4096, BITMAP_BYTES, bitmap))))
check('copy bitmap', c.shm_from_mem(bitmap, 0, BITMAP_BYTES))
bits = c.shm[:BITMAP_BYTES]
dirty = [i for i in range(PAGES) if bits[i >> 3] >> (i & 7) & 1]
print('dirty pages:', ' '.join(str(p) for p in dirty))
c.close_connection()
