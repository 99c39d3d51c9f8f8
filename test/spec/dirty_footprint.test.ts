// docs/conformance.md §7.5 at bitmap word edges: one dma at page offset o (so s = o mod 64) with
// nbits pages, all or some pages dirty, read into a pre-filled user bitmap. The expected words
// follow the §7.5 steps literally: word w = shifted word 0 OR U[w] when s != 0 (else shifted word
// 0), words w+1 .. w+L-1 = shifted words, every other word untouched. A second read checks the
// [clean] choice of docs/conformance.md §10.1 across word edges: no phantom bits anywhere.
import { describe, expect, it } from 'vitest';
import { hex } from '../helpers/uapi_structs.js';
import { must, P, setup } from '../helpers/setups.js';

const FILL = 0x5a;
const FILL_WORD = 0x5a5a5a5a5a5a5a5an;
const MASK64 = (1n << 64n) - 1n;

/** Expected user bitmap bytes after one dma at bit o with dirty bits `dirty` (relative). */
function expected(nwords: number, o: number, nbits: number, dirty: number[]): Uint8Array {
  const w = o >> 6;
  const s = o & 63;
  const L = Math.ceil((nbits + s) / 64);
  const words = Array<bigint>(nwords).fill(FILL_WORD);
  const shifted = Array<bigint>(L).fill(0n);
  for (const b of dirty) shifted[(b + s) >> 6] |= 1n << BigInt((b + s) & 63);
  for (let i = 0; i < L; i++) words[w + i] = i === 0 && s !== 0 ? shifted[0] | words[w] : shifted[i];
  const out = new Uint8Array(nwords * 8);
  const dv = new DataView(out.buffer);
  words.forEach((x, i) => dv.setBigUint64(i * 8, x & MASK64, true));
  return out;
}

const offsets = [0, 1, 31, 63, 64, 65];
const sizes = [1, 2, 63, 64, 65, 127, 128, 129, 200];
const cases = offsets.flatMap((o) => sizes.map((n) => [o, n] as const));

/** Dirty page sets: every page, or the first, middle and last. */
const patterns = {
  all: (n: number) => Array.from({ length: n }, (_, i) => i),
  sparse: (n: number) => [...new Set([0, n >> 1, n - 1])],
};

describe.each(Object.keys(patterns) as (keyof typeof patterns)[])('§7.5 footprint at word edges (%s pages dirty)', (pat) => {
  it.each(cases)('GET: dma at page %i, %i pages', async (o, n) => {
    const s = await setup('E');
    must(s.MAP(P(o), P(n)), 'MAP');
    must(s.START(), 'START');
    const dirty = patterns[pat](n);
    if (pat === 'all') must(s.RW('M', P(o), n * 0x1000, true).ret, 'RW');
    else for (const b of dirty) must(s.RW('M', P(o + b), 1, true).ret, 'RW');
    const nwords = Math.ceil((o + n) / 64) + 1; // one spare word past the range: never written
    const first = s.GET(0n, P(o + n), nwords * 8, { fill: FILL });
    expect(first.ret).toBe(0);
    expect(first.hex).toBe(hex(expected(nwords, o, n, dirty)));
    const second = s.GET(0n, P(o + n), nwords * 8, { fill: FILL });
    expect(second.hex).toBe(hex(expected(nwords, o, n, [])));
  });

  it.each(cases)('unmap with bitmap: dma at page %i, %i pages', async (o, n) => {
    const s = await setup('E');
    must(s.MAP(P(o), P(n)), 'MAP');
    must(s.START(), 'START');
    const dirty = patterns[pat](n);
    if (pat === 'all') must(s.RW('M', P(o), n * 0x1000, true).ret, 'RW');
    else for (const b of dirty) must(s.RW('M', P(o + b), 1, true).ret, 'RW');
    const nwords = Math.ceil((o + n) / 64) + 1;
    const r = s.UMB(0n, P(o + n), nwords * 8, { fill: FILL });
    expect([r.ret, r.size]).toEqual([0, P(n)]);
    expect(r.hex).toBe(hex(expected(nwords, o, n, dirty)));
  });
});

describe('§7.5 two dmas sharing boundary words', () => {
  it.each([[60, 10, 70, 5], [1, 63, 64, 64], [3, 130, 133, 3], [64, 1, 65, 63]] as const)(
    'A at %i (%i pages), B at %i (%i pages): B ORs A\'s words back in, every read',
    async (oa, na, ob, nb) => {
      const s = await setup('E');
      must(s.MAP(P(oa), P(na)), 'A');
      must(s.MAP(P(ob), P(nb)), 'B');
      must(s.START(), 'START');
      // Pins are re-reported on every read; the last page of A and first of B sit at a boundary.
      for (const pg of [oa, oa + na - 1, ob, ob + nb - 1]) must(s.PIN('M', P(pg), 1), `PIN ${pg}`);
      const end = ob + nb;
      const nwords = Math.ceil(end / 64);
      const want = new Uint8Array(nwords * 8);
      for (const pg of [oa, oa + na - 1, ob, ob + nb - 1]) want[pg >> 3] |= 1 << (pg & 7);
      for (let i = 0; i < 3; i++) expect(s.GET(0n, P(end), nwords * 8).hex).toBe(hex(want));
    },
  );
});
