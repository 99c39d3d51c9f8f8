// Pinned pages marked dirty again behind the read-and-clear (assembly/remark.ts): with thousands of
// pins spread over many buckets and several 64 KiB blocks of the stream, at bucket, block and word
// edges, a read returns every dirty and pinned page and leaves exactly the pinned ones, whatever
// the bit shift, the user bitmap's alignment (whole frames, or one page at a time through a
// scratch page) or the window read.
import { describe, expect, it } from 'vitest';
import { uapi } from '../src/index.js';
import { DirtyBitmap } from '../src/core/dirty_bitmap.js';
import { dirtyBitmapGet } from './helpers/uapi_structs.js';
import { emulatedRig } from './helpers/emulated_rig.js';
import { setupE } from './helpers/typed_setup.js';
import { rng as seeded } from './helpers/rng.js';

const PAGE = 4096n;
const N = (1 << 20) + 77; // pages of the mapping: 2 blocks of the stream, 129 buckets of 8,192 bits
// Pages at the edges: first and last page, buckets (8,192 bits), blocks (524,288 bits), words.
const EDGES = [0, 1, 63, 64, 8191, 8192, 8193, 16383, 16384, 524223, 524287, 524288, 524351, N - 65, N - 64, N - 2, N - 1];

function pagesOf(rng: (n: number) => number, n: number): number[] {
  const s = new Set<number>(EDGES);
  while (s.size < n + EDGES.length) s.add(rng(N));
  return [...s];
}

/** The set bits of `bytes`, ascending. */
function bitsOf(bytes: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i++) for (let k = 0; k < 8; k++) if ((bytes[i] >> k) & 1) out.push(i * 8 + k);
  return out;
}

const sorted = (xs: Iterable<number>) => [...new Set(xs)].sort((a, b) => a - b);

describe('pins marked again behind the read-and-clear', () => {
  it.each([
    [0, 0],
    [0, 3],
    [205, 0],
    [205, 5],
    [64, 0],
  ])('GET_BITMAP with the mapping %i pages into the range, user bitmap at skew %i', async (lead, skew) => {
    const { proc, fd, dev, map, dirty } = await emulatedRig();
    const iova = BigInt(lead) * PAGE;
    const size = BigInt(N) * PAGE;
    expect(map(iova, size)).toBe(0);
    expect(dirty(uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START)).toBe(0);
    const rng = seeded(lead * 31 + skew + 1);
    const pins = pagesOf(rng, 3000);
    for (const p of pins) expect(dev.pinPages(iova + BigInt(p) * PAGE, 1, 1)).toBe(1);
    const bytes = Math.ceil((lead + N) / 64) * 8;
    const get = () => {
      const base = proc.mmap(BigInt(bytes + 64));
      const data = base + BigInt(skew);
      const arg = dirtyBitmapGet({ iova: 0n, size: iova + size, bitmap: { pgsize: PAGE, size: BigInt(bytes), data } });
      expect(proc.ioctl(fd, uapi.VFIO_IOMMU_DIRTY_PAGES, arg)).toBe(0);
      return bitsOf(proc.read(data, bytes));
    };
    const pinned = sorted(pins.map((p) => p + lead));
    expect(get()).toEqual(pinned); // START marked every page dirty; the first read clears them
    for (let round = 0; round < 2; round++) {
      const dirty = pagesOf(rng, 3000);
      for (const p of dirty) expect(dev.dmaRw(iova + BigInt(p) * PAGE, new Uint8Array(1), true)).toBe(0);
      expect(get()).toEqual(sorted([...pins, ...dirty].map((p) => p + lead)));
      expect(get()).toEqual(pinned);
    }
  });

  it.each([0, 13])('a window read clears and marks again only its window (bit %i of the target)', async (bit0) => {
    const { c, dev } = await setupE();
    const size = BigInt(N) * PAGE;
    const vaddr = c.proc.mmap(size);
    c.map({ iova: 0n, vaddr, size });
    c.dirty.start();
    const rng = seeded(bit0 + 7);
    const pins = pagesOf(rng, 3000);
    for (const p of pins) expect(dev.pinPages(BigInt(p) * PAGE, 1, 1)).toBe(1);
    expect(bitsOf(c.dirty.read({ iova: 0n, size }))).toEqual(sorted(pins));
    const dirty = pagesOf(rng, 3000);
    for (const p of dirty) expect(dev.dmaRw(BigInt(p) * PAGE, new Uint8Array(1), true)).toBe(0);
    // A window from page 8,000 to page 600,000: the edges of buckets and of the first block inside.
    const lo = 8000;
    const hi = 600000;
    const target = DirtyBitmap.create(c.core, bit0 + hi - lo);
    try {
      c.dirty.collect(BigInt(lo) * PAGE, BigInt(hi - lo) * PAGE, target, bit0, { clear: true, partial: true });
      const inWin = (p: number) => p >= lo && p < hi;
      expect(bitsOf(target.toBytes())).toEqual(sorted([...pins, ...dirty].filter(inWin).map((p) => p - lo + bit0)));
    } finally {
      target.dispose();
    }
    const left = sorted([...pins, ...dirty.filter((p) => p < lo || p >= hi)]);
    expect(bitsOf(c.dirty.read({ iova: 0n, size }))).toEqual(left);
    expect(bitsOf(c.dirty.read({ iova: 0n, size }))).toEqual(sorted(pins));
  });
});
