// Fail-the-Nth-allocation sweep over the VFIO model (after iommufd's fail_nth selftest): for
// N = 1, 2, ... the Nth Wasm allocation of one call fails, until the call completes. Every failing
// call must return -ENOMEM and leave inspect() (mappings, pins, bitmaps, locked_vm, dma_avail),
// engine.memoryInUse() and user memory exactly as before; the call that finally completes must
// give the same result and state as on an engine that never failed.
import { describe, expect, it } from 'vitest';
import { createEngine, readReport, VfioError, type Engine, type Process } from '../src/index.js';
import { VfioContainer } from '../src/vfio/typed.js';
import type { AnyDevice, AnyProc } from './reference/ops.js';
import { dirtyArg, mapArg, unmapArg } from './reference/structs.js';
import * as U from './reference/uapi.js';

const P = (n: number | bigint): bigint => BigInt(n) * 0x1000n;
const RW = U.VFIO_DMA_MAP_FLAG_READ | U.VFIO_DMA_MAP_FLAG_WRITE;

interface Ctx {
  engine: Engine;
  proc: AnyProc;
  cfd: number;
  dev: AnyDevice;
  /** A group created but not yet attached (for the replay case). */
  spare: { id: number; fd: number };
  /** A zeroed user bitmap of 4 KiB. */
  bitmap: bigint;
  /** 256 pages of user memory for the MAP under test. */
  spareMem: bigint;
  /** The user memory a failing call must leave as it was: default the 4 KiB bitmap. */
  watch?: [bigint, number];
}

/** Setup E (or I): one container, SET_IOMMU(type1v2), the device open with a dma_unmap op. */
async function setup(kind: 'emulated' | 'iommu' = 'emulated'): Promise<Ctx> {
  const engine = await createEngine();
  const proc = engine.createProcess() as unknown as AnyProc;
  const g = engine.createGroup({ kind, devices: ['d0'] });
  const spare = engine.createGroup({ kind: 'iommu', devices: ['s0'] });
  const cfd = proc.open('/dev/vfio/vfio');
  const gfd = proc.open(`/dev/vfio/${g.id}`);
  must(proc.ioctl(gfd, U.VFIO_GROUP_SET_CONTAINER, cfd), 'SET_CONTAINER');
  must(proc.ioctl(cfd, U.VFIO_SET_IOMMU, U.VFIO_TYPE1v2_IOMMU), 'SET_IOMMU');
  const dev = g.devices[0] as unknown as AnyDevice;
  dev.registerDmaUnmap(() => undefined);
  must(proc.ioctl(gfd, U.VFIO_GROUP_GET_DEVICE_FD, 'd0'), 'GET_DEVICE_FD');
  const sfd = must(proc.open(`/dev/vfio/${spare.id}`), 'open spare');
  return { engine, proc, cfd, dev, spare: { id: spare.id, fd: sfd }, bitmap: proc.mmap(0x1000), spareMem: proc.mmap(P(256)) };
}

function must(r: number, what: string): number {
  if (r < 0) throw new Error(`${what}: ${r}`);
  return r;
}

function map(c: Ctx, iova: bigint, size: bigint): void {
  must(c.proc.ioctl(c.cfd, U.VFIO_IOMMU_MAP_DMA, mapArg(RW, c.proc.mmap(size), iova, size)), `MAP ${iova}`);
}

function start(c: Ctx): number {
  return c.proc.ioctl(c.cfd, U.VFIO_IOMMU_DIRTY_PAGES, dirtyArg(U.VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
}

/** Several dmas at word edges, some pages pinned and written. */
function populate(c: Ctx): void {
  let at = 3;
  for (const n of [1, 63, 64, 65, 129]) {
    map(c, P(at), P(n));
    at += n + 7;
  }
  must(c.dev.pinPages(P(3), 1, U.IOMMU_READ), 'pin');
  must(c.dev.pinPages(P(70), 4, U.IOMMU_READ), 'pin');
  must(c.dev.dmaRw(P(152) + 10n, new Uint8Array(5000).fill(7), true), 'rw');
}

/** Everything a failing call must leave unchanged. */
function snapshot(c: Ctx): string {
  const s = c.engine.inspect();
  const [at, len] = c.watch ?? [c.bitmap, 0x1000];
  const mem = Buffer.from(c.proc.read(at, len)).toString('hex');
  return JSON.stringify({ s, mem, inUse: c.engine.memoryInUse() }, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v));
}

/**
 * Sweeps N over `call` on one engine built by `build`; returns how many allocations failed before
 * the call completed. The completed call is compared with a run on a fresh engine.
 */
async function sweep(build: () => Promise<Ctx>, call: (c: Ctx) => number): Promise<number> {
  const clean = await build();
  const want = call(clean);
  const wantState = snapshot(clean);
  const c = await build();
  for (let n = 1; n < 10_000; n++) {
    const before = snapshot(c);
    c.engine.failNthAllocation(n);
    let ret: number;
    try {
      ret = call(c);
    } finally {
      c.engine.failNthAllocation(0);
    }
    if (ret === -U.ENOMEM) {
      expect(snapshot(c), `state after the call failing at allocation ${n}`).toBe(before);
      continue;
    }
    expect(ret, `result once allocation ${n} no longer fails`).toBe(want);
    expect(snapshot(c)).toBe(wantState);
    if (process.env.FAIL_NTH_VERBOSE) console.log(`completed after ${n - 1} failing allocations`);
    return n - 1;
  }
  throw new Error('the call never completed');
}

describe('fail the Nth allocation: every ENOMEM leaves the model unchanged', () => {
  it('MAP with tracking on (emulated container)', async () => {
    const failures = await sweep(
      async () => {
        const c = await setup();
        populate(c);
        must(start(c), 'START');
        return c;
      },
      (c) => c.proc.ioctl(c.cfd, U.VFIO_IOMMU_MAP_DMA, mapArg(RW, c.spareMem, P(0x1000), P(1))),
    );
    expect(failures).toBeGreaterThan(0);
  });

  it('MAP with tracking on (IOMMU container: pins and charges)', async () => {
    const failures = await sweep(
      async () => {
        const c = await setup('iommu');
        map(c, 0n, P(64));
        must(start(c), 'START');
        return c;
      },
      (c) => c.proc.ioctl(c.cfd, U.VFIO_IOMMU_MAP_DMA, mapArg(RW, c.spareMem, P(0x1000), P(129))),
    );
    expect(failures).toBeGreaterThan(0);
  });

  it('START with several dmas and pinned pages', async () => {
    const failures = await sweep(
      async () => {
        const c = await setup();
        populate(c);
        return c;
      },
      start,
    );
    expect(failures).toBeGreaterThan(1);
  });

  it('pinPages growing the pin table (tracking on)', async () => {
    const failures = await sweep(
      async () => {
        const c = await setup();
        map(c, 0n, P(1100));
        must(start(c), 'START');
        for (let p = 0; p < 120; p += 3) must(c.dev.pinPages(P(p), 2, U.IOMMU_READ), 'pin');
        return c;
      },
      (c) => c.dev.pinPages(P(200), 512, U.IOMMU_READ | U.IOMMU_WRITE),
    );
    expect(failures).toBeGreaterThan(0);
  });

  it('first IOMMU group attached to a container with dmas (replay)', async () => {
    await sweep(
      async () => {
        const c = await setup();
        populate(c);
        must(start(c), 'START');
        return c;
      },
      (c) => c.proc.ioctl(c.spare.fd, U.VFIO_GROUP_SET_CONTAINER, c.cfd),
    );
  });

  it('GET_BITMAP over several dmas from mid-word', async () => {
    await sweep(
      async () => {
        const c = await setup();
        must(start(c), 'START');
        populate(c);
        return c;
      },
      (c) =>
        c.proc.ioctl(c.cfd, U.VFIO_IOMMU_DIRTY_PAGES, dirtyArg(U.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, {
          iova: P(1), size: P(400), pgsize: 0x1000n, bsize: 64n, data: c.bitmap,
        })),
    );
  });

  it('unmap with bitmap over several dmas', async () => {
    await sweep(
      async () => {
        const c = await setup();
        must(start(c), 'START');
        populate(c);
        c.dev.unpinPages(P(3), 1);
        c.dev.unpinPages(P(70), 4);
        return c;
      },
      (c) =>
        c.proc.ioctl(c.cfd, U.VFIO_IOMMU_UNMAP_DMA, unmapArg(U.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, P(1), P(400), {
          pgsize: 0x1000n, size: 64n, data: c.bitmap,
        })),
    );
  });
});

// A harvest over dmas whose bits land in different pages of a never-written user bitmap needs
// frames for each page: every one is reserved (with the scratch page of an unaligned bitmap)
// before the first dma is read, so ENOMEM can never follow a dma that was already reset.
const FAR = 0x1000_0000n; // 256 MiB: one-page dmas this far apart write 8 KiB apart in the bitmap
const SPAN = 2n * FAR + P(1); // [0, SPAN) covers three such dmas: 131073 pages, 16392 bitmap bytes
const SPAN_BYTES = 16392;

/** Three one-page dmas 256 MiB apart, tracking on, each page written; a 6-page bitmap region. */
async function far(extra: (c: Ctx) => void = () => undefined): Promise<Ctx> {
  const c = await setup();
  must(start(c), 'START');
  for (let i = 0n; i < 3n; i++) {
    map(c, i * FAR, P(1));
    must(c.dev.dmaRw(i * FAR + 8n, new Uint8Array([1]), true), 'rw');
  }
  c.bitmap = c.proc.mmap(P(6)); // never written: no frame behind it yet
  c.watch = [c.bitmap, 0x6000];
  extra(c);
  return c;
}

function getFar(c: Ctx, offset: bigint): number {
  return c.proc.ioctl(c.cfd, U.VFIO_IOMMU_DIRTY_PAGES, dirtyArg(U.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, {
    iova: 0n, size: SPAN, pgsize: 0x1000n, bsize: BigInt(SPAN_BYTES), data: c.bitmap + offset,
  }));
}

function unmapFar(c: Ctx, offset: bigint): number {
  return c.proc.ioctl(c.cfd, U.VFIO_IOMMU_UNMAP_DMA, unmapArg(U.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, 0n, SPAN, {
    pgsize: 0x1000n, size: BigInt(SPAN_BYTES), data: c.bitmap + offset,
  }));
}

/** A typed-API call as an errno result: 0, or -errno of the VfioError it threw. */
function typed(fn: (tc: VfioContainer) => void): (c: Ctx) => number {
  return (c) => {
    try {
      fn(new VfioContainer(c.proc as unknown as Process, c.cfd));
      return 0;
    } catch (e) {
      if (e instanceof VfioError) return -e.errno;
      throw e;
    }
  };
}

describe('fail the Nth allocation: a harvest is all or nothing', () => {
  it('GET_BITMAP of three dmas into three pages of a never-written bitmap', async () => {
    const failures = await sweep(() => far(), (c) => getFar(c, 0n));
    expect(failures).toBeGreaterThan(2);
    const c = await far();
    expect(getFar(c, 0n)).toBe(0);
    const got = c.proc.read(c.bitmap, SPAN_BYTES);
    expect([0, 8192, 16384].map((o) => got[o])).toEqual([1, 1, 1]);
    expect(got.reduce((a, b) => a + b, 0)).toBe(3);
  });

  it('GET_BITMAP into an unaligned bitmap (the scratch page is reserved too)', async () => {
    const failures = await sweep(() => far(), (c) => getFar(c, 4n));
    expect(failures).toBeGreaterThan(2);
  });

  it('unmap with GET_DIRTY_BITMAP of three dmas into three pages', async () => {
    const failures = await sweep(() => far(), (c) => unmapFar(c, 0n));
    expect(failures).toBeGreaterThan(2);
  });

  it('unmap with GET_DIRTY_BITMAP, unaligned, after a driver unpins in its callback', async () => {
    const failures = await sweep(
      () => far((c) => {
        must(c.dev.pinPages(FAR, 1, U.IOMMU_READ), 'pin');
        c.dev.registerDmaUnmap((iova, size) => c.dev.unpinPages(iova, Number(size >> 12n)));
      }),
      (c) => unmapFar(c, 4n),
    );
    expect(failures).toBeGreaterThan(2);
  });

  it('the typed read, unmapWithBitmap and the export reader', async () => {
    await sweep(() => far(), typed((tc) => void tc.dirty.read({ iova: 0n, size: SPAN })));
    await sweep(() => far(), typed((tc) => void tc.unmapWithBitmap({ iova: 0n, size: SPAN })));
    await sweep(() => far(), typed((tc) => readReport(tc, { iova: 0n, size: SPAN }).dispose()));
  });
});

describe('inspect() between arming the switch and the call', () => {
  it('leaves the armed allocation for the call: START fails with ENOMEM and changes nothing', async () => {
    const c = await setup();
    populate(c); // pins: inspect() needs scratch memory to list them
    const x = c.engine.core.x;
    const before = snapshot(c);
    const calls = x.heap_alloc_calls();
    c.engine.failNthAllocation(1);
    const seen = c.engine.inspect(); // allocates, but not out of the armed countdown
    expect(seen.containers[0].dmas.flatMap((d) => d.pins)).toHaveLength(5); // P(3) and P(70)..P(73)
    expect(x.heap_alloc_calls()).toBeGreaterThan(calls);
    expect(x.heap_fail_pending()).toBe(1);
    expect(start(c)).toBe(-U.ENOMEM);
    expect(x.heap_fail_pending()).toBe(0);
    expect(snapshot(c)).toBe(before);
    expect(start(c)).toBe(0);
  });
});
