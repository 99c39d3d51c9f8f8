// 64 clients at once, each running its own seeded random sequence, get exactly what the same
// sequences give run alone on an in-process engine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine } from '../../src/index.js';
import { Client } from '../../src/server/client.js';
import { uapi } from '../../src/uapi.js';
import { dirtyBitmap, dirtyBitmapGet, dmaMap, dmaUnmap, hex } from '../helpers/uapi_structs.js';
import { rng } from '../helpers/rng.js';
import { testServer, type TestServer } from './helpers.js';
import { runInProcess, runWithClient, type Step } from './script.js';

const MEM = 0x10_0000_0000n;
const MIB = 0x10_0000n;
const BITMAP = MEM + 8n * MIB + 0x1000n;
const h = (x: bigint) => `0x${x.toString(16)}`;

/** A seeded random sequence for the client with device `dev`. */
export function randomSteps(seed: number, dev: string, n: number): Step[] {
  const r = rng(seed);
  const rw = uapi.VFIO_DMA_MAP_FLAG_READ | uapi.VFIO_DMA_MAP_FLAG_WRITE;
  const s: Step[] = [
    ['open', '/dev/vfio/vfio'], ['group', `kind=emulated,devices=${dev}`], ['open_group'],
    ['ioctl', 4, uapi.VFIO_GROUP_SET_CONTAINER, { v: '3' }],
    ['ioctl', 3, uapi.VFIO_SET_IOMMU, { v: String(uapi.VFIO_TYPE1v2_IOMMU) }],
    ['ioctl', 4, uapi.VFIO_GROUP_GET_DEVICE_FD, { s: dev }], ['register', dev],
    ['mmap', 8 * 0x10_0000], ['mmap', 4096],
  ];
  const bm = { pgsize: 4096n, size: 32n, data: BITMAP };
  for (let i = 0; i < n; i++) {
    const k = BigInt(r(8));
    const page = BigInt(r(2048)) * 0x1000n;
    switch (r(10)) {
      case 0: s.push(['ioctl', 3, uapi.VFIO_IOMMU_MAP_DMA, { b: hex(dmaMap({ flags: rw, vaddr: MEM + k * MIB, iova: k * MIB, size: MIB })) }]); break;
      case 1: s.push(['ioctl', 3, uapi.VFIO_IOMMU_UNMAP_DMA, { b: hex(r(2)
        ? dmaUnmap({ flags: uapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, iova: k * MIB, size: MIB, bitmap: bm })
        : dmaUnmap({ flags: 0, iova: k * MIB, size: MIB })) }]); break;
      case 2: s.push(['ioctl', 3, uapi.VFIO_IOMMU_DIRTY_PAGES, { b: hex(dirtyBitmap({ flags: r(2) ? 1 : 2 })) }]); break;
      case 3: s.push(['pin', dev, h(page), 1 + r(4), 3]); break;
      case 4: s.push(['unpin', dev, h(page), 1 + r(4)]); break;
      case 5: s.push(['dma_write', dev, h(page + BigInt(r(4000))), hex(Uint8Array.from({ length: 16 }, () => r(256)))]); break;
      case 6: s.push(['dma_read', dev, h(page), 16]); break;
      case 7: s.push(['ioctl', 3, uapi.VFIO_IOMMU_DIRTY_PAGES, { b: hex(dirtyBitmapGet({ iova: k * MIB, size: MIB, bitmap: bm })) }]); break;
      case 8: s.push(['read', h(BITMAP), 32]); break;
      default: s.push(['write', h(MEM + page), hex(Uint8Array.of(r(256), r(256)))]); break;
    }
  }
  return s;
}

let srv: TestServer;
beforeAll(async () => {
  srv = await testServer();
});
afterAll(async () => srv.stop());

describe('load', () => {
  it('64 concurrent clients get the results of their sequences run alone', async () => {
    const N = 64;
    const seqs = Array.from({ length: N }, (_, i) => randomSteps(1000 + i, `load${i}`, 150));
    const alone = [];
    for (const steps of seqs) alone.push(runInProcess(await createEngine(), steps));
    const got = await Promise.all(seqs.map(async (steps) => {
      const c = await Client.connect(srv.path);
      const out = await runWithClient(c, steps);
      await c.end();
      return out;
    }));
    for (let i = 0; i < N; i++) expect(got[i], `client ${i}`).toEqual(alone[i]);
    // the sequences did real work: successes, failures and callbacks among them
    const flat = alone.flat();
    expect(flat.filter((x) => x[0] === 'event').length).toBeGreaterThan(10);
    expect(flat.filter((x) => x[0] === '-22' || x[0] === '-17').length).toBeGreaterThan(10);
  }, 60_000);
});
