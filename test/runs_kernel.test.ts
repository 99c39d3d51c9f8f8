// The run kernel (bitmap_runs, and bitmap_runs_all behind compactRunsView) at the edges of its
// blocks: it takes the words between a range's first and last word 64 at a time (only the words
// where something changes are visited), the words after the last whole block in one shorter
// block, and stages at most 2,048 changes before writing runs out (a block may add up to 4,096).
// Every case is compared with a bit-by-bit model, exactly.
import { beforeAll, describe, expect, it } from 'vitest';
import { DirtyBitmap } from '../src/core/dirty_bitmap.js';
import { DirtyReport } from '../src/export/dirty_report.js';
import { Prng } from '../src/sim/prng.js';
import { Core } from '../src/wasm.js';

let core: Core;
beforeAll(async () => {
  core = await Core.create();
});

/** The maximal runs of set bits of `bits` inside [first, first + count), at most `max`, as pairs. */
function modelRuns(bits: Uint8Array, first: number, count: number, max = Infinity): number[] {
  const out: number[] = [];
  let start = -1;
  for (let b = first; b <= first + count; b++) {
    const set = b < first + count && bits[b] === 1;
    if (set && start < 0) start = b;
    else if (!set && start >= 0) {
      out.push(start, b - start);
      start = -1;
      if (out.length / 2 === max) break;
    }
  }
  return out;
}

/** A bitmap of `nbits` and its model with the bits `set` chooses. */
function build(nbits: number, set: (b: number) => boolean): { bm: DirtyBitmap; bits: Uint8Array } {
  const bits = new Uint8Array(nbits);
  const list: number[] = [];
  for (let b = 0; b < nbits; b++) if (set(b)) (bits[b] = 1), list.push(b);
  const bm = DirtyBitmap.create(core, nbits);
  if (list.length) bm.setBatch(Uint32Array.from(list));
  return { bm, bits };
}

/** bitmap_runs over [first, first + count) in calls of at most `max` runs, resumed after each. */
function kernelRuns(bm: DirtyBitmap, first: number, count: number, max: number): number[] {
  const out = core.x.heap_alloc(8 * max);
  const got: number[] = [];
  try {
    for (let pos = first; pos < first + count; ) {
      const n = core.x.bitmap_runs(bm.handle, pos, first + count - pos, out, max);
      expect(n).toBeGreaterThanOrEqual(0);
      const u = core.u32().subarray(out >>> 2, (out >>> 2) + 2 * n);
      got.push(...u);
      if (n < max) break;
      pos = u[2 * n - 2] + u[2 * n - 1];
    }
  } finally {
    core.x.heap_free(out);
  }
  return got;
}

describe('run kernel blocks', () => {
  // 64 * 200 + 37 bits: the first word, three whole blocks of 64 words, a short block of 7 and
  // a last word of 37 bits.
  const NBITS = 64 * 200 + 37;
  const layouts: [string, (rng: Prng) => (b: number) => boolean][] = [
    ['0.1 %', (rng) => () => rng.float() < 0.001],
    ['1 %', (rng) => () => rng.float() < 0.01],
    ['10 %', (rng) => () => rng.float() < 0.1],
    ['50 %', (rng) => () => rng.float() < 0.5],
    ['99 %', (rng) => () => rng.float() < 0.99],
    ['every other bit', () => (b) => (b & 1) === 1],
    // Runs across every word and block edge: bits 62..66 of each word, and whole words at block edges.
    ['word and block edges', () => (b) => (b & 63) >= 62 || (b & 63) <= 2 || (b >= 64 * 64 && b < 64 * 66)],
  ];
  const ranges: [number, number][] = [
    [0, NBITS], // the whole bitmap
    [63, NBITS - 63], // the first word is its bit 63 alone
    [64, NBITS - 64 - 37], // from a word edge to one
    [5, 64 * 65 - 5], // the first word, one whole block, no short block
    [70, 64 * 66 - 70 + 1], // one whole block, a short block of 1 word, a last word of 1 bit
    [100, 64], // first and last word only
    [3000, 1], // one bit
  ];
  for (const [name, mk] of layouts) {
    it(`lists the runs of ${name} exactly, whole and in calls of 1, 3 and 1,000 runs`, () => {
      const { bm, bits } = build(NBITS, mk(new Prng(7)));
      try {
        for (const [first, count] of ranges) {
          const want = modelRuns(bits, first, count);
          expect(bm.runs(first, count).length, `${first}+${count}`).toBe(want.length);
          expect(Array.from(bm.runs(first, count)), `${first}+${count}`).toEqual(want);
          for (const max of [1, 3, 1000]) {
            expect(kernelRuns(bm, first, count, max), `${first}+${count} max ${max}`).toEqual(want);
          }
        }
        const r = new DirtyReport(bm, 0n, 4096n);
        expect(Array.from(r.compactRunsView())).toEqual(modelRuns(bits, 0, NBITS));
        r.releaseRuns();
      } finally {
        bm.dispose();
      }
    });
  }

  it('writes out a block that overfills the stage: 4,096 changes in one block of 64 words', () => {
    // Every other bit from word 1 on: 64 changes a word, 2,048 runs a block, so the stage
    // (written out at 2,048 changes) is passed by a whole block at once.
    const nbits = 64 * 300 + 11;
    const { bm, bits } = build(nbits, (b) => b >= 64 && (b & 1) === 0);
    try {
      const want = modelRuns(bits, 0, nbits);
      expect(want.length / 2).toBe((nbits - 64 + 1) >> 1);
      expect(Array.from(bm.runs())).toEqual(want);
      for (const max of [1, 1023, 1024, 1025, 2048, 2049, 5000]) {
        expect(kernelRuns(bm, 0, nbits, max), `max ${max}`).toEqual(want);
      }
      const u = core.x.heap_alloc(8 * 3);
      try {
        // A call that stops inside a block writes exactly `max` runs and nothing past them.
        core.u32().fill(0xdeadbeef, u >>> 2, (u >>> 2) + 6);
        expect(core.x.bitmap_runs(bm.handle, 0, nbits, u, 2)).toBe(2);
        expect(Array.from(core.u32().subarray(u >>> 2, (u >>> 2) + 6))).toEqual([64, 1, 66, 1, 0xdeadbeef, 0xdeadbeef]);
      } finally {
        core.x.heap_free(u);
      }
    } finally {
      bm.dispose();
    }
  });

  it('holds one run across blocks, and a run reaching the last bit of a size not a multiple of 64', () => {
    const nbits = 64 * 140 + 1;
    const { bm, bits } = build(nbits, (b) => (b >= 63 && b < 64 * 130 + 5) || b === nbits - 1);
    try {
      expect(Array.from(bm.runs())).toEqual([63, 64 * 130 + 5 - 63, nbits - 1, 1]);
      expect(Array.from(bm.runs())).toEqual(modelRuns(bits, 0, nbits));
      expect(kernelRuns(bm, 0, nbits, 1)).toEqual(modelRuns(bits, 0, nbits));
      // A range starting inside the run and ending inside it.
      expect(Array.from(bm.runs(100, 64 * 100))).toEqual([100, 6400]);
    } finally {
      bm.dispose();
    }
  });
});
