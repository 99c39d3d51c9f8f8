// proc.munmap of anonymous memory: refused with EINVAL, nothing changed, the memory kept until exit
// (docs/conformance.md §13.2 says why), while a DMA mapping over it goes on working.
import { describe, expect, it } from 'vitest';
import { createEngine, errno } from '../src/index.js';
import { MiB, world } from './helpers/lifecycle.js';

const { EINVAL } = errno;

describe('proc.munmap of memory from proc.mmap', () => {
  it('answers EINVAL for the whole region, a part of it or a page past it, and changes nothing', async () => {
    const e = await createEngine();
    const g = e.createGroup();
    const { p, va } = world(e, g); // va: 1 MiB, DMA-mapped at iova 0, byte 0 = 7, the device open
    const dev = g.devices[0];
    const before = e.inspect();
    const heap = e.memoryInUse();
    for (const [addr, len] of [[va, MiB], [va, 4096n], [va + 0x1000n, 4096n], [va, MiB + 4096n], [va, 1n]] as const) {
      expect(p.munmap(addr, len), `${addr.toString(16)} ${len}`).toBe(-EINVAL);
    }
    expect(e.inspect()).toEqual(before);
    expect(e.memoryInUse()).toBe(heap);
    expect(p.read(va, 1)).toEqual(Uint8Array.of(7));
    // The device's DMA and the process still meet at the same page.
    expect(dev.dmaWrite(0x2000n, Uint8Array.of(9, 8))).toBe(0);
    expect(p.read(va + 0x2000n, 2)).toEqual(Uint8Array.of(9, 8));
    p.write(va + 0x3000n, Uint8Array.of(5));
    expect(dev.dmaRead(0x3000n, 1)).toEqual(Uint8Array.of(5));
  });

  it('frees the memory at exit', async () => {
    const e = await createEngine();
    const heap = e.memoryInUse();
    const p = e.createProcess();
    const va = p.mmap(MiB);
    p.write(va, new Uint8Array(64 * 1024).fill(1));
    expect(p.munmap(va, MiB)).toBe(-EINVAL);
    expect(e.memoryInUse()).toBeGreaterThan(heap);
    expect(p.exit()).toBe(0);
    expect(e.memoryInUse()).toBe(heap);
  });
});
