// The report kernel writing into user memory (assembly/report.ts): runs of contiguous frames,
// a user bitmap at an unaligned address, words crossing frames, all-dirty, pinned re-marking.
import { describe, expect, it } from 'vitest';
import { createEngine, uapi } from '../src/index.js';
import { dirtyBitmap, dirtyBitmapGet, dmaMap } from './helpers/uapi_structs.js';

const PAGE = 4096n;

async function rig(kind: 'emulated' | 'iommu') {
  const engine = await createEngine();
  const proc = engine.createProcess();
  const g = engine.createGroup({ kind });
  const fd = proc.open('/dev/vfio/vfio');
  const gfd = proc.open(`/dev/vfio/${g.id}`);
  expect(proc.ioctl(gfd, uapi.VFIO_GROUP_SET_CONTAINER, fd)).toBe(0);
  expect(proc.ioctl(fd, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU)).toBe(0);
  expect(proc.ioctl(gfd, uapi.VFIO_GROUP_GET_DEVICE_FD, g.devices[0].name)).toBeGreaterThan(0);
  g.devices[0].registerDmaUnmap(() => {});
  return { proc, fd, dev: g.devices[0] };
}

/** The bitmap bytes a GET over [iova, iova+size) leaves in a user buffer at data + skew. */
function get(r: Awaited<ReturnType<typeof rig>>, iova: bigint, size: bigint, skew: number, fill = 0) {
  const bytes = Number(((size / PAGE + 63n) / 64n) * 8n);
  const base = r.proc.mmap(BigInt(bytes + 64));
  const data = base + BigInt(skew);
  r.proc.write(base, new Uint8Array(bytes + 64).fill(fill));
  const ret = r.proc.ioctl(r.fd, uapi.VFIO_IOMMU_DIRTY_PAGES, dirtyBitmapGet({ iova, size, bitmap: { pgsize: PAGE, size: BigInt(bytes), data } }));
  expect(ret).toBe(0);
  return { bytes: r.proc.read(data, bytes), before: r.proc.read(base, skew), after: r.proc.read(data + BigInt(bytes), 64 - skew) };
}

describe('report into user memory', () => {
  // 5 frames' worth of bitmap words (over 20 KiB), a dma starting mid-word: the stream is shifted
  // and crosses frame boundaries; the same state read at every skew gives the same bytes.
  const pages = 5n * 4096n * 8n + 77n;
  it.each([0, 1, 3, 5, 7, 8, 13])('gives identical bytes with the user bitmap at skew %i', async (skew) => {
    const r = await rig('emulated');
    const iova = 3n * PAGE; // s = 3
    expect(r.proc.ioctl(r.fd, uapi.VFIO_IOMMU_MAP_DMA, dmaMap({ flags: 3, vaddr: r.proc.mmap(pages * PAGE), iova, size: pages * PAGE }))).toBe(0);
    expect(r.proc.ioctl(r.fd, uapi.VFIO_IOMMU_DIRTY_PAGES, dirtyBitmap({ flags: uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START }))).toBe(0);
    const dirty = [0n, 60n, 61n, 4096n * 8n - 4n, 4096n * 8n + 1n, pages - 1n];
    for (const p of dirty) expect(r.dev.dmaRw(iova + p * PAGE, new Uint8Array(1), true)).toBe(0);
    expect(r.dev.pinPages(iova + 1000n * PAGE, 1, 1)).toBe(1);
    const { bytes, before, after } = get(r, 0n, iova + pages * PAGE, skew, 0xa5);
    const want = new Set([...dirty, 1000n].map((p) => Number(p + 3n)));
    for (let i = 0; i < bytes.length * 8; i++) {
      const bit = (bytes[i >> 3] >> (i & 7)) & 1;
      // the dma starts at bit 3 of word 0, so that whole word is ORed with the caller's 0xa5
      // bytes (docs/conformance.md §7.5); every later word is written whole
      const expected = (i < 64 ? (0xa5 >> (i & 7)) & 1 : 0) | (want.has(i) ? 1 : 0);
      if (bit !== expected) throw new Error(`bit ${i}: ${bit}, expected ${expected}`);
    }
    expect([...before]).toEqual(Array(skew).fill(0xa5));
    expect([...after]).toEqual(Array(64 - skew).fill(0xa5));
    // The next read: only the pinned page, in a zeroed buffer.
    const again = get(r, 0n, iova + pages * PAGE, skew).bytes;
    const set = [...again].flatMap((b, i) => [0, 1, 2, 3, 4, 5, 6, 7].filter((k) => (b >> k) & 1).map((k) => i * 8 + k));
    expect(set).toEqual([1003]);
  });

  it('reports every page in non-pinned scope, and nothing stays behind', async () => {
    const r = await rig('iommu');
    const size = 4096n * 8n * 2n + 5n; // pages: two frames of bitmap and a tail
    expect(r.proc.ioctl(r.fd, uapi.VFIO_IOMMU_MAP_DMA, dmaMap({ flags: 3, vaddr: r.proc.mmap(size * PAGE), iova: 64n * PAGE, size: size * PAGE }))).toBe(0);
    expect(r.proc.ioctl(r.fd, uapi.VFIO_IOMMU_DIRTY_PAGES, dirtyBitmap({ flags: uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START }))).toBe(0);
    for (let round = 0; round < 2; round++) {
      const { bytes } = get(r, 0n, (64n + size) * PAGE, 1);
      const ones = [...bytes].reduce((n, b) => n + [...Array(8).keys()].filter((k) => (b >> k) & 1).length, 0);
      expect(ones).toBe(Number(size));
      expect([...bytes.subarray(0, 8)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    }
  });
});
