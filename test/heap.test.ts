import { describe, expect, it } from 'vitest';
import { Core } from '../src/wasm.js';
import { ENOMEM } from '../assembly/constants.js';

describe('heap', () => {
  it('allocates 16-byte aligned blocks and returns to the same use after frees', async () => {
    const core = await Core.create();
    const before = core.heapUsed();
    const ptrs: number[] = [];
    for (const size of [1, 16, 17, 240, 4096, 100_000, 3 << 20]) {
      const p = core.x.heap_alloc(size);
      expect(p).toBeGreaterThan(0);
      expect(p % 16).toBe(0);
      ptrs.push(p);
    }
    expect(core.x.heap_live()).toBe(ptrs.length);
    for (const p of ptrs.reverse()) core.x.heap_free(p);
    expect(core.heapUsed()).toBe(before);
    expect(core.x.heap_live()).toBe(0);
  });

  it('keeps memory flat over many alloc/free cycles', async () => {
    const core = await Core.create();
    const cycle = (i: number) => {
      const p = core.x.heap_alloc(32 + (i % 7) * 1000);
      const q = core.x.heap_alloc(1 << 16);
      core.x.heap_free(p);
      core.x.heap_free(q);
    };
    for (let i = 0; i < 7; i++) cycle(i); // first use grows memory once
    const pages = core.memory.buffer.byteLength;
    for (let i = 0; i < 100_000; i++) cycle(i);
    expect(core.memory.buffer.byteLength).toBe(pages);
    expect(core.heapUsed()).toBe(0);
  });

  it('answers -ENOMEM when memory cannot grow, and recovers', async () => {
    const core = await Core.create({ memoryLimit: 4 << 20 });
    const big = core.x.heap_alloc(8 << 20);
    expect(big).toBe(-ENOMEM);
    expect(core.heapUsed()).toBe(0);
    const ok = core.x.heap_alloc(1 << 20);
    expect(ok).toBeGreaterThan(0);
  });

  it('fails exactly the nth allocation', async () => {
    const core = await Core.create();
    core.x.heap_fail_nth(3);
    const r = [1, 2, 3, 4].map(() => core.x.heap_alloc(64));
    expect(r.map((p) => p > 0)).toEqual([true, true, false, true]);
    expect(r[2]).toBe(-ENOMEM);
  });
});

describe('the core structures over one heap', () => {
  it('1,000,000 cycles of a bitmap, a range and a batch of pins end with the memory they began with', async () => {
    const core = await Core.create();
    const x = core.x;
    const tree = x.tree_create();
    const pins = x.pins_create();
    const batch = x.heap_alloc(8 * 8);
    const cycle = (i: number) => {
      const bm = x.bitmap_create(64 + (i & 511));
      if (bm <= 0) throw new Error(`bitmap_create failed: ${bm}`);
      const iova = BigInt(i & 0xffff) << 12n;
      x.tree_insert(tree, iova, iova + 0xfffn, i);
      const u64 = core.u64();
      for (let k = 0; k < 8; k++) u64[(batch >> 3) + k] = BigInt((i * 8 + k) & 63); // within the bitmap
      x.pins_pin_batch(pins, batch, 8, -1, bm, 0);
      x.pins_unpin_batch(pins, batch, 8);
      x.tree_remove(tree, iova);
      x.bitmap_free(bm);
    };
    cycle(0);
    const used = core.heapUsed();
    const bytes = core.memory.buffer.byteLength;
    for (let i = 1; i <= 1_000_000; i++) cycle(i);
    expect(core.heapUsed()).toBe(used);
    expect(core.memory.buffer.byteLength).toBe(bytes);
    expect(x.pins_size(pins)).toBe(0);
    expect(x.tree_count(tree)).toBe(0);
  }, 60_000);
});
