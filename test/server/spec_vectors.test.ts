// The type1 acceptance vectors through the Python client: the vectors' bytes, and the in-process
// engine's.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine } from '../../src/index.js';
import { uapi } from '../../src/uapi.js';
import { dirtyBitmap, dirtyBitmapGet, dmaMap, hex } from '../helpers/uapi_structs.js';
import { testServer, type TestServer } from './helpers.js';
import { runInProcess, type Step } from './script.js';

const P = (n: number) => BigInt(n) * 0x1000n;
const MEM = 0x10_0000_0000n;
const x = (n: bigint) => `0x${n.toString(16)}`;
const RW = uapi.VFIO_DMA_MAP_FLAG_READ | uapi.VFIO_DMA_MAP_FLAG_WRITE;

/** Setup E or I with `pages` of guest memory at IOVA-equal offsets; the bitmap buffer after it. */
function setup(kind: 'emulated' | 'iommu', dev: string, pages: number): Step[] {
  return [
    ['open', '/dev/vfio/vfio'], ['group', `kind=${kind},devices=${dev}`], ['open_group'],
    ['ioctl', 4, uapi.VFIO_GROUP_SET_CONTAINER, { v: '3' }],
    ['ioctl', 3, uapi.VFIO_SET_IOMMU, { v: String(uapi.VFIO_TYPE1v2_IOMMU) }],
    ['ioctl', 4, uapi.VFIO_GROUP_GET_DEVICE_FD, { s: dev }], ['register', dev],
    ['mmap', pages * 4096], ['mmap', 4096],
  ];
}
const map = (iova: bigint, size: bigint): Step =>
  ['ioctl', 3, uapi.VFIO_IOMMU_MAP_DMA, { b: hex(dmaMap({ flags: RW, vaddr: MEM + iova, iova, size })) }];
const start: Step = ['ioctl', 3, uapi.VFIO_IOMMU_DIRTY_PAGES, { b: hex(dirtyBitmap({ flags: uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START })) }];
const get = (bm: bigint, size: bigint, n: number): Step[] => [
  ['ioctl', 3, uapi.VFIO_IOMMU_DIRTY_PAGES, { b: hex(dirtyBitmapGet({ iova: 0n, size, bitmap: { pgsize: 4096n, size: BigInt(n), data: bm } })) }],
  ['read', x(bm), n],
];

let srv: TestServer;
beforeAll(async () => {
  srv = await testServer();
});
afterAll(async () => srv.stop());

async function viaPython(steps: Step[]): Promise<unknown> {
  const file = join(srv.dir, `v${Math.random()}.json`);
  writeFileSync(file, JSON.stringify(steps));
  const py = join(new URL('.', import.meta.url).pathname, 'run_script.py');
  return JSON.parse((await promisify(execFile)('python3', [py, srv.path, file], { timeout: 20_000 })).stdout);
}

describe('type1 vectors through the Python client', () => {
  it('V36: a dma straddling the 64-page boundary, plus a second dma (setup E)', async () => {
    const bm = MEM + P(81);
    const steps: Step[] = [
      ...setup('emulated', 'v36', 80), map(0n, P(70)), map(P(70), P(10)), start,
      ...[63, 64, 69, 70, 79].map((p): Step => ['pin', 'v36', x(P(p)), 1, uapi.IOMMU_READ]),
      ...get(bm, P(80), 16),
    ];
    const got = (await viaPython(steps)) as string[][];
    expect(got.at(-1)).toEqual(['0', '00 00 00 00 00 00 00 80 61 80 00 00 00 00 00 00']);
    expect(got).toEqual(runInProcess(await createEngine(), steps));
  });

  it('V40: all-dirty in the non-pinned scope (setup I)', async () => {
    const bm = MEM + P(4);
    const steps: Step[] = [...setup('iommu', 'v40', 3), map(0n, P(3)), start, ...get(bm, P(3), 8), ...get(bm, P(3), 8)];
    const got = (await viaPython(steps)) as string[][];
    expect(got.at(-1)).toEqual(['0', '07 00 00 00 00 00 00 00']);
    expect(got.at(-3)).toEqual(['0', '07 00 00 00 00 00 00 00']);
    expect(got).toEqual(runInProcess(await createEngine(), steps));
  });
});
