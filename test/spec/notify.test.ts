// docs/conformance.md §5.5, §5.6, §10.2 and §14: unmapping a dma that holds external pins: the
// vendor driver's dma_unmap op, the restart, the engine's EBUSY deviation; V26.
import { describe, expect, it } from 'vitest';
import { errno } from '../../src/errors.js';
import { uapi } from '../../src/uapi.js';
import { must, P, setup } from '../helpers/setups.js';

describe('V26 unmap of a pinned dma', () => {
  it('V26 unmap of a pinned dma: the driver is called once with the whole dma and unpins twice', async () => {
    const s = await setup('E');
    must(s.MAP(0x10000n, 0x4000n), 'MAP');
    expect(s.PIN('M', 0x11000n, 1)).toBe(1);
    expect(s.PIN('M', 0x11000n, 1)).toBe(1);
    const unpins: [bigint, number][] = [];
    const dev = s.dev.M;
    s.onDmaUnmap = (d, iova, size) => {
      s.unmapCalls.push({ dev: d.name, iova, size });
      for (let i = 0; i < 2; i++) {
        unpins.push([0x11000n, 1]);
        dev.unpinPages(0x11000n, 1);
      }
    };
    const u = s.UNMAP(0x10000n, 0x4000n);
    expect(s.unmapCalls).toEqual([{ dev: dev.name, iova: 0x10000n, size: 0x4000n }]);
    expect(unpins).toEqual([[0x11000n, 1], [0x11000n, 1]]);
    expect([u.ret, u.size]).toEqual([0, 0x4000n]);
    expect(s.dmas()).toEqual([]);
    expect(s.proc.lockedVm).toBe(0n);
  });

  it('V26 engine-specific deviation (docs/conformance.md §10.2): a driver that never unpins gets EBUSY after one round', async () => {
    const s = await setup('E');
    must(s.MAP(0x10000n, P(1)), 'A');
    must(s.MAP(0x20000n, P(1)), 'B');
    must(s.PIN('M', 0x20000n, 1), 'PIN');
    s.driverUnpins = false;
    const u = s.UNMAP(0x10000n, 0x20000n);
    expect(u.ret).toBe(-errno.EBUSY);
    expect(u.size).toBe(0x20000n); // nothing copied back
    expect(s.unmapCalls).toEqual([{ dev: s.dev.M.name, iova: 0x20000n, size: 0x1000n }]);
    expect(s.dmas()).toEqual([[0x20000n, 0x1000n]]); // A, removed earlier in the call, stays removed
    expect(s.refs(0x20000n)).toEqual({ '0x20000': 1 });
    expect(s.container().dmaAvail).toBe(65534);
    expect(s.proc.lockedVm).toBe(1n);
    // Once the driver behaves, the same UNMAP completes.
    s.driverUnpins = true;
    const v = s.UNMAP(0x10000n, 0x20000n);
    expect([v.ret, v.size]).toEqual([0, 0x1000n]);
    expect(s.proc.lockedVm).toBe(0n);
  });
});

describe('§5.6 notification', () => {
  it('only dmas with external pins are notified, with (dma.iova, dma.size), in ascending order', async () => {
    const s = await setup('E');
    must(s.MAP(P(0x10), P(4)), 'A');
    must(s.MAP(P(0x20), P(2)), 'B');
    must(s.MAP(P(0x30), P(8)), 'C');
    must(s.PIN('M', P(0x12), 1), 'PIN A');
    must(s.PIN('M', P(0x37), 1), 'PIN C');
    const u = s.UNMAP(0n, P(0x100));
    expect([u.ret, u.size]).toEqual([0, P(14)]);
    expect(s.unmapCalls).toEqual([
      { dev: s.dev.M.name, iova: P(0x10), size: P(4) },
      { dev: s.dev.M.name, iova: P(0x30), size: P(8) },
    ]);
  });

  it('UNMAP_ALL notifies and removes a pinned dma', async () => {
    const s = await setup('E');
    must(s.MAP(P(0x10), P(4)), 'A');
    must(s.MAP(P(0x20), P(1)), 'B');
    must(s.PIN('M', P(0x20), 1), 'PIN');
    const u = s.UNMAP(0n, 0n, uapi.VFIO_DMA_UNMAP_FLAG_ALL);
    expect([u.ret, u.size]).toEqual([0, P(5)]);
    expect(s.unmapCalls).toEqual([{ dev: s.dev.M.name, iova: P(0x20), size: P(1) }]);
    expect(s.dmas()).toEqual([]);
    expect(s.proc.lockedVm).toBe(0n);
  });

  it('every open device with a registered op is notified (X)', async () => {
    const s = await setup('X');
    must(s.MAP(0n, P(4)), 'MAP');
    must(s.PIN('M', P(1), 1), 'PIN');
    const u = s.UNMAP(0n, P(4));
    expect([u.ret, u.size]).toEqual([0, P(4)]);
    expect(s.unmapCalls.map((c) => c.dev).sort()).toEqual([s.dev.G.name, s.dev.M.name].sort());
    for (const c of s.unmapCalls) expect([c.iova, c.size]).toEqual([0n, P(4)]);
  });

  it('a device without a registered op is not notified', async () => {
    const s = await setup('X', { register: false });
    s.register('M');
    must(s.MAP(0n, P(4)), 'MAP');
    must(s.PIN('M', P(1), 1), 'PIN');
    expect(s.UNMAP(0n, P(4)).ret).toBe(0);
    expect(s.unmapCalls.map((c) => c.dev)).toEqual([s.dev.M.name]);
  });

  it('pins from two devices on one dma are both released through their own ops', async () => {
    const s = await setup('X');
    must(s.MAP(0n, P(4)), 'MAP');
    must(s.PIN('M', P(1), 1), 'PIN M');
    must(s.PIN('G', P(2), 1), 'PIN G');
    const u = s.UNMAP(0n, P(4));
    expect([u.ret, u.size]).toEqual([0, P(4)]);
    expect(s.proc.lockedVm).toBe(0n);
  });

  it('the restart re-runs validation: a driver that maps next to the dma does not disturb the unmap', async () => {
    const s = await setup('E');
    must(s.MAP(P(0x10), P(2)), 'A');
    must(s.PIN('M', P(0x10), 1), 'PIN');
    const base = s.onDmaUnmap.bind(s);
    s.onDmaUnmap = (d, iova, size) => {
      base(d, iova, size);
      if (s.unmapCalls.length === 1) expect(s.MAP(P(0x40), P(1))).toBe(0); // outside the request
    };
    const u = s.UNMAP(0n, P(0x20));
    expect([u.ret, u.size]).toEqual([0, P(2)]);
    expect(s.dmas()).toEqual([[P(0x40), P(1)]]);
  });
});

describe('§5.5 unmap with bitmap after the notification', () => {
  it('pages the driver pinned are reported after it unpins', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(4)), 'MAP');
    must(s.START(), 'START');
    must(s.PIN('M', P(1), 1), 'PIN');
    must(s.PIN('M', P(3), 1), 'PIN');
    const r = s.UMB(0n, P(4), 8);
    expect([r.ret, r.size, r.hex]).toEqual([0, P(4), '0a 00 00 00 00 00 00 00']);
    expect(s.unmapCalls.length).toBe(1);
  });
});
