import { beforeAll, describe, expect, it } from 'vitest';
import { DirtyBitmap } from '../src/core/dirty_bitmap.js';
import { InvalidArgumentError } from '../src/errors.js';
import { Core } from '../src/wasm.js';
import { BitmapModel } from './model/dirty_bitmap_model.js';
import { bitmapHelpers, expectBytes, randomPages, SIZES } from './helpers/bitmap_fixture.js';
import { rng } from './helpers/rng.js';

let core: Core;
beforeAll(async () => {
  core = await Core.create();
});
const { pair, buffer, bytesAt } = bitmapHelpers(() => core);

describe.each(SIZES)('dirty_bitmap of %i bits', (nbits) => {
  it('starts zeroed; set, test, count and nextSet agree with the model at the edges', () => {
    const bm = DirtyBitmap.create(core, nbits);
    const m = new BitmapModel(nbits);
    expect(bm.nbits).toBe(nbits);
    expect(core.x.bitmap_nbits(bm.handle)).toBe(nbits);
    expect(core.x.bitmap_words(bm.handle)).toBe(bm.handle + 16);
    expect(core.x.bitmap_words(bm.handle) % 16).toBe(0);
    expectBytes(bm.toBytes(), new Uint8Array(Math.ceil(nbits / 64) * 8));
    expect(bm.nextSet(0)).toBe(-1);
    for (const b of [0, 31, 32, 62, 63, 64, 65, 127, 128, nbits - 1].filter((b) => b < nbits)) {
      bm.set(b);
      m.set(b);
    }
    expectBytes(bm.toBytes(), m.bytes);
    for (let i = 0; i <= nbits; i++) {
      expect(core.x.bitmap_next_set(bm.handle, i)).toBe(m.nextSet(i));
      if (i < nbits) expect(bm.test(i)).toBe(m.test(i) === 1);
      expect(bm.count(0, i)).toBe(m.count(0, i));
      expect(bm.count(i)).toBe(m.count(i, nbits - i));
    }
    bm.dispose();
  });

  it('sets and clears ranges, masking only the end words', () => {
    const [bm, m] = pair(nbits, 300, nbits);
    const r = rng(nbits * 3);
    for (let t = 0; t < 60; t++) {
      const first = r(nbits + 1);
      const count = r(nbits - first + 1);
      if (t % 2) {
        bm.setRange(first, count);
        m.setRange(first, count);
      } else {
        bm.clearRange(first, count);
        m.clearRange(first, count);
      }
      expectBytes(bm.toBytes(), m.bytes);
      expect(bm.count(first, count)).toBe(m.count(first, count));
    }
    bm.dispose();
  });

  it('reads at every s in 0..63 into zeroed and pre-filled destinations, writing exactly the footprint', () => {
    const r = rng(nbits + 11);
    for (let s = 0; s < 64; s++) {
      for (const fill of [0x00, 0xa5]) {
        const f = r(nbits);
        for (const [first, count] of [[0, nbits], [0, r(nbits) + 1], [f, r(nbits - f) + 1]]) {
          for (const clear of [false, true]) {
            const [bm, m] = pair(nbits, 500, s * 131 + first + (clear ? 7 : 0));
            const L = Math.ceil((count + s) / 64);
            const buf = buffer(L + 4, fill);
            const want = bytesAt(buf, (L + 4) * 8);
            expect(m.read(first, count, want, 2, s, clear)).toBe(L);
            expect(core.x.bitmap_read(bm.handle, first, count, buf + 16, s, clear ? 1 : 0)).toBe(L);
            const got = bytesAt(buf, (L + 4) * 8);
            expectBytes(got, want);
            // Words outside [2, 2 + L) keep the fill; word 2 keeps the old bits when s != 0.
            expect(got.subarray(0, 16).every((b) => b === fill)).toBe(true);
            expect(got.subarray((2 + L) * 8).every((b) => b === fill)).toBe(true);
            if (s !== 0) for (let b = 0; b < 8; b++) expect(got[16 + b] & fill).toBe(fill);
            expectBytes(bm.toBytes(), m.bytes);
            core.x.heap_free(buf);
            bm.dispose();
          }
        }
      }
    }
  });

  it('emits any window of the stream, in pieces that compose to the whole read', () => {
    const r = rng(nbits + 5);
    for (let t = 0; t < 40; t++) {
      const s = r(64);
      const first = r(nbits);
      const count = r(nbits - first) + 1;
      const [bm, m] = pair(nbits, 400, t);
      const L = Math.ceil((count + s) / 64);
      const whole = buffer(L, 0x3c);
      const pieces = buffer(L, 0x3c);
      core.x.bitmap_read(bm.handle, first, count, whole, s, 0);
      for (let from = 0; from < L; ) {
        const n = Math.min(L - from, r(5) + 1);
        expect(core.x.bitmap_emit(bm.handle, first, count, s, pieces + from * 8, from, n)).toBe(n);
        from += n;
      }
      expect(bytesAt(pieces, L * 8)).toEqual(bytesAt(whole, L * 8));
      const from = r(L);
      const n = r(L - from) + 1;
      const frame = buffer(n + 1, 0x77);
      const want = bytesAt(frame, (n + 1) * 8);
      expect(m.emit(first, count, s, want, 0, from, n)).toBe(n);
      expect(core.x.bitmap_emit(bm.handle, first, count, s, frame, from, n)).toBe(n);
      expect(bytesAt(frame, (n + 1) * 8)).toEqual(want);
      expectBytes(bm.toBytes(), m.bytes); // emit never clears
      for (const p of [whole, pieces, frame]) core.x.heap_free(p);
      bm.dispose();
    }
  });

  it('ORs ranges at any bit offset, into another bitmap and inside one', () => {
    const r = rng(nbits + 9);
    for (let t = 0; t < 40; t++) {
      const other = SIZES[r(SIZES.length)];
      const [src, ms] = pair(nbits, 500, t);
      const [dst, md] = pair(other, 100, t + 1000);
      const count = r(Math.min(nbits, other) + 1);
      const sf = r(nbits - count + 1);
      const df = r(other - count + 1);
      src.orInto(dst, df, sf, count);
      expect(ms.orInto(md, df, sf, count)).toBe(0);
      expectBytes(dst.toBytes(), md.bytes);
      expectBytes(src.toBytes(), ms.bytes);
      if (2 * count <= nbits) {
        const a = r(nbits - 2 * count + 1); // two disjoint ranges of one bitmap
        const b = a + count + r(nbits - a - 2 * count + 1);
        src.orInto(src, b, a, count);
        expect(ms.orInto(ms, b, a, count)).toBe(0);
        expectBytes(src.toBytes(), ms.bytes);
      }
      src.dispose();
      dst.dispose();
    }
  });

  it('lists runs, maximal inside the range, resuming after a full chunk', () => {
    const bm = DirtyBitmap.create(core, nbits);
    const m = new BitmapModel(nbits);
    for (const [f, c] of [[0, 1], [3, 4], [62, 4], [63, 1], [64, 64], [128, 1], [130, 9]]) {
      if (f + c > nbits) continue;
      bm.setRange(f, c);
      m.setRange(f, c);
    }
    const buf = core.x.heap_alloc(16 * 8);
    for (let max = 1; max <= 6; max++) {
      const n = core.x.bitmap_runs(bm.handle, 0, nbits, buf, max); // chunks ending exactly at max
      expect(Array.from(core.u32().subarray(buf / 4, buf / 4 + 2 * n))).toEqual(m.runs(0, nbits, max));
    }
    const r = rng(nbits);
    for (let t = 0; t < 50; t++) {
      const first = t === 0 ? 0 : r(nbits + 1);
      const count = t === 0 ? nbits : r(nbits - first + 1);
      expect(Array.from(bm.runs(first, count))).toEqual(m.runs(first, count));
      const max = r(3) + 1;
      const n = core.x.bitmap_runs(bm.handle, first, count, buf, max);
      expect(Array.from(core.u32().subarray(buf / 4, buf / 4 + 2 * n))).toEqual(m.runs(first, count, max));
    }
    core.x.heap_free(buf);
    bm.dispose();
  });

  it('converts page sizes, k from -6 to +12, against the model', () => {
    for (const perMille of [5, 500]) {
      const [bm, m] = pair(nbits, perMille, nbits + perMille);
      for (let k = -6; k <= 12; k++) {
        const want = m.convert(k) as BitmapModel;
        const got = bm.convert(k);
        expect(got.nbits).toBe(want.nbits);
        expectBytes(got.toBytes(), want.bytes);
        got.dispose();
      }
      bm.dispose();
    }
  });
});

describe('dirty_bitmap: long bitmaps and word edges', () => {
  it('converts bitmaps far longer than 256 bits at odd lengths', () => {
    for (const nbits of [257, 4099, 100_003, 64 * 4096 + 1]) {
      const [bm, m] = pair(nbits, 20, nbits);
      bm.setRange(nbits - 70, 70); // a dense tail: the last coarse and fine words are partial
      m.setRange(nbits - 70, 70);
      for (let k = -6; k <= 12; k++) {
        const got = bm.convert(k);
        expectBytes(got.toBytes(), (m.convert(k) as BitmapModel).bytes);
        got.dispose();
      }
      bm.dispose();
    }
  });

  it('converts a long sparse bitmap: coarse groups both empty and not, at every k from 1 to 16', () => {
    const nbits = 64 * 8192 + 99; // 2^9 words per coarse bit at k = 15: whole coarse words up to k = 12
    const [bm, m] = pair(nbits, 0.2, 11); // 0.02 %: a group of 4,096 bits is empty half the time
    for (let k = 1; k <= 16; k++) {
      const got = bm.convert(k);
      const want = (m.convert(k) as BitmapModel).bytes;
      expectBytes(got.toBytes(), want);
      if (k >= 9 && k <= 12) expect(got.count()).toBeLessThan(got.nbits); // not all ones
      if (k <= 12) expect(got.count()).toBeGreaterThan(0);
      got.dispose();
    }
    bm.dispose();
  });

  it('reads and clears a long sparse bitmap in several steps at s = 13 (dst word 3)', () => {
    const nbits = 64 * 3000 + 17;
    const [bm, m] = pair(nbits, 10, 42);
    const dst = DirtyBitmap.create(core, nbits + 205);
    const md = new BitmapModel(nbits + 205);
    dst.setRange(0, 300); // old bits: word 3 keeps them, later words are overwritten
    md.setRange(0, 300);
    expect(bm.readInto(dst, 205, { clear: true })).toBe(Math.ceil((nbits + 13) / 64));
    m.read(0, nbits, md.bytes, 3, 13, true);
    expectBytes(dst.toBytes(), md.bytes);
    expect(bm.count()).toBe(0);
    expectBytes(bm.toBytes(), m.bytes);
    bm.dispose();
    dst.dispose();
  });

  it('reads, ORs and counts long ranges split over the interleaved streams, segment seams included', () => {
    const nbits = 64 * 1500 + 29;
    const r = rng(77);
    for (let t = 0; t < 24; t++) {
      const [bm, m] = pair(nbits, t % 2 ? 500 : 8, 100 + t);
      const s = t < 4 ? [0, 13, 63, 1][t] : r(64);
      const first = t < 4 ? 0 : r(nbits >> 2);
      const count = t < 4 ? nbits : nbits - first - r(nbits >> 2);
      const L = Math.ceil((count + s) / 64);
      const buf = buffer(L + 2, 0xc3);
      const want = bytesAt(buf, (L + 2) * 8);
      expect(m.read(first, count, want, 1, s, t % 3 !== 0)).toBe(L);
      expect(core.x.bitmap_read(bm.handle, first, count, buf + 8, s, t % 3 !== 0 ? 1 : 0)).toBe(L);
      expectBytes(bytesAt(buf, (L + 2) * 8), want);
      expectBytes(bm.toBytes(), m.bytes);
      const [other, mo] = pair(nbits, 50, 200 + t);
      const c = count - s - 1;
      bm.orInto(other, s + 1, first, c);
      expect(m.orInto(mo, s + 1, first, c)).toBe(0);
      expectBytes(other.toBytes(), mo.bytes);
      expect(other.count(first, count - first)).toBe(mo.count(first, count - first));
      core.x.heap_free(buf);
      for (const b of [bm, other]) b.dispose();
    }
  });

  it('reads and clears ranges over several 8192-word blocks of the stream, block seams included', () => {
    const nbits = 64 * (2 * 8192 + 700) + 45;
    const r = rng(91);
    for (let t = 0; t < 8; t++) {
      const [bm, m] = pair(nbits, t % 2 ? 3000 : 40, 300 + t);
      const s = [0, 13, 63, 1][t % 4];
      const first = t < 4 ? 0 : r(64 * 8192);
      const count = t < 4 ? nbits : nbits - first - r(64 * 300);
      const L = Math.ceil((count + s) / 64);
      const buf = buffer(L + 2, 0xc3);
      const want = bytesAt(buf, (L + 2) * 8);
      expect(m.read(first, count, want, 1, s, true)).toBe(L);
      expect(core.x.bitmap_read(bm.handle, first, count, buf + 8, s, 1)).toBe(L);
      expectBytes(bytesAt(buf, (L + 2) * 8), want);
      expectBytes(bm.toBytes(), m.bytes);
      expect(bm.count(first, count)).toBe(0);
      core.x.heap_free(buf);
      bm.dispose();
    }
  });

  it('reproduces vectors V35 and V36 [clean] through readInto', () => {
    const a = DirtyBitmap.create(core, 4); // V35: dma at page 2, pins at pages 2 and 5
    a.set(0);
    a.set(3);
    const u = DirtyBitmap.create(core, 8);
    a.readInto(u, 2, { clear: true });
    expect(Array.from(u.toBytes())).toEqual([0x24, 0, 0, 0, 0, 0, 0, 0]);
    const A = DirtyBitmap.create(core, 70); // V36: pins at 63, 64, 69 (A) and 70, 79 (B)
    const B = DirtyBitmap.create(core, 10);
    for (const p of [63, 64, 69]) A.set(p);
    for (const p of [0, 9]) B.set(p);
    const U = DirtyBitmap.create(core, 80);
    A.readInto(U, 0, { clear: true });
    B.readInto(U, 70, { clear: true });
    expect(Array.from(U.toBytes())).toEqual([0, 0, 0, 0, 0, 0, 0, 0x80, 0x61, 0x80, 0, 0, 0, 0, 0, 0]);
    for (const bm of [a, u, A, B, U]) bm.dispose();
  });

  it('handles a bitmap of 2^31 bits: counts past i32, converts up to the limit', () => {
    const big = DirtyBitmap.create(core, 2 ** 31);
    big.setRange(0, 2 ** 31);
    expect(core.x.bitmap_count(big.handle, 0, 2 ** 31)).toBe(-(2 ** 31));
    expect(big.count()).toBe(2 ** 31);
    expect(core.x.bitmap_nbits(big.handle) >>> 0).toBe(2 ** 31);
    expect(big.nextSet(2 ** 31 - 1)).toBe(2 ** 31 - 1);
    expect(() => big.convert(-1)).toThrow(InvalidArgumentError);
    const c = big.convert(12);
    expect(c.nbits).toBe(2 ** 19);
    expect(c.count()).toBe(2 ** 19);
    big.clear();
    expect(big.nextSet(0)).toBe(-1);
    // A batch into 2^31 bits is grouped (1 MiB regions, 8 MiB groups): every page lands.
    const pages = randomPages(40_000, 2 ** 31, 9);
    pages[0] = 2 ** 31 - 1;
    pages[1] = 0;
    pages[2] = 2 ** 30;
    big.setBatch(pages);
    const distinct = [...new Set(pages)].sort((p, q) => p - q);
    expect(big.count()).toBe(distinct.length);
    const runs = big.runs();
    expect(Array.from(runs.filter((_, i) => i % 2 === 0))).toEqual(distinct.filter((p, i) => i === 0 || distinct[i - 1] !== p - 1));
    c.dispose();
    big.dispose();
  });

  it('sets a large batch into a large bitmap through its region sort, checking every page first', () => {
    const nbits = 2 ** 26 + 3; // 8 MiB: batches of a page per line or more are sorted first
    const bm = DirtyBitmap.create(core, nbits);
    const m = new BitmapModel(nbits);
    const pages = randomPages(300_000, nbits, 5);
    pages[7] = nbits - 1;
    pages[8] = 0;
    bm.setBatch(pages);
    m.setBatch(pages);
    expectBytes(bm.toBytes(), m.bytes);
    pages[299_999] = nbits; // one page past the end: nothing changes
    const before = core.heapUsed();
    expect(() => bm.setBatch(pages)).toThrow(InvalidArgumentError);
    expect(core.heapUsed()).toBe(before);
    expectBytes(bm.toBytes(), m.bytes);
    pages[299_999] = 12345;
    for (const nth of [1, 2]) {
      // No scratch for the sort (the grouped copy, then one group's buffer): batch order, same bits.
      const shifted = pages.map((p) => (p + nth) % nbits);
      core.x.heap_fail_nth(nth);
      bm.setBatch(shifted);
      core.x.heap_fail_nth(0);
      m.setBatch(shifted);
      expectBytes(bm.toBytes(), m.bytes);
    }
    // Every page in the last region but one, or in two regions of different groups.
    const lastRegion = new Uint32Array(300_000).map((_, i) => nbits - 2 - ((i * 7) % 4096));
    const twoRegions = new Uint32Array(300_000).map((_, i) => (i & 1 ? nbits - 1 - (i % 1000) : i % 1000));
    for (const batch of [lastRegion, twoRegions]) {
      bm.setBatch(batch);
      m.setBatch(batch);
      expectBytes(bm.toBytes(), m.bytes);
    }
    expect(bm.count()).toBe(m.count(0, nbits));
    bm.dispose();
  });

  it('sets a batch through one reusable buffer and gathers many runs in chunks', () => {
    const nbits = 200_000;
    const before = core.heapUsed();
    const bm = DirtyBitmap.create(core, nbits);
    const m = new BitmapModel(nbits);
    const pages = new Uint32Array(20_000).map((_, i) => i * 10 + (i % 3));
    bm.setBatch(pages);
    m.setBatch(pages);
    const used = core.heapUsed();
    bm.setBatch(pages.subarray(0, 5)); // fits the buffer already held: no new allocation
    expect(core.heapUsed()).toBe(used);
    const runs = bm.runs();
    expect(runs.length).toBe(40_000);
    expect(Array.from(runs)).toEqual(m.runs(0, nbits));
    expect(bm.toTypedArray()).toEqual(bm.asTypedArray());
    expect(new Uint8Array(bm.toTypedArray().buffer)).toEqual(m.bytes);
    bm.dispose();
    bm.dispose(); // idempotent
    expect(() => bm.set(0)).toThrow(/dispose/);
    expect(core.heapUsed()).toBe(before); // the bitmap and its batch buffer are both freed
  });
});
