// Benchmarks of the dirty bitmap's Wasm kernels, each beside the plain-TS model (test/model) and
// the memory-copy bound (Buffer.copy of the same bytes inside linear memory), at the bitmap sizes
// of 1 GiB, 64 GiB and 1 TiB tracked at 4 KiB pages and at 0.1 %, 1 % and 50 % dirty pages.
import { randomFillSync } from 'node:crypto';
import { DirtyBitmap } from '../src/core/dirty_bitmap.js';
import { Core } from '../src/wasm.js';
import { BitmapModel } from '../test/model/dirty_bitmap_model.js';
import { rng } from '../test/helpers/rng.js';
import { ratioOf, type BenchCase, type BenchGroup, type GroupResult } from './harness.js';

const SIZES = [
  { name: '1 GiB', bits: 2 ** 18 }, // 32 KiB bitmap
  { name: '64 GiB', bits: 2 ** 24 }, // 2 MiB bitmap
  { name: '1 TiB', bits: 2 ** 28 }, // 32 MiB bitmap: the size the targets are stated for
];
const DENSITIES = [
  { name: '0.1%', p: 0.001 },
  { name: '1%', p: 0.01 },
  { name: '50%', p: 0.5 },
];
const TARGET_BITS = 2 ** 28;
const PAD = 256; // spare bits past the tracked range, room for the shift to bit 205
const RUNS_CHUNK = 4096;

let sink = 0; // results of walks land here so no loop is dead code

const bytes = (n: number) => (n >= 2 ** 20 ? `${n / 2 ** 20} MiB` : `${n / 1024} KiB`);

/** `n` random pages in [lo, lo + span). */
function randomPages(n: number, lo: number, span: number, seed: number): Uint32Array {
  const r = rng(seed);
  return new Uint32Array(n).map(() => lo + r(span));
}

/** Dirties about p of bits [0, bits) of bm: random bytes at 50 %, a random batch below that. */
function dirty(core: Core, bm: DirtyBitmap, bits: number, p: number, seed: number): void {
  if (p >= 0.5) {
    const w = core.x.bitmap_words(bm.handle);
    randomFillSync(core.u8().subarray(w, w + bits / 8));
  } else {
    bm.setBatch(randomPages(Math.round(bits * p), 0, bits, seed));
  }
}

/** A model holding the same bits as bm. */
function modelOf(bm: DirtyBitmap): BitmapModel {
  const m = new BitmapModel(bm.nbits);
  m.bytes.set(bm.toBytes());
  return m;
}

/** Copies `bytes` bytes from a to b in linear memory through Buffer views (the copy bound). */
function copier(core: Core, a: number, b: number, bytes: number): () => void {
  let buf: ArrayBuffer | undefined;
  let from = Buffer.alloc(0);
  let to = Buffer.alloc(0);
  return () => {
    if (buf !== core.memory.buffer) {
      buf = core.memory.buffer;
      from = Buffer.from(buf, a, bytes);
      to = Buffer.from(buf, b, bytes);
    }
    from.copy(to);
  };
}

/** A heap buffer holding `pages`; its address. */
function stage(core: Core, pages: Uint32Array): number {
  const p = core.x.heap_alloc(pages.length * 4);
  core.u32().set(pages, p >>> 2);
  return p;
}

/** Group scaffolding: a fresh core per group, built in setup and dropped in teardown. */
function group(name: string, build: (core: Core) => BenchCase[], extra: Partial<BenchGroup> = {}): BenchGroup {
  const cases: BenchCase[] = [];
  return {
    name,
    baseline: 'memcpy',
    cases,
    async setup() {
      const core = await Core.create();
      cases.push(...build(core));
    },
    teardown() {
      cases.length = 0;
    },
    ...extra,
  };
}

const within = (limit: number, ...names: string[]) => (r: GroupResult) => names.every((n) => ratioOf(r, n) <= limit);

/**
 * Read-and-clear at bit offset 205 (dst word 3, s = 13), then the pinned pages set again with
 * bitmap_set_batch. Two prepared bitmaps A and B alternate as source and destination: odd calls
 * read A[0, S) into B at bit 205, even calls read B[205, 205 + S) back into A at bit 0 (the same
 * shifted copy, shift 13 instead of 51, first word stored instead of ORed). Each read writes the
 * next source exactly, so every call starts from the same dirty state and nothing is re-dirtied
 * outside the measured call: there is nothing to subtract. 'read-and-clear alone' is the same
 * alternation without the pins; the pins' share of the target case is the difference of the
 * two. 'set_batch alone' repeats the pins on lines its own last call left in the cache, so it
 * understates their cost right after a 32 MiB read.
 */
function readGroup(size: (typeof SIZES)[number], d: (typeof DENSITIES)[number]): BenchGroup {
  const S = size.bits;
  const pins = Math.min(65536, S / 4096); // 65,536 at 1 TiB; the same 1 in 4,096 below
  const target = S === TARGET_BITS && d.p === 0.01 ? 1.5 : S === TARGET_BITS && d.p === 0.5 ? 1.7 : 0;
  return group(
    `dirty_bitmap: read-and-clear at bit 205 + set_batch of ${pins} pinned pages, ${size.name}, ${d.name}`,
    (core) => {
      const x = core.x;
      const A = DirtyBitmap.create(core, S + PAD);
      const B = DirtyBitmap.create(core, S + PAD);
      dirty(core, A, S, d.p, 1);
      const pinA = stage(core, randomPages(pins, 0, S, 2));
      const pinB = stage(core, randomPages(pins, 205, S, 3));
      const wa = x.bitmap_words(A.handle);
      const wb = x.bitmap_words(B.handle);
      const [ma, mb] = [modelOf(A), modelOf(B)];
      const pinsA = randomPages(pins, 0, S, 2);
      const pinsB = randomPages(pins, 205, S, 3);
      const scratch = x.heap_alloc(S / 8);
      let flip = false; // false: the dirty pattern is in A[0, S); true: in B[205, 205 + S)
      let mflip = false;
      const read = () => {
        flip = !flip;
        if (flip) x.bitmap_read(A.handle, 0, S, wb + 24, 13, 1);
        else x.bitmap_read(B.handle, 205, S, wa, 0, 1);
      };
      return [
        { name: 'memcpy', fn: copier(core, wa, scratch, S / 8), units: S, unit: 'pages' },
        {
          name: 'wasm read-and-clear + set_batch',
          units: S,
          unit: 'pages',
          fn: () => {
            read();
            if (flip) x.bitmap_set_batch(A.handle, pinA, pins);
            else x.bitmap_set_batch(B.handle, pinB, pins);
          },
        },
        { name: 'wasm read-and-clear alone', fn: read },
        {
          name: 'wasm set_batch alone (lines warm)',
          fn: () => x.bitmap_set_batch(flip ? A.handle : B.handle, flip ? pinA : pinB, pins), // the cleared one
          units: pins,
          unit: 'pages',
        },
        {
          name: 'model read-and-clear + setBatch',
          fn: () => {
            mflip = !mflip;
            if (mflip) {
              ma.read(0, S, mb.bytes, 3, 13, true);
              ma.setBatch(pinsA);
            } else {
              mb.read(205, S, ma.bytes, 0, 0, true);
              mb.setBatch(pinsB);
            }
          },
        },
      ];
    },
    target ? { target: `wasm read-and-clear + set_batch <= ${target}x memcpy`, check: within(target, 'wasm read-and-clear + set_batch') } : {},
  );
}

function countGroup(size: (typeof SIZES)[number], d: (typeof DENSITIES)[number]): BenchGroup {
  const S = size.bits;
  return group(
    `dirty_bitmap: count ${size.name}, ${d.name}`,
    (core) => {
      const a = DirtyBitmap.create(core, S);
      const b = DirtyBitmap.create(core, S);
      dirty(core, a, S, d.p, 4);
      const m = modelOf(a);
      const h = a.handle;
      return [
        { name: 'memcpy', fn: copier(core, core.x.bitmap_words(h), core.x.bitmap_words(b.handle), S / 8) },
        { name: 'wasm count', fn: () => (sink += core.x.bitmap_count(h, 0, S)), units: S, unit: 'pages' },
        { name: 'model count', fn: () => (sink += m.count(0, S)) },
      ];
    },
    S === TARGET_BITS ? { target: 'wasm count <= 0.8x memcpy', check: within(0.8, 'wasm count') } : {},
  );
}

/** 1,000,000 random pages as one batch; baseline: the plain-TS model. */
function batchGroup(size: (typeof SIZES)[number]): BenchGroup {
  const S = size.bits;
  const N = 1_000_000;
  return {
    ...group(`dirty_bitmap: set_batch of 1,000,000 random pages, ${size.name}`, (core) => {
      const a = DirtyBitmap.create(core, S);
      const pages = randomPages(N, 0, S, 5);
      const staged = stage(core, pages);
      const scratch = core.x.heap_alloc(N * 4);
      const m = new BitmapModel(S);
      return [
        { name: 'model setBatch', fn: () => m.setBatch(pages), units: N, unit: 'pages' },
        { name: 'memcpy', fn: copier(core, staged, scratch, N * 4) },
        { name: 'wasm set_batch', fn: () => core.x.bitmap_set_batch(a.handle, staged, N), units: N, unit: 'pages' },
        { name: 'host setBatch (copy + call)', fn: () => a.setBatch(pages), units: N, unit: 'pages' },
      ];
    }),
    baseline: 'model setBatch',
    target: 'wasm set_batch <= 1/3 of the model time, >= 100 M pages/s',
    check: (r) => ratioOf(r, 'wasm set_batch') <= 1 / 3 && (r.cases.find((c) => c.name === 'wasm set_batch')?.rate ?? 0) >= 1e8,
  };
}

/** Visiting every set bit: the model's nextSet loop against the core's runs and next_set. */
function walkGroup(size: (typeof SIZES)[number], d: (typeof DENSITIES)[number]): BenchGroup {
  const S = size.bits;
  const target = S === TARGET_BITS && d.p === 0.01;
  return {
    ...group(`dirty_bitmap: walk set bits ${size.name}, ${d.name}`, (core) => {
      const x = core.x;
      const a = DirtyBitmap.create(core, S);
      const b = DirtyBitmap.create(core, S);
      dirty(core, a, S, d.p, 6);
      const m = modelOf(a);
      const h = a.handle;
      const buf = x.heap_alloc(RUNS_CHUNK * 8);
      return [
        { name: 'memcpy', fn: copier(core, x.bitmap_words(h), x.bitmap_words(b.handle), S / 8) },
        {
          name: 'model nextSet',
          fn: () => {
            for (let i = m.nextSet(0); i >= 0; i = m.nextSet(i + 1)) sink += i;
          },
        },
        {
          name: 'wasm runs',
          fn: () => {
            for (let pos = 0; ; ) {
              const n = x.bitmap_runs(h, pos, S - pos, buf, RUNS_CHUNK);
              const u = core.u32();
              const o = buf >>> 2;
              for (let j = 0; j < 2 * n; j += 2) for (let b = u[o + j], e = b + u[o + j + 1]; b < e; b++) sink += b;
              if (n < RUNS_CHUNK) break;
              pos = u[o + 2 * n - 2] + u[o + 2 * n - 1];
            }
          },
        },
        {
          name: 'wasm next_set',
          fn: () => {
            for (let i = x.bitmap_next_set(h, 0); i >= 0; i = x.bitmap_next_set(h, i + 1)) sink += i;
          },
        },
      ];
    }),
    baseline: 'model nextSet',
    ...(target ? { target: 'wasm runs walk >= 1.5x faster than the model', check: within(1 / 1.5, 'wasm runs') } : {}),
  };
}

function runsGroup(size: (typeof SIZES)[number], d: (typeof DENSITIES)[number]): BenchGroup {
  const S = size.bits;
  return group(
    `dirty_bitmap: runs ${size.name}, ${d.name}`,
    (core) => {
      const x = core.x;
      const a = DirtyBitmap.create(core, S);
      const b = DirtyBitmap.create(core, S);
      dirty(core, a, S, d.p, 7);
      const m = modelOf(a);
      const h = a.handle;
      const buf = x.heap_alloc(RUNS_CHUNK * 8);
      return [
        { name: 'memcpy', fn: copier(core, x.bitmap_words(h), x.bitmap_words(b.handle), S / 8) },
        {
          name: 'wasm runs',
          fn: () => {
            for (let pos = 0; ; ) {
              const n = x.bitmap_runs(h, pos, S - pos, buf, RUNS_CHUNK);
              if (n < RUNS_CHUNK) break;
              const u = core.u32();
              pos = u[(buf >>> 2) + 2 * n - 2] + u[(buf >>> 2) + 2 * n - 1];
            }
          },
        },
        ...(d.p < 0.5 ? [{ name: 'host runs() into one array', fn: () => (sink += a.runs().length) }] : []),
        {
          name: 'model runs',
          fn: () => {
            for (let pos = 0; ; ) {
              const r = m.runs(pos, S - pos, RUNS_CHUNK) as number[];
              if (r.length < 2 * RUNS_CHUNK) break;
              pos = r[r.length - 2] + r[r.length - 1];
            }
          },
        },
      ];
    },
    S === TARGET_BITS && d.p === 0.01 ? { target: 'wasm runs <= 10x memcpy', check: within(10, 'wasm runs') } : {},
  );
}

/** Page-size conversion of a source half the bitmap size, and bitmap_or of the whole size. */
function convertGroup(size: (typeof SIZES)[number], d: (typeof DENSITIES)[number]): BenchGroup {
  const S = size.bits;
  const H = S / 2;
  return group(
    `dirty_bitmap: convert k=+4 and k=-1 of ${bytes(H / 8)}, or of ${bytes(S / 8)} at bit 205, ${size.name}, ${d.name}`,
    (core) => {
      const x = core.x;
      const src = DirtyBitmap.create(core, H);
      dirty(core, src, H, d.p, 8);
      const coarse = DirtyBitmap.create(core, H / 16);
      const fine = DirtyBitmap.create(core, S);
      const a = DirtyBitmap.create(core, S + PAD);
      const b = DirtyBitmap.create(core, S + PAD);
      dirty(core, a, S, d.p, 9);
      const m = modelOf(src);
      const ma = modelOf(a);
      const mb = new BitmapModel(S + PAD);
      return [
        { name: 'memcpy', fn: copier(core, x.bitmap_words(a.handle), x.bitmap_words(b.handle), S / 8) },
        { name: 'wasm convert k=+4', fn: () => x.bitmap_convert(src.handle, coarse.handle, 4) },
        { name: 'wasm convert k=-1', fn: () => x.bitmap_convert(src.handle, fine.handle, -1) },
        { name: 'wasm or at bit 205', fn: () => x.bitmap_or(b.handle, 205, a.handle, 0, S) },
        { name: 'model convert k=+4', fn: () => m.convert(4) },
        { name: 'model convert k=-1', fn: () => m.convert(-1) },
        { name: 'model or at bit 205', fn: () => ma.orInto(mb, 205, 0, S) },
      ];
    },
    S === TARGET_BITS
      ? { target: 'wasm convert (+4, -1) and or <= 2x memcpy', check: within(2, 'wasm convert k=+4', 'wasm convert k=-1', 'wasm or at bit 205') }
      : {},
  );
}

export function groups(quick: boolean): BenchGroup[] {
  const sizes = quick ? SIZES.slice(0, 1) : SIZES;
  const out: BenchGroup[] = [];
  for (const s of sizes) {
    for (const d of DENSITIES) out.push(readGroup(s, d));
    for (const d of DENSITIES) out.push(countGroup(s, d));
    out.push(batchGroup(s));
    for (const d of DENSITIES) out.push(walkGroup(s, d));
    for (const d of DENSITIES) out.push(runsGroup(s, d));
    for (const d of DENSITIES) out.push(convertGroup(s, d));
  }
  return out;
}

export { sink };
