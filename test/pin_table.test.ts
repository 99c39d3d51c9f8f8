import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { EINVAL, ENOMEM } from '../assembly/constants.js';
import { PinTable } from '../src/core/pin_table.js';
import { InvalidArgumentError, OutOfMemoryError } from '../src/errors.js';
import { Core } from '../src/wasm.js';
import { PinTableModel, type ModelPin } from './model/pin_table_model.js';

const G = 1n << 32n; // the first key of the wide sub-table
const TOP = (1n << 64n) - 1n;
const BITMAP_BYTES = 4096; // test bitmaps: 32,768 bits after a 16-byte header

let core: Core;
beforeAll(async () => {
  core = await Core.create({ flavour: 'debug' });
});

/** A zeroed block laid out as a dirty bitmap: 16 header bytes (nbits first), then the words. */
function newBitmap(c = core): number {
  const bm = c.x.heap_alloc(16 + BITMAP_BYTES);
  c.u8().fill(0, bm, bm + 16 + BITMAP_BYTES);
  c.u32()[bm >> 2] = BITMAP_BYTES * 8;
  return bm;
}

/** The set bits of a test bitmap, ascending. */
function bitsOf(bm: number, c = core): bigint[] {
  const out: bigint[] = [];
  const u8 = c.u8();
  for (let i = 0; i < BITMAP_BYTES; i++) {
    const b = u8[bm + 16 + i];
    for (let j = 0; b && j < 8; j++) if (b & (1 << j)) out.push(BigInt(i * 8 + j));
  }
  return out;
}

/** Every pin through the raw export. */
function dump(p: number, c = core): ModelPin[] {
  const n = c.x.pins_size(p);
  const buf = c.x.heap_alloc(Math.max(1, n) * 16);
  const got = c.x.pins_collect(p, buf, n);
  const v64 = c.u64();
  const v32 = c.u32();
  const out = Array.from({ length: got }, (_, i) => {
    expect(v32[(buf + i * 16) / 4 + 3]).toBe(0); // pad
    return { page: v64[(buf + i * 16) / 8], count: v32[(buf + i * 16) / 4 + 2] };
  });
  c.x.heap_free(buf);
  return out;
}

const sorted = (s: Set<bigint>) => [...s].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

describe('pin_table: exact cases', () => {
  it('counts references (vector V27) and releases at zero', () => {
    const t = new PinTable(core);
    expect(t.pinRange(2n, 2)).toBe(2);
    expect(t.pinRange(2n, 1)).toBe(0); // already pinned: a reference, not a new page
    expect(t.count(2n)).toBe(2);
    expect(t.count(3n)).toBe(1);
    expect(t.count(4n)).toBe(0);
    expect(t.size).toBe(2);
    expect(t.unpinRange(2n, 2)).toBe(1); // page 3 released, page 2 down to 1
    expect(t.entries()).toEqual([{ page: 2n, count: 1 }]);
    expect(t.unpinRange(0n, 2)).toBe(0); // unpinned pages are ignored (vector V32)
    expect(t.unpinRange(5n, 100)).toBe(0);
    expect(t.entries()).toEqual([{ page: 2n, count: 1 }]);
    expect(t.unpinRange(2n, 1)).toBe(1);
    expect(t.size).toBe(0);
    t.dispose();
    t.dispose(); // idempotent
    expect(() => t.size).toThrow('after dispose');
  });

  it('keeps keys at and above 2^32 exact, ordered after the low ones', () => {
    const t = new PinTable(core);
    expect(t.pinRange(G - 2n, 4)).toBe(4); // crosses from one sub-table into the other
    expect(t.pinBatch(new BigUint64Array([TOP, G + 1n, 5n, TOP]))).toBe(2);
    expect(t.count(G + 1n)).toBe(2);
    expect(t.count(TOP)).toBe(2);
    expect(t.count(1n)).toBe(0); // same low 32 bits as G + 1: must not alias
    expect(t.size).toBe(6);
    expect(t.entries().map((e) => e.page)).toEqual([5n, G - 2n, G - 1n, G, G + 1n, TOP]);
    expect(t.countRange(G - 1n, 3n)).toBe(3);
    expect(t.countRange(G, TOP)).toBe(3); // clipped at 2^64 - 1
    expect(t.countRange(0n, TOP)).toBe(5); // the walk over slots; [0, 2^64 - 2] leaves TOP out
    expect(t.countRange(TOP, 1n)).toBe(1);
    expect(core.x.pins_pin_range(t.handle, TOP - 1n, 3, -1, 0, 0)).toBe(-EINVAL); // past 2^64 - 1
    expect(t.unpinRange(TOP - 1n, 5)).toBe(0); // clipped; TOP goes from 2 to 1
    expect(t.unpinBatch(new BigUint64Array([TOP, G + 1n, G + 1n, G + 1n]))).toBe(2);
    expect(t.entries().map((e) => e.page)).toEqual([5n, G - 2n, G - 1n, G]);
    t.dispose();
  });

  it('exhausts the budget mid-call: counts restored, memory unchanged, bits kept', () => {
    const t = new PinTable(core);
    const bm = newBitmap();
    t.pinRange(5n, 1);
    const before = t.entries();
    const used = core.heapUsed();
    // 3 new, 4 new (budget now 0), 5 existing (+1, no bit), 6 new: exhausted.
    expect(core.x.pins_pin_range(t.handle, 3n, 5, 2, bm, 0)).toBe(-ENOMEM);
    expect(t.entries()).toEqual(before);
    expect(core.heapUsed()).toBe(used);
    expect(bitsOf(bm)).toEqual([3n, 4n]);
    expect(() => t.pinRange(3n, 5, { budget: 2 })).toThrow(OutOfMemoryError);
    expect(t.pinRange(3n, 5, { budget: 4, bitmap: bm })).toBe(4); // exactly enough: 3, 4, 6, 7
    expect(bitsOf(bm)).toEqual([3n, 4n, 6n, 7n]);
    expect(t.pinRange(3n, 5, { budget: 0 })).toBe(0); // nothing new: the budget is not touched
    expect(t.count(5n)).toBe(3);
    // A range that grows the table before running out: the old slot array comes back.
    const again = t.entries();
    const used2 = core.heapUsed();
    expect(core.x.pins_pin_range(t.handle, 1000n, 300, 200, bm, 0)).toBe(-ENOMEM);
    expect(core.heapUsed()).toBe(used2);
    expect(t.entries()).toEqual(again);
    expect(bitsOf(bm).length).toBe(4 + 200);
    t.dispose();
    core.x.heap_free(bm);
  });

  it('undoes a failed batch with repeats in reverse, restoring the slots exactly', () => {
    const t = new PinTable(core);
    const pages = BigUint64Array.from({ length: 3000 }, (_, i) => BigInt((i * 7919) % 1000));
    const batch = core.x.heap_alloc(pages.length * 8);
    t.pinBatch(pages.subarray(0, 100));
    const before = t.entries();
    const bm = newBitmap();
    const used = core.heapUsed();
    expect(core.x.pins_size(t.handle)).toBe(100);
    core.u64().set(pages, batch / 8);
    expect(core.x.pins_pin_batch(t.handle, batch, pages.length, 500, bm, 0)).toBe(-ENOMEM);
    expect(t.entries()).toEqual(before);
    expect(core.heapUsed()).toBe(used);
    expect(bitsOf(bm).length).toBe(500); // the 500 pages it did create before running out
    expect(() => t.pinBatch(pages, { budget: 500 })).toThrow(OutOfMemoryError);
    expect(t.pinBatch(pages, { budget: 900 })).toBe(900);
    core.x.heap_free(bm);
    core.x.heap_free(batch);
    t.dispose();
  });

  it('marks pinned pages with shift 0 and 4, inside the window only', () => {
    const t = new PinTable(core);
    t.pinBatch(new BigUint64Array([0n, 1n, 15n, 16n, 17n, 100n, 1000n, G + 3n]));
    const bm = newBitmap();
    t.mark(bm, 1n, 200, 0); // window [1, 201): pages 1..200
    expect(bitsOf(bm)).toEqual([0n, 14n, 15n, 16n, 99n]);
    core.u8().fill(0, bm + 16, bm + 16 + BITMAP_BYTES);
    t.mark(bm, 0n, 7, 4); // 16-page bitmap pages: bits 0..6 cover pages 0..111
    expect(bitsOf(bm)).toEqual([0n, 1n, 6n]);
    expect(new Uint8Array(core.memory.buffer, bm + 16, 2)).toEqual(new Uint8Array([0b01000011, 0]));
    core.u8().fill(0, bm + 16, bm + 16 + BITMAP_BYTES);
    t.mark(bm, G, 8, 0);
    expect(bitsOf(bm)).toEqual([3n]);
    expect(core.x.pins_mark(t.handle, bm, 0n, 8, 64)).toBe(-EINVAL);
    expect(() => t.mark(bm, 0n, 8, 64)).toThrow(InvalidArgumentError);
    // A new pin with shift 4 sets bit page >> 4.
    core.u8().fill(0, bm + 16, bm + 16 + BITMAP_BYTES);
    expect(t.pinRange(40n, 2, { bitmap: bm, shift: 4 })).toBe(2);
    expect(bitsOf(bm)).toEqual([2n]);
    core.x.heap_free(bm);
    t.dispose();
  });

  it('collects the lowest pages in order when max is below the size', () => {
    const t = new PinTable(core);
    const m = new PinTableModel();
    const pages = BigUint64Array.from({ length: 5000 }, (_, i) => (BigInt(i) * 0x9e3779b9n) % (1n << 40n));
    t.pinBatch(pages);
    m.pinPages(pages);
    const buf = core.x.heap_alloc(100 * 16);
    expect(core.x.pins_collect(t.handle, buf, 100)).toBe(100);
    const v64 = core.u64();
    const got = Array.from({ length: 100 }, (_, i) => v64[(buf + i * 16) / 8]);
    expect(got).toEqual(m.collect(100).map((e) => e.page));
    expect(core.x.pins_collect(t.handle, buf, 0)).toBe(0);
    core.x.heap_free(buf);
    expect(dump(t.handle)).toEqual(m.collect());
    t.dispose();
  });

  it('unpins and counts a range larger than the table by walking its slots', () => {
    const t = new PinTable(core);
    const m = new PinTableModel();
    const pages = BigUint64Array.from({ length: 20000 }, (_, i) => BigInt((i * 104729) % 50000) + (i % 3 === 0 ? G : 0n));
    t.pinBatch(pages);
    m.pinPages(pages);
    expect(t.countRange(10000n, 200_000n)).toBe(m.countRange(10000n, 200_000n));
    expect(t.unpinRange(10000n, 200_000)).toBe(m.unpinRange(10000n, 200_000)); // > slots: the walk
    expect(dump(t.handle)).toEqual(m.collect());
    expect(t.unpinRange(G, 200_000)).toBe(m.unpinRange(G, 200_000));
    expect(dump(t.handle)).toEqual(m.collect());
    expect(t.unpinRange(0n, 0x7fffffff)).toBe(m.size);
    expect(t.size).toBe(0);
    t.dispose();
  });

  it('shrinks as pins go and frees its slots when empty or cleared', () => {
    const t = new PinTable(core);
    const empty = core.heapUsed();
    t.pinRange(0n, 100_000);
    const full = core.heapUsed();
    t.unpinRange(0n, 99_000);
    expect(t.size).toBe(1000);
    expect(core.heapUsed()).toBeLessThan(empty + (full - empty) / 10);
    expect(t.count(99_500n)).toBe(1);
    t.unpinRange(99_000n, 1000);
    expect(core.heapUsed()).toBe(empty);
    t.pinRange(G, 1000);
    t.clear();
    expect(t.size).toBe(0);
    expect(core.heapUsed()).toBe(empty);
    expect(t.pinRange(7n, 1)).toBe(1); // usable after clear
    t.dispose();
  });

  it('rejects bad arguments with EINVAL', () => {
    const t = new PinTable(core);
    const x = core.x;
    expect(x.pins_pin_range(t.handle, 0n, 1, -1, 64, 64)).toBe(-EINVAL);
    expect(x.pins_pin_range(t.handle, 0n, 0x80000000, -1, 0, 0)).toBe(-EINVAL);
    expect(x.pins_pin_range(t.handle, 0n, 0, -1, 0, 0)).toBe(0);
    expect(() => t.pinRange(-1n, 1)).toThrow(InvalidArgumentError);
    expect(() => t.pinRange(0n, 1.5)).toThrow(InvalidArgumentError);
    expect(() => t.pinRange(0n, 1, { shift: 70 })).toThrow(InvalidArgumentError);
    expect(t.size).toBe(0);
    t.dispose();
  });
});

describe('pin_table: differential against the model', () => {
  type Op =
    | { k: 'pin'; first: bigint; n: number; budget: number; shift: number }
    | { k: 'pinb'; pages: bigint[]; budget: number; shift: number }
    | { k: 'unpin'; first: bigint; n: number }
    | { k: 'unpinb'; pages: bigint[] }
    | { k: 'count'; page: bigint }
    | { k: 'crange'; first: bigint; n: bigint }
    | { k: 'mark'; first: bigint; nbits: number; shift: number };
  // Pages near 0 and near 2^32 (both sub-tables), from a small space so pins repeat.
  const page = fc
    .tuple(fc.constantFrom(0n, G - 64n), fc.integer({ min: 0, max: 150 }))
    .map(([b, i]) => b + BigInt(i));
  const budget = fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 40 }));
  const shift = fc.constantFrom(0, 0, 4);
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 4, arbitrary: fc.record({ k: fc.constant('pin' as const), first: page, n: fc.integer({ min: 0, max: 60 }), budget, shift }) },
    { weight: 3, arbitrary: fc.record({ k: fc.constant('pinb' as const), pages: fc.array(page, { maxLength: 60 }), budget, shift }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('unpin' as const), first: page, n: fc.integer({ min: 0, max: 400 }) }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('unpinb' as const), pages: fc.array(page, { maxLength: 60 }) }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('count' as const), page }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('crange' as const), first: page, n: fc.bigInt({ min: 0n, max: 1n << 33n }) }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('mark' as const), first: page, nbits: fc.integer({ min: 0, max: 300 }), shift }) },
  );

  it('matches every result, every bit and the final state', () => {
    const x = core.x;
    const bm = newBitmap();
    const batch = x.heap_alloc(60 * 8);
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
        const p = x.pins_create();
        const m = new PinTableModel();
        for (const o of ops) {
          const bits = new Set<bigint>();
          core.u8().fill(0, bm + 16, bm + 16 + BITMAP_BYTES);
          // Bits are relative to the base of the page space the op works in, to fit the bitmap.
          if (o.k === 'pin') {
            const base = o.first >= G - 64n ? G - 64n : 0n;
            const want = m.pinRange(o.first, o.n, o.budget, bits, BigInt(o.shift));
            const got = base === 0n ? x.pins_pin_range(p, o.first, o.n, o.budget, bm, o.shift) : x.pins_pin_range(p, o.first, o.n, o.budget, 0, 0);
            expect(got).toBe(want);
            if (base === 0n) expect(bitsOf(bm)).toEqual(sorted(bits));
          } else if (o.k === 'pinb') {
            core.u64().set(o.pages, batch / 8);
            const low = o.pages.every((q) => q < G - 64n);
            const want = m.pinPages(o.pages, o.budget, bits, BigInt(o.shift));
            expect(x.pins_pin_batch(p, batch, o.pages.length, o.budget, low ? bm : 0, o.shift)).toBe(want);
            if (low) expect(bitsOf(bm)).toEqual(sorted(bits));
          } else if (o.k === 'unpin') {
            expect(x.pins_unpin_range(p, o.first, o.n)).toBe(m.unpinRange(o.first, o.n));
          } else if (o.k === 'unpinb') {
            core.u64().set(o.pages, batch / 8);
            expect(x.pins_unpin_batch(p, batch, o.pages.length)).toBe(m.unpinPages(o.pages));
          } else if (o.k === 'count') {
            expect(x.pins_count(p, o.page)).toBe(m.count(o.page));
          } else if (o.k === 'crange') {
            expect(x.pins_count_range(p, o.first, o.n)).toBe(m.countRange(o.first, o.n));
          } else {
            expect(x.pins_mark(p, bm, o.first, o.nbits, o.shift)).toBe(0);
            m.mark(bits, o.first, o.nbits, BigInt(o.shift));
            expect(bitsOf(bm)).toEqual(sorted(bits));
          }
          expect(x.pins_size(p)).toBe(m.size);
        }
        expect(dump(p)).toEqual(m.collect());
        x.pins_free(p);
      }),
      { numRuns: 250 },
    );
    x.heap_free(batch);
    x.heap_free(bm);
  });
});

describe('pin_table: allocation failure and memory', () => {
  it('pins_create answers -ENOMEM on a failed allocation and leaks nothing', () => {
    const used = core.heapUsed();
    core.x.heap_fail_nth(1);
    expect(core.x.pins_create()).toBe(-ENOMEM);
    expect(core.heapUsed()).toBe(used);
  });

  it('fail-the-Nth sweep: a pin needing growth of both sub-tables changes nothing until it succeeds', () => {
    const x = core.x;
    const p = x.pins_create();
    const m = new PinTableModel();
    const bm = newBitmap();
    let failures = 0;
    for (let round = 0; round < 40; round++) {
      const first = G - 8n + BigInt(round * 16); // 16 pages, half below 2^32 then above it
      const want = m.pinRange(first, 16, -1);
      for (let nth = 1; ; nth++) {
        expect(nth).toBeLessThan(4); // at most one allocation per sub-table
        const used = core.heapUsed();
        const before = dump(p);
        core.u8().fill(0, bm + 16, bm + 16 + BITMAP_BYTES);
        x.heap_fail_nth(nth);
        const got = x.pins_pin_range(p, first, 16, -1, bm, 32);
        if (got === -ENOMEM) {
          failures++;
          expect(core.heapUsed()).toBe(used);
          expect(dump(p)).toEqual(before);
          expect(bitsOf(bm)).toEqual([]); // an allocation failure sets no bit
          continue;
        }
        x.heap_fail_nth(0);
        expect(got).toBe(want);
        break;
      }
    }
    expect(failures).toBeGreaterThan(10);
    expect(dump(p)).toEqual(m.collect());
    x.pins_free(p);
    x.heap_free(bm);
  });

  it('holds 1,000,000 pinned pages in at most 16 bytes each', () => {
    const before = core.heapUsed();
    const t = new PinTable(core);
    for (let i = 0; i < 1_000_000; i += 512) t.pinRange(BigInt(i) * 3n, Math.min(512, 1_000_000 - i));
    expect(t.size).toBe(1_000_000);
    const perPage = (core.heapUsed() - before) / 1e6;
    expect(perPage).toBeLessThanOrEqual(16);
    t.dispose();
    expect(core.heapUsed()).toBe(before);
  });

  it('1,000,000 cycles of tree insert/remove and pin create/pin/unpin/free leave memory flat', async () => {
    const c = await Core.create();
    const x = c.x;
    const tree = x.tree_create();
    x.tree_insert(tree, 0n, 0xfffn, 1); // keeps the node pool alive across cycles
    const cycle = (i: number) => {
      const a = BigInt(0x1000 + (i % 4096) * 0x1000);
      x.tree_insert(tree, a, a + 0xfffn, i);
      x.tree_remove(tree, a);
      const p = x.pins_create();
      x.pins_pin_range(p, BigInt(i % 1000), 4, -1, 0, 0);
      x.pins_unpin_range(p, BigInt(i % 1000), 4);
      x.pins_free(p);
    };
    cycle(0);
    const used = c.heapUsed();
    const bytes = c.memory.buffer.byteLength;
    for (let i = 1; i < 1_000_000; i++) cycle(i);
    expect(c.heapUsed()).toBe(used);
    expect(c.memory.buffer.byteLength).toBe(bytes);
    expect(x.tree_count(tree)).toBe(1);
    x.tree_free(tree);
    expect(c.heapUsed()).toBe(0);
  });
});
