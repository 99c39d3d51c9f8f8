// The VFIO model through the ioctl surface, as migration tooling drives it. Baselines measured in
// the same run: Buffer.copy of the same bytes, and the plain-TS reference model of the
// type1 rules (test/reference) running the same calls.
import { createEngine, uapi } from '../src/index.js';
import { createReferenceEngine } from '../test/reference/engine.js';
import { dirtyBitmap, dirtyBitmapGet, dmaMap, dmaUnmap } from '../test/helpers/uapi_structs.js';
import type { BenchGroup } from './harness.js';
import { getMatrixGroups } from './get_matrix.js';
import { emulatedRig, must, type AnyEngine, type Rig } from './rig.js';

const PAGE = 4096n;
const RW = uapi.VFIO_DMA_MAP_FLAG_READ | uapi.VFIO_DMA_MAP_FLAG_WRITE;


function map(r: Rig, iova: bigint, vaddr: bigint, size: bigint): void {
  must(r.proc.ioctl(r.fd, uapi.VFIO_IOMMU_MAP_DMA, dmaMap({ flags: RW, vaddr, iova, size })), 'MAP_DMA');
}

function start(r: Rig): void {
  const b = dirtyBitmap({ flags: uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START });
  must(r.proc.ioctl(r.fd, uapi.VFIO_IOMMU_DIRTY_PAGES, b), 'START');
}

/** A GET_BITMAP call over [iova, iova+size) into a user bitmap at `data`. */
function getter(r: Rig, iova: bigint, size: bigint, data: bigint): () => void {
  const pages = size / PAGE;
  const bytes = ((pages + 63n) / 64n) * 8n;
  const arg = dirtyBitmapGet({ iova, size, bitmap: { pgsize: PAGE, size: bytes, data } });
  return () => {
    if (r.proc.ioctl(r.fd, uapi.VFIO_IOMMU_DIRTY_PAGES, arg) !== 0) throw new Error('GET_BITMAP failed');
  };
}

async function getBitmapHuge(quick: boolean): Promise<BenchGroup> {
  const size = quick ? 1n << 30n : 1n << 40n; // 1 TiB: a 32 MiB bitmap
  const bytes = Number(size / PAGE / 8n);
  const pins = quick ? 1024 : 65536;
  const src = Buffer.alloc(bytes, 0x5a);
  const dst = Buffer.alloc(bytes);
  let get = (): void => {};
  let growth = '';
  return {
    name: `vfio: GET_BITMAP over one ${quick ? '1 GiB' : '1 TiB'} mapping, ${pins} pinned pages`,
    baseline: 'Buffer.copy (memcpy bound)',
    target: '<= 2x memcpy of the bitmap bytes; tracking 1 TiB grows the engine by <= 40 MiB',
    async setup() {
      const engine = await createEngine();
      const r = emulatedRig(engine);
      const guest = r.proc.mmap(size);
      map(r, 0n, guest, size);
      // 65,536 pinned pages spread over the mapping, pinned 512 at a time.
      const stride = size / PAGE / BigInt(pins);
      for (let i = 0; i < pins; i += 512) {
        for (let k = 0; k < 512; k++) must(r.dev.pinPages(BigInt(i + k) * stride * PAGE, 1, uapi.IOMMU_READ), 'pin');
      }
      // The Wasm heap's own figures: resident-set deltas swing by tens of MiB on this machine
      // (the kernel reclaims idle pages under it), so they are no measure of the engine.
      const MiB = (n: number) => (n / 2 ** 20).toFixed(2);
      const heap0 = engine.memoryInUse();
      start(r);
      const heap1 = engine.memoryInUse();
      const data = r.proc.mmap(BigInt(bytes));
      get = getter(r, 0n, size, data);
      get();
      const heap2 = engine.memoryInUse();
      growth = `Wasm heap growth from START: ${MiB(heap1 - heap0)} MiB (the dma bitmap: ${MiB(bytes)} MiB); the first GET_BITMAP adds ${MiB(heap2 - heap1)} MiB (the user bitmap's ${MiB(bytes)} MiB of process memory, and scratch)`;
    },
    cases: [
      { name: 'Buffer.copy (memcpy bound)', fn: () => void src.copy(dst), units: bytes, unit: 'bytes' },
      { name: 'GET_BITMAP ioctl', fn: () => get(), units: bytes, unit: 'bytes' },
    ],
    notes: () => [growth],
    check: (res) => res.cases[1].ratio <= 2,
  };
}

async function getBitmapSmall(): Promise<BenchGroup> {
  let wasm = (): void => {};
  let ref = (): void => {};
  const rig = async (engine: AnyEngine) => {
    const r = emulatedRig(engine);
    const guest = r.proc.mmap(64n * PAGE);
    map(r, 0x10_0000n, guest, 64n * PAGE);
    start(r);
    must(r.dev.pinPages(0x10_0000n, 4, uapi.IOMMU_READ), 'pin');
    return getter(r, 0x10_0000n, 64n * PAGE, r.proc.mmap(8n));
  };
  return {
    name: 'vfio: GET_BITMAP of a 64-page mapping, repeated',
    baseline: 'reference model (plain TS)',
    target: '>= 1,000,000 calls/s',
    async setup() {
      wasm = await rig(await createEngine());
      ref = await rig((await createReferenceEngine()) as unknown as AnyEngine);
    },
    cases: [
      { name: 'reference model (plain TS)', fn: () => ref(), units: 1, unit: 'calls' },
      { name: 'engine', fn: () => wasm(), units: 1, unit: 'calls' },
    ],
    check: (res) => (res.cases[1].rate ?? 0) >= 1e6,
  };
}

async function pinning(): Promise<BenchGroup> {
  const pages = 512 * 64; // a 128 MiB mapping pinned and unpinned 512 pages per call
  const make = async (engine: AnyEngine) => {
    const r = emulatedRig(engine);
    map(r, 0n, r.proc.mmap(BigInt(pages) * PAGE), BigInt(pages) * PAGE);
    start(r);
    return {
      pin: () => {
        for (let i = 0; i < pages; i += 512) r.dev.pinPages(BigInt(i) * PAGE, 512, uapi.IOMMU_READ);
      },
      unpin: () => {
        for (let i = 0; i < pages; i += 512) r.dev.unpinPages(BigInt(i) * PAGE, 512);
      },
    };
  };
  let w = { pin: () => {}, unpin: () => {} };
  let f = { pin: () => {}, unpin: () => {} };
  return {
    name: 'vfio: pinPages then unpinPages in 512-page calls',
    baseline: 'reference model (plain TS)',
    target: '>= 20 M pages/s each way',
    async setup() {
      w = await make(await createEngine());
      f = await make((await createReferenceEngine()) as unknown as AnyEngine);
    },
    cases: [
      { name: 'reference model (plain TS)', fn: () => (f.pin(), f.unpin()), units: 2 * pages, unit: 'pages' },
      { name: 'engine pin+unpin', fn: () => (w.pin(), w.unpin()), units: 2 * pages, unit: 'pages' },
    ],
    check: (res) => (res.cases[1].rate ?? 0) >= 20e6,
  };
}

async function mapUnmap(quick: boolean): Promise<BenchGroup> {
  const n = quick ? 4096 : 65535;
  let cycle = (): void => {};
  let first = '';
  return {
    name: `vfio: MAP_DMA then UNMAP_DMA of ${n} one-page mappings`,
    baseline: 'engine map+unmap',
    target: '>= 500,000 of each per second; flat time per call as the tree fills',
    async setup() {
      const engine = await createEngine();
      const r = emulatedRig(engine);
      const mem = r.proc.mmap(BigInt(n) * PAGE);
      const maps = Array.from({ length: n }, (_, i) => dmaMap({ flags: RW, vaddr: mem + BigInt(i) * PAGE, iova: BigInt(i) * 2n * PAGE, size: PAGE }));
      const unmaps = Array.from({ length: n }, (_, i) => dmaUnmap({ flags: 0, iova: BigInt(i) * 2n * PAGE, size: PAGE }));
      const run = (lo: number, hi: number, what: Uint8Array[], req: number) => {
        for (let i = lo; i < hi; i++) if (r.proc.ioctl(r.fd, req, what[i]) !== 0) throw new Error(`ioctl ${req} ${i}`);
      };
      cycle = () => {
        run(0, n, maps, uapi.VFIO_IOMMU_MAP_DMA);
        run(0, n, unmaps, uapi.VFIO_IOMMU_UNMAP_DMA);
      };
      cycle();
      // Time per call for the first and the last thousand of a fill, then of the emptying.
      const t = (lo: number, hi: number, what: Uint8Array[], req: number) => {
        const t0 = process.hrtime.bigint();
        run(lo, hi, what, req);
        return Number(process.hrtime.bigint() - t0) / (hi - lo);
      };
      const k = Math.min(1000, n >> 2);
      const m0 = t(0, k, maps, uapi.VFIO_IOMMU_MAP_DMA);
      run(k, n - k, maps, uapi.VFIO_IOMMU_MAP_DMA);
      const m1 = t(n - k, n, maps, uapi.VFIO_IOMMU_MAP_DMA);
      const u0 = t(0, k, unmaps, uapi.VFIO_IOMMU_UNMAP_DMA);
      run(k, n - k, unmaps, uapi.VFIO_IOMMU_UNMAP_DMA);
      const u1 = t(n - k, n, unmaps, uapi.VFIO_IOMMU_UNMAP_DMA);
      first = `ns per call, first/last ${k}: MAP ${m0.toFixed(0)}/${m1.toFixed(0)}, UNMAP ${u0.toFixed(0)}/${u1.toFixed(0)}`;
    },
    cases: [{ name: 'engine map+unmap', fn: () => cycle(), units: 2 * n, unit: 'calls' }],
    notes: () => [first],
    check: (res) => (res.cases[0].rate ?? 0) >= 5e5, // calls/s of maps and unmaps alike
  };
}

export async function groups(quick: boolean): Promise<BenchGroup[]> {
  return [await getBitmapHuge(quick), ...(await getMatrixGroups(quick)), await getBitmapSmall(), await pinning(), await mapUnmap(quick)];
}
