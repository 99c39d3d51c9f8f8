// Dirty bitmaps: the differential property test, allocation failure and invalid inputs.
import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { EINVAL, ENOENT, ENOMEM } from '../assembly/constants.js';
import { DirtyBitmap } from '../src/core/dirty_bitmap.js';
import { InvalidArgumentError, OutOfMemoryError } from '../src/errors.js';
import { Core } from '../src/wasm.js';
import { BitmapModel } from './model/dirty_bitmap_model.js';
import { bitmapHelpers, expectBytes, SIZES } from './helpers/bitmap_fixture.js';

let core: Core;
beforeAll(async () => {
  core = await Core.create();
});
const { pair, buffer, bytesAt } = bitmapHelpers(() => core);

describe('dirty_bitmap: differential property test against the model', () => {
  const op = (nbits: number) => {
    const bit = fc.integer({ min: 0, max: nbits + 70 });
    return fc.oneof(
      fc.record({ op: fc.constant('set' as const), a: bit }),
      fc.record({ op: fc.constant('setRange' as const), a: bit, b: bit }),
      fc.record({ op: fc.constant('clearRange' as const), a: bit, b: bit }),
      fc.record({ op: fc.constant('test' as const), a: bit }),
      fc.record({ op: fc.constant('count' as const), a: bit, b: bit }),
      fc.record({ op: fc.constant('nextSet' as const), a: bit }),
      fc.record({ op: fc.constant('batch' as const), pages: fc.array(bit, { maxLength: 40 }) }),
      fc.record({ op: fc.constant('clear' as const) }),
      fc.record({ op: fc.constant('read' as const), a: bit, b: bit, s: fc.integer({ min: 0, max: 63 }), c: fc.boolean() }),
      fc.record({ op: fc.constant('or' as const), a: bit, b: bit, c: bit }),
      fc.record({ op: fc.constant('runs' as const), a: bit, b: bit, m: fc.integer({ min: 1, max: 4 }) }),
      fc.record({ op: fc.constant('convert' as const), k: fc.integer({ min: -7, max: 13 }) }),
    );
  };
  const scenario = fc
    .oneof(fc.constantFrom(...SIZES), fc.integer({ min: 1, max: 3000 }))
    .chain((nbits) => fc.tuple(fc.constant(nbits), fc.array(op(nbits), { minLength: 1, maxLength: 40 })));

  it('gives the same results and the same words for random operation sequences', () => {
    const x = core.x;
    const buf = x.heap_alloc(64 * 8);
    fc.assert(
      fc.property(scenario, ([nbits, ops]) => {
        const before = core.heapUsed();
        const bm = DirtyBitmap.create(core, nbits);
        const other = DirtyBitmap.create(core, nbits);
        const m = new BitmapModel(nbits);
        const mo = new BitmapModel(nbits);
        other.setRange(0, nbits >> 1);
        mo.setRange(0, nbits >> 1);
        const h = bm.handle;
        for (const o of ops) {
          switch (o.op) {
            case 'set': expect(x.bitmap_set(h, o.a)).toBe(m.set(o.a)); break;
            case 'setRange': expect(x.bitmap_set_range(h, o.a, o.b)).toBe(m.setRange(o.a, o.b)); break;
            case 'clearRange': expect(x.bitmap_clear_range(h, o.a, o.b)).toBe(m.clearRange(o.a, o.b)); break;
            case 'test': expect(x.bitmap_test(h, o.a)).toBe(m.test(o.a)); break;
            case 'count': expect(x.bitmap_count(h, o.a, o.b)).toBe(m.count(o.a, o.b)); break;
            case 'nextSet': expect(x.bitmap_next_set(h, o.a)).toBe(m.nextSet(o.a)); break;
            case 'clear': x.bitmap_clear(h); m.clear(); break;
            case 'batch': {
              core.u32().set(o.pages, buf / 4);
              expect(x.bitmap_set_batch(h, buf, o.pages.length)).toBe(m.setBatch(o.pages));
              break;
            }
            case 'read': {
              // Into the other bitmap's words from word 0, as the kernel writes a user bitmap.
              const count = Math.min(o.b, nbits - o.s);
              if (count < 0) break;
              const want = m.read(o.a, count, mo.bytes, 0, o.s, false);
              expect(x.bitmap_read(h, o.a, count, x.bitmap_words(other.handle), o.s, o.c ? 1 : 0)).toBe(want);
              if (want >= 0 && o.c) m.clearRange(o.a, count);
              break;
            }
            case 'or': expect(x.bitmap_or(other.handle, o.c, h, o.a, o.b)).toBe(m.orInto(mo, o.c, o.a, o.b)); break;
            case 'runs': {
              const want = m.runs(o.a, o.b, o.m);
              const n = x.bitmap_runs(h, o.a, o.b, buf, o.m);
              if (typeof want === 'number') expect(n).toBe(want);
              else expect(Array.from(core.u32().subarray(buf / 4, buf / 4 + 2 * n))).toEqual(want);
              break;
            }
            case 'convert': {
              const want = m.convert(o.k);
              if (typeof want === 'number') {
                expect(() => bm.convert(o.k)).toThrow(InvalidArgumentError);
              } else {
                const got = bm.convert(o.k);
                expectBytes(got.toBytes(), want.bytes);
                got.dispose();
              }
              break;
            }
          }
          expectBytes(bm.toBytes(), m.bytes);
          expectBytes(other.toBytes(), mo.bytes);
        }
        bm.dispose();
        other.dispose();
        expect(core.heapUsed()).toBe(before);
      }),
      { numRuns: 300, seed: 20240601 },
    );
    x.heap_free(buf);
  });
});

describe('dirty_bitmap: allocation failure', () => {
  it('bitmap_create answers -ENOMEM on the failed allocation and leaves the heap as it was', () => {
    const before = core.heapUsed();
    core.x.heap_fail_nth(1);
    expect(core.x.bitmap_create(1000)).toBe(-ENOMEM);
    expect(core.heapUsed()).toBe(before);
    core.x.heap_fail_nth(1);
    expect(() => DirtyBitmap.create(core, 1000)).toThrow(OutOfMemoryError);
    expect(core.heapUsed()).toBe(before);
  });

  it('convert, setBatch and runs throw OutOfMemoryError with the source and the heap unchanged', () => {
    const [bm, m] = pair(5000, 50, 3);
    const before = core.heapUsed();
    for (const call of [() => bm.convert(3), () => bm.convert(-2), () => bm.setBatch(new Uint32Array(5000).fill(7)) /* outgrows its buffer */, () => bm.runs()]) {
      core.x.heap_fail_nth(1);
      expect(call).toThrow(OutOfMemoryError);
      expect(core.heapUsed()).toBe(before);
      expectBytes(bm.toBytes(), m.bytes);
    }
    bm.dispose();
  });

  it('answers -ENOMEM when linear memory cannot grow', async () => {
    const small = await Core.create({ memoryLimit: 4 << 20 });
    expect(small.x.bitmap_create(2 ** 31)).toBe(-ENOMEM);
    expect(small.heapUsed()).toBe(0);
    expect(small.x.bitmap_create(2 ** 20)).toBeGreaterThan(0);
  });
});

describe('dirty_bitmap: invalid inputs, each with its exact errno and nothing changed', () => {
  const N = 130; // bm: bits 5..74 set; other: 66 bits, bit 65 set; dst: 4 raw words of 0x5a
  let bm: DirtyBitmap;
  let other: DirtyBitmap;
  let h = 0;
  let dst = 0;
  let batch = 0; // 40 pages, the 38th past the end
  beforeAll(() => {
    bm = DirtyBitmap.create(core, N);
    bm.setRange(5, 70);
    h = bm.handle;
    other = DirtyBitmap.create(core, 66);
    other.set(65);
    dst = buffer(4, 0x5a);
    batch = core.x.heap_alloc(4 * 40);
    core.u32().set(new Uint32Array(40).map((_, i) => (i === 37 ? N : 100 + (i % 30))), batch / 4);
  });
  const x = () => core.x;
  const end = () => core.memory.buffer.byteLength;
  const cases: [string, () => number, number][] = [
    ['create: nbits 0', () => x().bitmap_create(0), -EINVAL],
    ['create: nbits 2^31 + 1', () => x().bitmap_create(2 ** 31 + 1), -EINVAL],
    ['create: nbits 2^32 - 1', () => x().bitmap_create(0xffffffff), -EINVAL],
    ['set: bit nbits', () => x().bitmap_set(h, N), -EINVAL],
    ['test: bit nbits', () => x().bitmap_test(h, N), -EINVAL],
    ['next_set: from past nbits', () => x().bitmap_next_set(h, N + 1), -EINVAL],
    ['next_set: from nbits', () => x().bitmap_next_set(h, N), -ENOENT],
    ['set_range: one bit past the end', () => x().bitmap_set_range(h, N - 3, 4), -EINVAL],
    ['clear_range: u32 sum wraps', () => x().bitmap_clear_range(h, 0xffffffff, 2), -EINVAL],
    ['count: one bit past the end', () => x().bitmap_count(h, 1, N), -EINVAL],
    ['runs: past the end', () => x().bitmap_runs(h, N, 1, dst, 1), -EINVAL],
    ['runs: output past memory', () => x().bitmap_runs(h, 0, N, end() - 8, 2), -EINVAL],
    ['set_batch: one page past the end', () => x().bitmap_set_batch(h, batch, 40), -EINVAL],
    ['set_batch: pages past memory', () => x().bitmap_set_batch(h, end() - 8, 3), -EINVAL],
    ['read: s = 64', () => x().bitmap_read(h, 0, 10, dst, 64, 1), -EINVAL],
    ['read: range past the end', () => x().bitmap_read(h, 100, 31, dst, 0, 1), -EINVAL],
    ['read: dst not 8-aligned', () => x().bitmap_read(h, 0, 10, dst + 4, 0, 1), -EINVAL],
    ['read: dst on its own words', () => x().bitmap_read(h, 0, 10, x().bitmap_words(h) + 8, 0, 1), -EINVAL],
    ['read: dst over its own header', () => x().bitmap_read(h, 0, 100, h - 8, 0, 1), -EINVAL],
    ['read: dst past memory', () => x().bitmap_read(h, 0, 100, end() - 8, 0, 1), -EINVAL],
    ['emit: window past the stream', () => x().bitmap_emit(h, 0, 100, 30, dst, 2, 2), -EINVAL],
    ['emit: s = 64', () => x().bitmap_emit(h, 0, 100, 64, dst, 0, 1), -EINVAL],
    ['or: past the end of dst', () => x().bitmap_or(other.handle, 1, h, 0, 66), -EINVAL],
    ['or: past the end of src', () => x().bitmap_or(other.handle, 0, h, 100, 31), -EINVAL],
    ['or: overlapping ranges of one bitmap', () => x().bitmap_or(h, 10, h, 0, 11), -EINVAL],
    ['convert: k = 32', () => x().bitmap_convert(h, other.handle, 32), -EINVAL],
    ['convert: k = -32', () => x().bitmap_convert(h, other.handle, -32), -EINVAL],
    ['convert: dst of 66 bits where 65 are due', () => x().bitmap_convert(h, other.handle, 1), -EINVAL],
    ['convert: dst is src', () => x().bitmap_convert(h, h, 0), -EINVAL],
    ['convert_new: k = 32', () => x().bitmap_convert_new(h, 32), -EINVAL],
    ['convert_new: k = -27 makes more than 2^31 bits', () => x().bitmap_convert_new(h, -27), -EINVAL],
  ];
  it.each(cases)('%s', (_, call, errno) => {
    const state = () => [bm.toBytes(), other.toBytes(), bytesAt(dst, 32)];
    const was = state();
    expect(call()).toBe(errno);
    expect(state()).toEqual(was);
  });

  it('convert_new writes every word of a bitmap made from used memory, and fails whole on ENOMEM', () => {
    const src = DirtyBitmap.create(core, 1000);
    src.setBatch(new Uint32Array([0, 1, 63, 64, 127, 500, 999]));
    for (const k of [-7, -3, -1, 0, 1, 3, 6, 7]) {
      const junk = x().heap_alloc(20_000); // a freed block of ones is what the new bitmap gets
      core.u8().fill(0xff, junk, junk + 20_000);
      x().heap_free(junk);
      const made = src.convert(k);
      const want = DirtyBitmap.create(core, made.nbits);
      expect(x().bitmap_convert(src.handle, want.handle, k)).toBe(0);
      // Every allocated word, the padding word past nbits included (SIMD loops read it).
      const raw = (b: DirtyBitmap) => {
        const at = x().bitmap_words(b.handle);
        return core.u8().slice(at, at + 8 * core.u32()[(b.handle + 4) >>> 2]);
      };
      expect(raw(made)).toEqual(raw(want));
      made.dispose();
      want.dispose();
    }
    const used = core.heapUsed();
    x().heap_fail_nth(1);
    expect(x().bitmap_convert_new(src.handle, 2)).toBe(-ENOMEM);
    x().heap_fail_nth(0);
    expect(core.heapUsed()).toBe(used);
    src.dispose();
  });

  it('the typed API throws InvalidArgumentError, including for numbers that are not u32', () => {
    const was = bm.toBytes();
    expect(() => DirtyBitmap.create(core, 1.5)).toThrow(InvalidArgumentError);
    expect(() => DirtyBitmap.create(core, 2 ** 32 + 1)).toThrow(InvalidArgumentError);
    expect(() => bm.set(-1)).toThrow(InvalidArgumentError);
    expect(() => bm.count(N + 1)).toThrow(InvalidArgumentError);
    expect(() => bm.setBatch(new Uint32Array([1, N]))).toThrow(InvalidArgumentError);
    expect(() => bm.readInto(bm, 0, { count: 10 })).toThrow(InvalidArgumentError);
    expect(() => bm.readInto(other, 1, { count: 66 })).toThrow(InvalidArgumentError);
    expect(() => bm.orInto(bm, 10, 0, 11)).toThrow(InvalidArgumentError);
    expect(() => bm.convert(40)).toThrow(InvalidArgumentError);
    expect(bm.toBytes()).toEqual(was);
    expect(Array.from(other.runs())).toEqual([65, 1]);
  });
});
