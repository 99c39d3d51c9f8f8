// vfio_dma_rw (docs/conformance.md §6.6) through bounded chunks: every check before any byte moves, one scratch
// buffer of at most DMA_RW_CHUNK bytes whatever the caller's buffer, ENOMEM reported as ENOMEM
// with nothing copied, and byte-exact copies across chunk and dma boundaries.
import { describe, expect, it, vi } from 'vitest';
import { errno } from '../src/index.js';
import { DMA_RW_CHUNK } from '../src/vfio/pin.js';
import { setupE } from './helpers/typed_setup.js';

const P = (n: number): bigint => BigInt(n) * 0x1000n;


/** Deterministic bytes that differ from position to position. */
function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let v = seed;
  for (let i = 0; i < n; i++) {
    v = (v * 1103515245 + 12345) >>> 0;
    out[i] = v >>> 24;
  }
  return out;
}

const snap = (e: Awaited<ReturnType<typeof setupE>>['engine']): string =>
  JSON.stringify({ s: e.inspect(), inUse: e.memoryInUse() }, (_k, v) => (typeof v === 'bigint' ? `${v}` : v));

describe('dma_rw in bounded chunks', () => {
  it('a 1.5 GiB read of a 16 KiB mapping: EINVAL after the mapping, Wasm memory does not grow', async () => {
    const { engine, proc, c, dev } = await setupE();
    const va = proc.mmap(P(4));
    const bytes = pattern(0x4000, 1);
    proc.write(va, bytes);
    c.map({ iova: P(0x100), vaddr: va, size: P(4) });
    const inUse = engine.memoryInUse();
    const wasm = engine.core.memory.buffer.byteLength;
    const data = new Uint8Array(0x6000_0000);
    expect(dev.dmaRw(P(0x100), data, false)).toBe(-errno.EINVAL);
    expect(engine.memoryInUse()).toBe(inUse);
    expect(engine.core.memory.buffer.byteLength - wasm).toBeLessThanOrEqual(4 << 20);
    expect(Buffer.from(data.subarray(0, 0x4000)).equals(Buffer.from(bytes))).toBe(true);
    expect(data.subarray(0x4000, 0x5000).every((b) => b === 0)).toBe(true);
  });

  it('a 1.5 GiB write of a 16 KiB mapping: the mapping written and marked, then EINVAL; no growth', async () => {
    const { engine, proc, c, dev } = await setupE();
    const va = proc.mmap(P(4));
    c.map({ iova: P(0x100), vaddr: va, size: P(4) });
    c.dirty.start();
    const wasm = engine.core.memory.buffer.byteLength;
    const data = new Uint8Array(0x6000_0000);
    data.set(pattern(0x4000, 2));
    expect(dev.dmaRw(P(0x100), data, true)).toBe(-errno.EINVAL);
    expect(engine.core.memory.buffer.byteLength - wasm).toBeLessThanOrEqual(4 << 20);
    expect(Buffer.from(proc.read(va, 0x4000)).equals(Buffer.from(data.subarray(0, 0x4000)))).toBe(true);
    expect(engine.inspect().containers[0].dmas[0].bitmap).toBe('0f00000000000000');
  });

  it('fail the Nth allocation of a multi-chunk write over two dmas: ENOMEM with nothing written, then exact', async () => {
    const { engine, proc, c, dev } = await setupE();
    const vaA = proc.mmap(P(150));
    const vaB = proc.mmap(P(100));
    c.map({ iova: P(0x1000), vaddr: vaA, size: P(150) });
    c.map({ iova: P(0x1000 + 150), vaddr: vaB, size: P(100) });
    c.dirty.start();
    const data = pattern(250 * 4096 - 1000 - 3000, 3);
    let n = 1;
    for (; n < 100; n++) {
      const before = snap(engine);
      const memA = Buffer.from(proc.read(vaA, 150 * 4096)).toString('hex');
      engine.failNthAllocation(n);
      let r: number;
      try {
        r = dev.dmaRw(P(0x1000) + 1000n, data, true);
      } finally {
        engine.failNthAllocation(0);
      }
      if (r !== -errno.ENOMEM) {
        expect(r).toBe(0);
        break;
      }
      expect(snap(engine)).toBe(before);
      expect(Buffer.from(proc.read(vaA, 150 * 4096)).toString('hex')).toBe(memA);
    }
    expect(n).toBeGreaterThan(1); // the scratch, then the frames
    const a = 150 * 4096 - 1000;
    expect(Buffer.from(proc.read(vaA + 1000n, a)).equals(Buffer.from(data.subarray(0, a)))).toBe(true);
    expect(Buffer.from(proc.read(vaB, data.length - a)).equals(Buffer.from(data.subarray(a)))).toBe(true);
    const dmas = engine.inspect().containers[0].dmas;
    expect(dmas.map((d) => d.bitmap)).toEqual([
      'ff'.repeat(18) + '3f' + '00'.repeat(5), // 150 pages
      'ff'.repeat(12) + '0f' + '00'.repeat(3), // 100 pages; the write ends 3000 bytes before B's end: page 99 is touched
    ]);
  });

  it('a multi-chunk read across a dma boundary is byte-exact', async () => {
    const { proc, c, dev } = await setupE();
    const vaA = proc.mmap(P(100));
    const vaB = proc.mmap(P(100));
    const bytesA = pattern(100 * 4096, 4);
    const bytesB = pattern(100 * 4096, 5);
    proc.write(vaA, bytesA);
    proc.write(vaB, bytesB);
    c.map({ iova: P(0x2000), vaddr: vaB, size: P(100) }); // B's memory at the lower iova
    c.map({ iova: P(0x2000 + 100), vaddr: vaA, size: P(100) });
    const len = 2 * DMA_RW_CHUNK + 12345;
    const data = new Uint8Array(len);
    const start = 100 * 4096 - DMA_RW_CHUNK - 77; // inside the lower dma
    expect(dev.dmaRw(P(0x2000) + BigInt(start), data, false)).toBe(0);
    const want = Buffer.concat([Buffer.from(bytesB), Buffer.from(bytesA)]).subarray(start, start + len);
    expect(Buffer.from(data).equals(want)).toBe(true);
    // Written back the same way, each dma's part is one soft-dirty store at its own vaddr.
    const spy = vi.spyOn(proc, 'markSoftDirty');
    data.reverse();
    expect(dev.dmaRw(P(0x2000) + BigInt(start), data, true)).toBe(0);
    const lower = 100 * 4096 - start;
    expect(spy.mock.calls).toEqual([[vaB + BigInt(start), lower], [vaA, len - lower]]);
    const back = Buffer.concat([Buffer.from(proc.read(vaB + BigInt(start), lower)), Buffer.from(proc.read(vaA, len - lower))]);
    expect(back.equals(Buffer.from(data))).toBe(true);
  });
});
