// Fail-the-Nth sweeps over every IOASID, PASID and accelerator call that allocates in the core: for
// n = 1, 2, ... the nth allocation fails; the call must then fail with nothing changed and nothing
// leaked, until n passes the call's last allocation and it succeeds.
import { describe, expect, it } from 'vitest';
import { createEngine, errno, uapi, type Engine } from '../../src/index.js';
import { buf, vfioSetup } from './setup_p.js';
import { b, hex, setupA } from '../accel/setup.js';

const INV = uapi.INVALID_IOASID;

/** Everything observable of the allocator and the engine's memory. */
function snap(e: Engine) {
  const io = e.ioasid;
  return {
    avail: io.getAvailable(), heap: e.memoryInUse(),
    sets: [...Array(6).keys()].map((s) => io.setInfo(s)),
    ids: [0, 1, 2, 3, 4096, 5_000_000, 0x7fff_fff0].map((i) => io.idInfo(i)),
  };
}

/**
 * Sweeps n over `act` until it succeeds: each failure must be `failed(r)`, leave `extra()` and the
 * snapshot unchanged. Returns how many allocations the call made.
 */
function sweep(e: Engine, act: () => unknown, failed: (r: unknown) => boolean, extra: () => unknown = () => 0): number {
  for (let n = 1; n < 200; n++) {
    const before = [snap(e), extra()];
    e.failNthAllocation(n);
    const r = act();
    const reached = e.core.x.heap_fail_pending() === 0;
    e.failNthAllocation(0);
    if (!reached) {
      expect(failed(r), `n=${n}: succeeded`).toBe(false);
      return n - 1;
    }
    expect(failed(r), `n=${n}: ${String(r)}`).toBe(true);
    expect([snap(e), extra()], `n=${n}`).toEqual(before);
  }
  throw new Error('the call never succeeded');
}

const isErr = (code: number) => (r: unknown) => r === -code;

describe('fail-the-Nth sweeps', () => {
  it('allocSet', async () => {
    const e = await createEngine();
    expect(sweep(e, () => e.ioasid.allocSet('t', 5), isErr(errno.ENOMEM))).toBeGreaterThan(0);
    expect(e.ioasid.setInfo(1)!.quota).toBe(5);
  });

  it.each([1, 4096, 5_000_000, 0x7fff_fff0])('alloc of a first ID in a new leaf and table (min %i)', async (min) => {
    const e = await createEngine();
    expect(e.ioasid.allocSet('t', 5)).toBe(1);
    expect(sweep(e, () => e.ioasid.alloc(1, min, min + 10), (r) => r === INV)).toBeGreaterThan(0);
    expect(e.ioasid.idInfo(min)!.sid).toBe(1);
  });

  it('freeSet, free, put and notify allocate nothing', async () => {
    const e = await createEngine();
    const io = e.ioasid;
    expect(io.allocSet('t', 5)).toBe(1);
    for (let i = 0; i < 3; i++) io.alloc(1, 0x10000 * i, 0x10000 * i);
    io.addNotifier(() => 1);
    e.failNthAllocation(1);
    expect(io.notify(0, 3)).toBe(0);
    expect(io.get(0)).toBe(0);
    expect(io.free(0)).toBe(0);
    expect(io.put(0)).toBe(1);
    expect(io.freeSet(1, true)).toBe(0);
    expect(e.core.x.heap_fail_pending()).toBe(1);
    e.failNthAllocation(0);
    expect(io.setInfo(1)).toBe(null);
  });

  it('SET_IOMMU(3) with a syswidePasid group (driver, attach and VM set)', async () => {
    const e = await createEngine();
    const P = e.createProcess();
    const G = e.createGroup({ kind: 'iommu', syswidePasid: true });
    const c = P.open('/dev/vfio/vfio');
    const g = P.open(`/dev/vfio/${G.id}`);
    expect(P.ioctl(g, uapi.VFIO_GROUP_SET_CONTAINER, c)).toBe(0);
    sweep(e, () => P.ioctl(c, uapi.VFIO_SET_IOMMU, 3), isErr(errno.ENOMEM), () => G.attached);
    expect(e.ioasid.setInfo(1)!.owner).toBe('vfio');
  });

  it('VFIO PASID ALLOC answers ENOMEM with nothing changed', async () => {
    const e = await createEngine();
    const P = e.createProcess();
    const { c } = vfioSetup(P, e.createGroup({ kind: 'iommu', syswidePasid: true }));
    const req = buf(16, 1, 0x7fff_fff0, 0x7fff_ffff);
    expect(sweep(e, () => P.ioctl(c, uapi.VFIO_IOMMU_PASID_REQUEST, req), isErr(errno.ENOMEM))).toBeGreaterThan(0);
    expect(e.ioasid.idInfo(0x7fff_fff0)!.owner).toBe('vfio');
  });

  it('open of an SVA device and bindDevice', async () => {
    const { engine, D1, D2, P1, P2 } = await setupA();
    const pas = () => [engine.sva.pasidOf(P1), engine.sva.pasidOf(P2), D1.queues().length];
    sweep(engine, () => P1.open('/dev/zip-0'), isErr(errno.ENOMEM), pas);
    expect(pas()).toEqual([1, INV, 1]);
    sweep(engine, () => engine.sva.bindDevice(D2, P2), isErr(errno.ENOMEM), pas);
    expect(pas()).toEqual([1, 2, 1]);
  });

  it('a write whose soft-dirty mark cannot be recorded over-reports: every page reads dirty', async () => {
    const { engine, D1, P1, V1 } = await setupA();
    P1.open('/dev/zip-0');
    P1.clearSoftDirty();
    P1.write(V1, b(1)); // frames and record leaves exist for page 0 now
    P1.clearSoftDirty();
    engine.failNthAllocation(2); // 1: the copy's scratch block; 2: the record's table
    expect(D1.dmaWrite(1, V1, b(2))).toBe(0); // the frame exists; the record's table is gone
    expect(engine.core.x.heap_fail_pending()).toBe(0);
    engine.failNthAllocation(0);
    expect(hex(P1.softDirty(V1, 0x4000))).toBe('0f');
    P1.clearSoftDirty();
    expect(hex(P1.softDirty(V1, 0x4000))).toBe('00');
  });

  it('createProcess: a failed allocation throws and leaks nothing', async () => {
    const e = await createEngine();
    for (let n = 1; n <= 2; n++) {
      const heap = e.memoryInUse();
      e.failNthAllocation(n);
      expect(() => e.createProcess()).toThrow();
      e.failNthAllocation(0);
      expect(e.memoryInUse()).toBe(heap);
    }
    expect(e.createProcess().exited).toBe(false);
  });

  it('dmaWrite that cannot back a page fails with nothing written and nothing marked', async () => {
    const { engine, D1, P1, V1 } = await setupA();
    P1.open('/dev/zip-0');
    P1.clearSoftDirty();
    engine.failNthAllocation(1);
    expect(D1.dmaWrite(1, V1 + 0x2000n, b(3))).toBe(-errno.ENOMEM);
    engine.failNthAllocation(0);
    expect(hex(P1.softDirty(V1, 0x4000))).toBe('00');
    expect(P1.read(V1 + 0x2000n, 1)).toEqual(b(0));
  });
});
