// The typed API over the model: the same behaviour as the ioctl surface, with errors thrown.
import { describe, expect, it } from 'vitest';
import { createEngine, errno, InvalidArgumentError, ExistsError, VfioError } from '../src/index.js';
import { setupE } from './helpers/typed_setup.js';

const P = (n: number) => BigInt(n) * 0x1000n;


async function setupI() {
  const engine = await createEngine();
  const proc = engine.createProcess();
  const g = engine.createGroup({ kind: 'iommu' });
  const c = engine.openContainer(proc);
  c.attach(g);
  c.setIommu('type1v2');
  const mem = proc.mmap(1n << 24n);
  return { engine, proc, g, c, mem };
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('typed API', () => {
  it('V34 basic pinned scope', async () => {
    const { c, dev, mem } = await setupE();
    c.map({ iova: P(0x100), vaddr: mem, size: P(16) });
    c.dirty.start();
    expect(dev.pinPages(P(0x100), 1, 3)).toBe(1);
    expect(dev.pinPages(P(0x103), 1, 3)).toBe(1);
    expect(hex(c.dirty.read({ iova: P(0x100), size: P(16) }))).toBe('0900000000000000');
    expect(hex(c.dirty.read({ iova: P(0x100), size: P(16) }))).toBe('0900000000000000');
    dev.unpinPages(P(0x100), 1);
    expect(hex(c.dirty.read({ iova: P(0x100), size: P(16) }))).toBe('0900000000000000');
    expect(hex(c.dirty.read({ iova: P(0x100), size: P(16) }))).toBe('0800000000000000');
    dev.unpinPages(P(0x103), 1);
    expect(hex(c.dirty.read({ iova: P(0x100), size: P(16) }))).toBe('0800000000000000');
    expect(hex(c.dirty.read({ iova: P(0x100), size: P(16) }))).toBe('0000000000000000');
  });

  it('V36 a dma straddling the 64-page boundary, plus a second dma', async () => {
    const { c, dev, mem } = await setupE();
    c.map({ iova: 0n, vaddr: mem, size: P(70) });
    c.map({ iova: P(70), vaddr: mem + P(70), size: P(10) });
    c.dirty.start();
    for (const p of [63, 64, 69, 70, 79]) expect(dev.pinPages(P(p), 1, 1)).toBe(1);
    const want = '0000000000000080618000000000000000';
    expect(hex(c.dirty.read({ iova: 0n, size: P(80) }))).toBe(want.slice(0, 32));
    expect(hex(c.dirty.read({ iova: 0n, size: P(80) }))).toBe(want.slice(0, 32));
  });

  it('V40 all-dirty in non-pinned scope', async () => {
    const { c, mem } = await setupI();
    c.map({ iova: 0n, vaddr: mem, size: P(3) });
    c.dirty.start();
    expect(hex(c.dirty.read({ iova: 0n, size: P(3) }))).toBe('0700000000000000');
    expect(hex(c.dirty.read({ iova: 0n, size: P(3) }))).toBe('0700000000000000');
  });

  it('V48 unmap-with-bitmap across two dmas', async () => {
    const { c, dev, mem } = await setupE();
    c.map({ iova: P(0x10), vaddr: mem, size: P(3) });
    c.map({ iova: P(0x13), vaddr: mem + P(3), size: P(2) });
    c.dirty.start();
    for (const p of [0x10, 0x14]) {
      expect(dev.pinPages(P(p), 1, 1)).toBe(1);
      dev.unpinPages(P(p), 1);
    }
    expect(dev.dmaRw(P(0x12), new Uint8Array(8).fill(1), true)).toBe(0);
    const r = c.unmapWithBitmap({ iova: P(0x10), size: P(5) });
    expect(r.size).toBe(0x5000n);
    expect(hex(r.bitmap)).toBe('1500000000000000');
  });

  it('V60 clean: no phantom bits', async () => {
    const { c, dev, mem } = await setupE();
    c.map({ iova: P(1), vaddr: mem, size: P(2) });
    c.dirty.start();
    expect(dev.dmaRw(P(1), new Uint8Array(0x2000), true)).toBe(0);
    const got = [0, 1, 2, 3].map(() => hex(c.dirty.read({ iova: 0n, size: P(4) })));
    // GET over [0, P(4)) is refused? No: P(0) and P(3) are gaps, the dma is whole inside.
    expect(got).toEqual(['0600000000000000', '0000000000000000', '0000000000000000', '0000000000000000']);
  });

  it('throws typed errors with errno, operation and range', async () => {
    const { c, mem } = await setupE();
    c.map({ iova: 0x10000n, vaddr: mem, size: 0x4000n });
    const err = (() => {
      try {
        c.map({ iova: 0x13000n, vaddr: mem, size: 0x1000n });
      } catch (e) {
        return e as VfioError;
      }
    })();
    expect(err).toBeInstanceOf(ExistsError);
    expect(err?.errno).toBe(errno.EEXIST);
    expect(err?.op).toBe('map');
    expect(err?.range).toEqual({ start: 0x13000n, length: 0x1000n });
    expect(() => c.unmap({ iova: 0x11000n, size: 0x1000n })).toThrow(InvalidArgumentError);
    expect(c.unmap({ iova: 0xf000n, size: 0x6000n })).toBe(0x4000n);
  });

  it('V26 notifies the pinning driver once with the whole dma, then unmaps', async () => {
    const { c, dev, mem, calls } = await setupE();
    c.map({ iova: 0x10000n, vaddr: mem, size: 0x4000n });
    expect(dev.pinPages(0x11000n, 1, 1)).toBe(1);
    expect(dev.pinPages(0x11000n, 1, 1)).toBe(1);
    dev.registerDmaUnmap((iova, size) => {
      calls.push([iova, size]);
      dev.unpinPages(0x11000n, 1);
      dev.unpinPages(0x11000n, 1);
    });
    expect(c.unmap({ iova: 0x10000n, size: 0x4000n })).toBe(0x4000n);
    expect(calls).toEqual([[0x10000n, 0x4000n]]);
  });
});
