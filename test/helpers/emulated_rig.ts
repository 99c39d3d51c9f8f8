// One process with a type1v2 container holding one emulated group, its device fd open and a
// no-op DMA-unmap callback registered: the rig of tests that drive GET_BITMAP through ioctls.
import { expect } from 'vitest';
import { createEngine, uapi } from '../../src/index.js';
import { dirtyBitmap, dmaMap } from './uapi_structs.js';

export async function emulatedRig() {
  const engine = await createEngine();
  const proc = engine.createProcess();
  const g = engine.createGroup({ kind: 'emulated' });
  const fd = proc.open('/dev/vfio/vfio');
  const gfd = proc.open(`/dev/vfio/${g.id}`);
  expect(proc.ioctl(gfd, uapi.VFIO_GROUP_SET_CONTAINER, fd)).toBe(0);
  expect(proc.ioctl(fd, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU)).toBe(0);
  expect(proc.ioctl(gfd, uapi.VFIO_GROUP_GET_DEVICE_FD, g.devices[0].name)).toBeGreaterThan(0);
  const dev = g.devices[0];
  dev.registerDmaUnmap(() => {});
  /** MAP_DMA of fresh anonymous memory, read and write: 0 or -errno. */
  const map = (iova: bigint, size: bigint) =>
    proc.ioctl(fd, uapi.VFIO_IOMMU_MAP_DMA, dmaMap({ flags: 3, vaddr: proc.mmap(size), iova, size }));
  /** VFIO_IOMMU_DIRTY_PAGES with `flags` (START or STOP): 0 or -errno. */
  const dirty = (flags: number) => proc.ioctl(fd, uapi.VFIO_IOMMU_DIRTY_PAGES, dirtyBitmap({ flags }));
  return { engine, proc, fd, dev, map, dirty };
}
