// A client in the state a migration tool reaches: container and group set up, 1 MiB mapped at
// IOVA 0, dirty tracking started, its mdev device registered and holding pins.
import { Client, type DmaUnmapHandler } from '../../src/server/client.js';
import { uapi } from '../../src/uapi.js';
import { dirtyBitmap, dmaMap, dmaUnmap } from '../helpers/uapi_structs.js';

export const RW = uapi.VFIO_DMA_MAP_FLAG_READ | uapi.VFIO_DMA_MAP_FLAG_WRITE;

/** Sets up `c` on group `gid` with device `dev`; fds 3 container, 4 group, 5 device. */
export async function trackedAndPinned(c: Client, gid: number, dev: string, handler: DmaUnmapHandler): Promise<bigint> {
  const ok = (x: number | bigint, want: number | bigint = 0) => {
    if (BigInt(x) !== BigInt(want)) throw new Error(`setup step gave ${x}, wanted ${want}`);
  };
  ok(await c.open('/dev/vfio/vfio'), 3);
  ok(await c.open(`/dev/vfio/${gid}`), 4);
  ok(await c.ioctl(4, uapi.VFIO_GROUP_SET_CONTAINER, 3));
  ok(await c.ioctl(3, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU));
  ok(await c.ioctl(4, uapi.VFIO_GROUP_GET_DEVICE_FD, dev), 5);
  ok(await c.registerDmaUnmap(dev, handler));
  const mem = await c.mmap(1 << 20);
  ok(await c.ioctl(3, uapi.VFIO_IOMMU_MAP_DMA, dmaMap({ flags: RW, vaddr: mem, iova: 0n, size: 1n << 20n })));
  ok(await c.ioctl(3, uapi.VFIO_IOMMU_DIRTY_PAGES, dirtyBitmap({ flags: uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START })));
  ok(await c.pinPages(dev, 0x3000n, 4, uapi.IOMMU_READ | uapi.IOMMU_WRITE), 4);
  return mem;
}

/** UNMAP_DMA of the whole 1 MiB (which notifies the pinning driver). */
export function unmapAll(c: Client): Promise<number> {
  return c.ioctl(3, uapi.VFIO_IOMMU_UNMAP_DMA, dmaUnmap({ flags: 0, iova: 0n, size: 1n << 20n }));
}

/** Polls `f` until it returns true (bounded: 200 tries, 10 ms apart). */
export async function eventually(f: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await f()) return;
    await new Promise((res) => setTimeout(res, 10));
  }
  throw new Error('condition not reached');
}
