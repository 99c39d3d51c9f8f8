// Scale: a 1 TiB mapping tracked and read whole through GET_BITMAP; the INT_MAX page limit of
// START at its exact edge (docs/conformance.md §7.2, §7.4).
import { describe, expect, it } from 'vitest';
import { errno, uapi } from '../src/index.js';
import { dirtyBitmapGet } from './helpers/uapi_structs.js';
import { emulatedRig } from './helpers/emulated_rig.js';

const PAGE = 4096n;
const TiB = 1n << 40n;

describe('scale', () => {
  it('tracks a 1 TiB mapping and reads it whole: exact bits, sparse host memory', async () => {
    const { engine, proc, fd, dev, map, dirty } = await emulatedRig();
    expect(map(0n, TiB)).toBe(0);
    expect(dirty(uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START)).toBe(0);
    const pages = [0n, 63n, 64n, 1234567n, TiB / PAGE - 1n];
    for (const p of pages) expect(dev.pinPages(p * PAGE, 1, uapi.IOMMU_READ)).toBe(1);
    // 8000 bytes from offset 100 of the middle page: that page and the next.
    expect(dev.dmaRw((TiB / PAGE / 2n) * PAGE + 100n, new Uint8Array(8000), true)).toBe(0);
    const bytes = TiB / PAGE / 8n; // 32 MiB
    const data = proc.mmap(bytes);
    const get = () =>
      proc.ioctl(fd, uapi.VFIO_IOMMU_DIRTY_PAGES, dirtyBitmapGet({ iova: 0n, size: TiB, bitmap: { pgsize: PAGE, size: bytes, data } }));
    expect(get()).toBe(0);
    const set = (bm: Uint8Array) => {
      const out: bigint[] = [];
      for (let i = 0; i < bm.length; i++) if (bm[i]) for (let b = 0; b < 8; b++) if (bm[i] & (1 << b)) out.push(BigInt(i * 8 + b));
      return out;
    };
    const half = TiB / PAGE / 2n;
    expect(set(proc.read(data, Number(bytes)))).toEqual([...pages.slice(0, 4), half, half + 1n, pages[4]].sort((a, b) => (a < b ? -1 : 1)));
    // The second read reports the pinned pages only (dmaRw pages are reported once).
    proc.write(data, new Uint8Array(Number(bytes)));
    expect(get()).toBe(0);
    expect(set(proc.read(data, Number(bytes)))).toEqual(pages);
    // Wasm memory: the 32 MiB dirty bitmap + 32 MiB of user bitmap frames, within 40 MiB each.
    expect(engine.memoryInUse()).toBeLessThan(2 * 40 * 2 ** 20);
  });

  it('START refuses a mapping of 2^31 pages (8 TiB) with EINVAL and starts at 2^31 - 1', async () => {
    const a = await emulatedRig();
    expect(a.map(0n, 8n * TiB + PAGE)).toBe(0);
    expect(a.dirty(uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START)).toBe(-errno.EINVAL);
    const b = await emulatedRig();
    expect(b.map(0n, 8n * TiB)).toBe(0);
    const used = b.engine.memoryInUse();
    expect(b.dirty(uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START)).toBe(-errno.EINVAL);
    expect(b.engine.memoryInUse()).toBe(used);
    expect(b.engine.inspect({ bitmaps: false }).containers[0].tracking).toBe(false);
    const c = await emulatedRig();
    expect(c.map(0n, 8n * TiB - PAGE)).toBe(0);
    expect(c.dirty(uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START)).toBe(0);
    expect(c.engine.inspect({ bitmaps: false }).containers[0].tracking).toBe(true);
  });
});
