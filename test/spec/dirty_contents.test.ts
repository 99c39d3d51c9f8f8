// docs/conformance.md §7.5-§7.7 bitmap contents: the dirty-bitmap vectors V34-V60 and the kernel's
// write footprint on pre-filled user bitmaps (first-word OR, last-word overwrite, gap words
// untouched).
import { describe, expect, it } from 'vitest';
import { P, must, setup } from '../helpers/setups.js';

const ZERO8 = '00 00 00 00 00 00 00 00';
/** n bytes of `b` as hex pairs, byte 0 first. */
const rep = (b: string, n: number): string => Array(n).fill(b).join(' ');

describe('E. dirty bitmap vectors', () => {
  it('V34 basic pinned scope', async () => {
    const s = await setup('E');
    must(s.MAP(P(0x100), P(16)), 'MAP');
    must(s.START(), 'START');
    const RWP = 3; // IOMMU_READ | IOMMU_WRITE
    expect(s.PIN('M', P(0x100), 1, RWP)).toBe(1);
    expect(s.PIN('M', P(0x103), 1, RWP)).toBe(1);
    const get = () => s.GET(P(0x100), P(16), 8).hex;
    expect(get()).toBe('09 00 00 00 00 00 00 00');
    expect(get()).toBe('09 00 00 00 00 00 00 00');
    s.UNPIN('M', P(0x100), 1);
    expect(get()).toBe('09 00 00 00 00 00 00 00');
    expect(get()).toBe('08 00 00 00 00 00 00 00');
    s.UNPIN('M', P(0x103), 1);
    expect(get()).toBe('08 00 00 00 00 00 00 00');
    expect(get()).toBe(ZERO8);
  });

  it('V35 range starting in a gap (shift 2)', async () => {
    const s = await setup('E');
    must(s.MAP(P(2), P(4)), 'MAP');
    must(s.START(), 'START');
    must(s.PIN('M', P(2), 1), 'PIN');
    must(s.PIN('M', P(5), 1), 'PIN');
    const r = s.GET(0n, P(8), 8);
    expect([r.ret, r.hex]).toEqual([0, '24 00 00 00 00 00 00 00']);
  });

  async function v36(): Promise<Awaited<ReturnType<typeof setup>>> {
    const s = await setup('E');
    must(s.MAP(0n, P(70)), 'A');
    must(s.MAP(P(70), P(10)), 'B');
    must(s.START(), 'START');
    for (const pg of [63, 64, 69, 70, 79]) must(s.PIN('M', P(pg), 1), `PIN ${pg}`);
    return s;
  }

  it('V36 a dma straddling the 64-page boundary, plus a second dma [clean]', async () => {
    const s = await v36();
    const want = '00 00 00 00 00 00 00 80 61 80 00 00 00 00 00 00';
    expect(s.GET(0n, P(80), 16).hex).toBe(want);
    expect(s.GET(0n, P(80), 16).hex).toBe(want); // [kernel] would have byte 10 = 20 (bit 85)
    expect(s.GET(0n, P(80), 16).hex).toBe(want);
  });

  it('V36 fresh state, B alone first, then A alone', async () => {
    const s = await v36();
    expect(s.GET(P(70), P(10), 8).hex).toBe('01 02 00 00 00 00 00 00');
    expect(s.GET(0n, P(70), 16).hex).toBe('00 00 00 00 00 00 00 80 21 00 00 00 00 00 00 00');
  });

  it('V40 all-dirty (non-pinned scope)', async () => {
    const s = await setup('I');
    must(s.MAP(0n, P(3)), 'MAP');
    must(s.START(), 'START');
    for (let i = 0; i < 3; i++) expect(s.GET(0n, P(3), 8).hex).toBe('07 00 00 00 00 00 00 00');
  });

  it('V44 START after pins', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(4)), 'MAP');
    must(s.PIN('M', 0n, 2), 'PIN');
    must(s.START(), 'START');
    expect(s.GET(0n, P(4), 8).hex).toBe('03 00 00 00 00 00 00 00');
    s.UNPIN('M', 0n, 1);
    expect(s.GET(0n, P(4), 8).hex).toBe('03 00 00 00 00 00 00 00');
    expect(s.GET(0n, P(4), 8).hex).toBe('02 00 00 00 00 00 00 00');
  });

  it('V48 unmap-with-bitmap across two dmas', async () => {
    const s = await setup('E');
    must(s.MAP(P(0x10), P(3)), 'A');
    must(s.MAP(P(0x13), P(2)), 'B');
    must(s.START(), 'START');
    for (const pg of [0x10, 0x14]) {
      must(s.PIN('M', P(pg), 1), 'PIN');
      s.UNPIN('M', P(pg), 1);
    }
    expect(s.RW('M', P(0x12), 8, true).ret).toBe(0);
    const r = s.UMB(P(0x10), P(5), 8);
    expect([r.ret, r.size, r.hex]).toEqual([0, 0x5000n, '15 00 00 00 00 00 00 00']);
    expect(s.dmas()).toEqual([]);
  });

  it('V51 all-dirty over 70 pages', async () => {
    const s = await setup('I');
    must(s.MAP(0n, P(70)), 'MAP');
    must(s.START(), 'START');
    const want = 'ff ff ff ff ff ff ff ff 3f 00 00 00 00 00 00 00';
    expect(s.GET(0n, P(70), 16).hex).toBe(want);
    expect(s.UMB(0n, P(70), 8).ret).toBe(-22);
    expect(s.dmas()).toEqual([[0n, P(70)]]);
    const r = s.UMB(0n, P(70), 16);
    expect([r.ret, r.size, r.hex]).toEqual([0, 0x46000n, want]);
    expect(s.UMB(0n, P(70), 8).ret).toBe(-22);
  });

  it('V57 a range with no dmas', async () => {
    const s = await setup('E');
    must(s.MAP(P(0x100), P(1)), 'MAP');
    must(s.START(), 'START');
    const r = s.GET(0n, P(64), 8, { fill: 0xa5 });
    expect([r.ret, r.hex]).toEqual([0, rep('a5', 8)]);
  });

  it('V60 phantom bit, single dma [clean]', async () => {
    const s = await setup('E');
    must(s.MAP(P(1), P(2)), 'MAP');
    must(s.START(), 'START');
    expect(s.RW('M', P(1), 0x2000, true).ret).toBe(0);
    const got = [0, 1, 2, 3].map(() => s.GET(0n, P(4), 8).hex);
    expect(got).toEqual(['06 00 00 00 00 00 00 00', ZERO8, ZERO8, ZERO8]); // [kernel] 06, 08, 10, 20
  });

  it('V60 variant: phantom bits never appear on a later dma sharing the word, nor in a shift-0 unmap', async () => {
    const s = await setup('E');
    must(s.MAP(P(1), P(2)), 'A');
    must(s.MAP(P(4), P(2)), 'B');
    must(s.START(), 'START');
    expect(s.RW('M', P(1), 0x2000, true).ret).toBe(0);
    expect(s.GET(0n, P(6), 8).hex).toBe('06 00 00 00 00 00 00 00');
    expect(s.GET(0n, P(6), 8).hex).toBe(ZERO8);
    expect(s.GET(0n, P(6), 8).hex).toBe(ZERO8);
    expect(s.UMB(P(1), P(2), 8).hex).toBe(ZERO8);
  });
});

describe('§7.5 write footprint on pre-filled user bitmaps', () => {
  it('s != 0: the first word ORs every user bit, including bits above the dma end; gap words untouched', async () => {
    const s = await setup('E');
    must(s.MAP(P(2), P(4)), 'MAP');
    must(s.START(), 'START');
    must(s.PIN('M', P(2), 1), 'PIN');
    const r = s.GET(0n, P(128), 16, { fill: 0x11 });
    expect(r.hex).toBe(`15 ${rep('11', 15)}`);
  });

  it('s = 0: the last word is overwritten, bits past the dma end become 0', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(4)), 'MAP');
    must(s.START(), 'START');
    must(s.PIN('M', P(1), 1), 'PIN');
    expect(s.GET(0n, P(64), 8, { fill: 0xff }).hex).toBe('02 00 00 00 00 00 00 00');
    expect(s.GET(0n, P(4), 8, { fill: 0xff }).hex).toBe('02 00 00 00 00 00 00 00');
  });

  it('a following dma in the same word ORs its predecessor\'s word back in', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(4)), 'A');
    must(s.MAP(P(8), P(4)), 'B');
    must(s.START(), 'START');
    must(s.PIN('M', P(1), 1), 'PIN');
    must(s.PIN('M', P(9), 1), 'PIN');
    expect(s.GET(0n, P(12), 8, { fill: 0xff }).hex).toBe('02 02 00 00 00 00 00 00');
  });

  it('s != 0 across two words: first word ORed, last word overwritten', async () => {
    const s = await setup('E');
    must(s.MAP(P(60), P(10)), 'MAP');
    must(s.START(), 'START');
    must(s.PIN('M', P(60), 1), 'PIN');
    must(s.PIN('M', P(69), 1), 'PIN');
    const r = s.GET(0n, P(128), 16, { fill: 0x80 });
    expect(r.hex).toBe('80 80 80 80 80 80 80 90 20 00 00 00 00 00 00 00');
  });

  it('words no dma touches keep the caller\'s content', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(4)), 'A');
    must(s.MAP(P(128), P(4)), 'B');
    must(s.START(), 'START');
    must(s.PIN('M', 0n, 1), 'PIN');
    must(s.PIN('M', P(129), 1), 'PIN');
    const r = s.GET(0n, P(192), 24, { fill: 0x5a });
    expect(r.hex).toBe(`01 00 00 00 00 00 00 00 ${rep('5a', 8)} 02 00 00 00 00 00 00 00`);
  });

  it('unmap with bitmap has the same footprint, relative to unmap.iova', async () => {
    const s = await setup('E');
    must(s.MAP(P(2), P(4)), 'A');
    must(s.MAP(P(64), P(4)), 'B');
    must(s.START(), 'START');
    expect(s.RW('M', P(3), 8, true).ret).toBe(0);
    expect(s.RW('M', P(64), 8, true).ret).toBe(0);
    const r = s.UMB(0n, P(192), 24, { fill: 0x11 });
    expect([r.ret, r.size]).toEqual([0, P(8)]);
    expect(r.hex).toBe(`19 ${rep('11', 7)} 01 00 00 00 00 00 00 00 ${rep('11', 8)}`);
  });
});
