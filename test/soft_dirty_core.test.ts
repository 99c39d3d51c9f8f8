// The core's soft-dirty record (assembly/soft_dirty.ts): a batch of stores (sd_mark_many, which
// sets a bit in place when the store stays in one page whose leaf exists) marks exactly what
// marking each store alone (sd_mark) marks, with the same error, on seeded random batches that
// mix pages with and without leaves, stores crossing pages and leaves, addresses past 2^47, and
// NaN and negative addresses.
import { describe, expect, it } from 'vitest';
import { Core } from '../src/wasm.js';
import { EFAULT } from '../assembly/constants.js';

const PAGE = 4096;
const LIMIT = 2 ** 47;
const LEAF = 32768 * PAGE; // the addresses one leaf covers

/** A small seeded generator (xorshift32): the same batches on every run. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

describe('sd_mark_many', () => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8])('marks what sd_mark marks store by store (seed %i)', async (seed) => {
    const core = await Core.create();
    const x = core.x;
    const many = x.sd_create();
    const one = x.sd_create();
    const r = rng(seed);
    // The first leaf made beforehand, the others by the batch; one stretch straddling two leaves
    // (the second made by the batch); one near the top of the address space, where a store can run
    // past 2^47.
    const bases = [0x7f0000000000, 0x7f0000000000 + LEAF, 0x7f0000000000 + 3 * LEAF - 32 * PAGE, LIMIT - 2 * PAGE];
    expect(x.sd_mark(many, bases[0], 1)).toBe(0);
    expect(x.sd_mark(one, bases[0], 1)).toBe(0);
    for (let round = 0; round < 4; round++) {
      const n = 1 + Math.floor(r() * 300);
      const bytes = [0, 1, 8, 4096, 5000][Math.floor(r() * 5)];
      const f = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const base = bases[Math.floor(r() * bases.length)];
        f[i] = base + Math.floor(r() * 64) * PAGE + Math.floor(r() * PAGE);
        if (r() < 0.02) f[i] = [NaN, -PAGE, LIMIT][Math.floor(r() * 3)]; // refused: EFAULT
      }
      let expected = 0;
      for (let i = 0; i < n; i++) {
        const e = x.sd_mark(one, f[i], bytes);
        if (e < 0) expected = e;
      }
      // A view made after the marks above, which may have grown (and so detached) the memory.
      const addrs = x.heap_alloc(n * 8);
      new Float64Array(core.memory.buffer, addrs, n).set(f);
      const got = x.sd_mark_many(many, addrs, n, bytes);
      x.heap_free(addrs);
      expect(got).toBe(expected);
      if (bytes === 0) expect(got).toBe(-EFAULT);
      // Every page the batches could reach, in both records.
      const pages = 64 + 2;
      const out = x.heap_alloc(2 * pages);
      for (const base of bases) {
        const first = Math.floor(base / PAGE);
        core.u8().fill(0, out, out + 2 * pages);
        x.sd_read(many, first, pages, out);
        x.sd_read(one, first, pages, out + pages);
        const a = core.u8().slice(out, out + pages);
        const b = core.u8().slice(out + pages, out + 2 * pages);
        expect(a).toEqual(b);
      }
      x.heap_free(out);
    }
    // The batches set bits at all: the comparison above is not of two empty records.
    const probe = x.heap_alloc(16);
    core.u8().fill(0, probe, probe + 16);
    x.sd_read(many, Math.floor(bases[0] / PAGE), 64, probe);
    expect(core.u8().subarray(probe, probe + 8).some((b) => b !== 0)).toBe(true);
  });
});
