// Helpers shared by the dirty-bitmap test files: bitmaps paired with their model, raw heap
// buffers, byte comparisons that name the first differing word.
import { expect } from 'vitest';
import { DirtyBitmap } from '../../src/core/dirty_bitmap.js';
import type { Core } from '../../src/wasm.js';
import { BitmapModel } from '../model/dirty_bitmap_model.js';
import { rng } from './rng.js';

/** Bitmap sizes that cross every word edge. */
export const SIZES = [1, 7, 8, 31, 32, 63, 64, 65, 127, 129, 64 * 37 + 5];

/** `n` random pages in [0, span). */
export function randomPages(n: number, span: number, seed: number): Uint32Array {
  const r = rng(seed);
  return new Uint32Array(n).map(() => r(span));
}

/** Byte arrays are equal; on a difference, reports the first differing word (fast for big arrays). */
export function expectBytes(got: Uint8Array, want: Uint8Array): void {
  expect(got.length).toBe(want.length);
  if (Buffer.compare(got, want) === 0) return;
  const i = got.findIndex((b, j) => b !== want[j]) & ~7;
  expect([i, ...got.subarray(i, i + 8)]).toEqual([i, ...want.subarray(i, i + 8)]);
}

/** Helpers over the core `core()` returns (set in a beforeAll). */
export function bitmapHelpers(core: () => Core) {
  return {
    /** A bitmap and its model with the same random bits (about `perMille` per thousand set). */
    pair(nbits: number, perMille: number, seed: number): [DirtyBitmap, BitmapModel] {
      const bm = DirtyBitmap.create(core(), nbits);
      const m = new BitmapModel(nbits);
      const pages = randomPages(Math.ceil((nbits * perMille) / 1000), nbits, seed);
      bm.setBatch(pages);
      m.setBatch(pages);
      return [bm, m];
    },
    /** A raw heap buffer of `words` words filled with `fill`; returns its address. */
    buffer(words: number, fill: number): number {
      const p = core().x.heap_alloc(words * 8);
      core().u8().fill(fill, p, p + words * 8);
      return p;
    },
    bytesAt: (p: number, n: number) => core().u8().slice(p, p + n),
  };
}
