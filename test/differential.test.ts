// Differential test: seeded random sequences run on the Wasm engine and on the plain-TS reference
// model (test/reference/), compared after every step: the return value, every byte of the ioctl
// argument, the user bitmap bytes, dmaRw read data, every process's locked_vm, the dma_unmap
// calls, and inspect() (without heapUsed). On a mismatch the sequence is shrunk to a small
// replayable one and printed with the seed and the step.
//
//   VFIO_DIFF_SEEDS=n    run n more seeds after the fixed ones
//   VFIO_DIFF_STEPS=n    ops per sequence (default 300)
//   VFIO_DIFF_REPLAY=s   replay one printed sequence (the JSON, or a file holding it)
//   VFIO_DIFF_SHRINK_MS  time spent shrinking a failing sequence (default 8000)
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createEngine, uapi } from '../src/index.js';
import { createReferenceEngine } from './reference/engine.js';
import { World, firstDifference, parse, stringify, type AnyEngine } from './reference/ops.js';
import * as U from './reference/uapi.js';
import { generateSequence, type Sequence } from './helpers/random_ops.js';

const FIXED_SEEDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
const STEPS = Number(process.env.VFIO_DIFF_STEPS ?? 300);
const EXTRA = Number(process.env.VFIO_DIFF_SEEDS ?? 0);

interface Mismatch {
  step: number;
  diff: string;
}

/** Runs a sequence on both engines; the first step where they differ, or null. */
async function compare(seq: Sequence): Promise<Mismatch | null> {
  const o = { profile: seq.setup.profile, dmaEntryLimit: seq.setup.dmaEntryLimit };
  const eng = new World((await createEngine(o)) as unknown as AnyEngine, seq.setup);
  const ref = new World((await createReferenceEngine(o)) as unknown as AnyEngine, seq.setup);
  for (let i = 0; i < seq.ops.length; i++) {
    const want = ref.apply(seq.ops[i]);
    const got = eng.apply(seq.ops[i]);
    const d =
      firstDifference(want, got, 'result') ??
      firstDifference(withoutHeap(ref.engine), withoutHeap(eng.engine), 'inspect');
    if (d) return { step: i, diff: `${d}   (reference != engine)` };
  }
  return null;
}

/** The type1 part of inspect() (the reference models type1 only), without heapUsed. */
function withoutHeap(e: AnyEngine): unknown {
  const { containers, processes } = e.inspect() as Record<string, unknown>;
  return { containers, processes };
}

/**
 * Shrinks a failing sequence (ddmin-like): drops chunks of ops, halving the chunk size down to
 * single ops, keeping every removal after which the engines still disagree; bounded by a budget.
 */
async function shrink(seq: Sequence, m: Mismatch, budgetMs = Number(process.env.VFIO_DIFF_SHRINK_MS ?? 8000)): Promise<{ seq: Sequence; m: Mismatch }> {
  let best = { seq: { ...seq, ops: seq.ops.slice(0, m.step + 1) }, m };
  const until = Date.now() + budgetMs;
  for (let chunk = Math.max(1, best.seq.ops.length >> 1); chunk >= 1 && Date.now() < until; chunk >>= 1) {
    for (let i = best.seq.ops.length - 1 - chunk; i >= 0 && Date.now() < until; i -= chunk) {
      const ops = [...best.seq.ops.slice(0, i), ...best.seq.ops.slice(i + chunk)];
      const cand = { ...best.seq, ops };
      const r = await compare(cand);
      if (r) best = { seq: { ...cand, ops: ops.slice(0, r.step + 1) }, m: r };
    }
  }
  return best;
}

async function check(seq: Sequence): Promise<void> {
  const m = await compare(seq);
  if (!m) return;
  const small = await shrink(seq, m);
  const msg = [
    `seed ${seq.seed}: engines differ at step ${m.step} (op ${stringify(seq.ops[m.step])})`,
    `  ${m.diff}`,
    `minimal sequence (${small.seq.ops.length} ops; differs at its step ${small.m.step}: ${small.m.diff}):`,
    `VFIO_DIFF_REPLAY='${stringify(small.seq)}'`,
  ].join('\n');
  console.error(msg);
  expect.fail(msg);
}

/** The catalogue of groups of every generated sequence, for hand-written replays. */
const GROUPS_SETUP = (aperture36 = false, memlockLimit?: bigint): Sequence['setup'] => ({
  profile: 'linux-6.18',
  dmaEntryLimit: 65535,
  procs: [{ memlockLimit }, {}],
  groups: [
    { kind: 'iommu', devices: ['ga0'] },
    { kind: 'iommu', devices: ['gb0'], pgsizeBitmap: 0x201000n, aperture: [0n, aperture36 ? 0xf_ffff_ffffn : 0xffff_ffff_ffffn] },
    { kind: 'emulated', devices: ['ma0'] },
    { kind: 'emulated', devices: ['mb0'] },
    { kind: 'iommu', devices: ['gc0'] },
  ],
});

/** Minimal sequences from earlier differential runs that once exposed engine bugs. */
const REGRESSIONS: [string, Sequence][] = [
  [
    // docs/conformance.md §2.6: an attach whose aperture excludes an existing dma fails with EINVAL, also for the
    // first IOMMU group of a container whose dmas were mapped while it had no IOMMU domain
    'first IOMMU attach with a dma outside its aperture',
    { seed: 0, setup: GROUPS_SETUP(), ops: [
      { t: 'mmap', p: 0, len: 0x10000n, out: 0 },
      { t: 'open', p: 0, path: 'container', out: 1 },
      { t: 'open', p: 0, path: 2, out: 2 },
      { t: 'setContainer', p: 0, h: 2, c: 1 },
      { t: 'ioctl', p: 0, h: 1, req: U.VFIO_SET_IOMMU, arg: 3 },
      { t: 'map', p: 0, h: 1, flags: 3, iova: 1n << 48n, size: 0x1000n, vaddr: { region: 0, off: 0n } },
      { t: 'open', p: 0, path: 0, out: 3 },
      { t: 'setContainer', p: 0, h: 3, c: 1 },
    ] },
  ],
  [
    // docs/conformance.md §3.5, §2.7: after a detach the valid list is the remaining groups' apertures
    // intersected (not spanned), minus their reserved regions
    'valid IOVA list after detaching the group with the wider aperture',
    { seed: 0, setup: GROUPS_SETUP(true), ops: [
      { t: 'open', p: 0, path: 'container', out: 1 },
      { t: 'open', p: 0, path: 0, out: 2 },
      { t: 'setContainer', p: 0, h: 2, c: 1 },
      { t: 'open', p: 0, path: 1, out: 3 },
      { t: 'setContainer', p: 0, h: 3, c: 1 },
      { t: 'open', p: 0, path: 4, out: 4 },
      { t: 'setContainer', p: 0, h: 4, c: 1 },
      { t: 'ioctl', p: 0, h: 1, req: U.VFIO_SET_IOMMU, arg: 3 },
      { t: 'ioctl', p: 0, h: 2, req: U.VFIO_GROUP_UNSET_CONTAINER },
      { t: 'argsz', p: 0, h: 1, req: U.VFIO_IOMMU_GET_INFO, argsz: 120, len: 128 },
      { t: 'mmap', p: 0, len: 0x1000n, out: 0 },
      { t: 'map', p: 0, h: 1, flags: 3, iova: 0x10_0000_0000n, size: 0x1000n, vaddr: { region: 0, off: 0n } },
    ] },
  ],
  [
    // docs/conformance.md §2.7: when the last IOMMU domain goes and no emulated group is left,
    // every mapping is unmapped, unpinned, uncharged and freed: pages a driver left pinned are
    // uncharged too
    'locked_vm after the last IOMMU group leaves with pages still pinned',
    { seed: 0, setup: GROUPS_SETUP(), ops: [
      { t: 'mmap', p: 0, len: 0x100000n, out: 0 },
      { t: 'open', p: 0, path: 'container', out: 1 },
      { t: 'open', p: 0, path: 0, out: 2 },
      { t: 'setContainer', p: 0, h: 2, c: 1 },
      { t: 'open', p: 0, path: 3, out: 3 },
      { t: 'setContainer', p: 0, h: 3, c: 1 },
      { t: 'ioctl', p: 0, h: 1, req: U.VFIO_SET_IOMMU, arg: 3 },
      { t: 'register', g: 3, d: 0, mode: 'unpin' },
      { t: 'deviceFd', p: 0, h: 3, name: 'mb0', out: 4 },
      { t: 'map', p: 0, h: 1, flags: 3, iova: 0x100000n, size: 0x10000n, vaddr: { region: 0, off: 0n } },
      { t: 'pin', g: 3, d: 0, iova: 0x101000n, n: 1, prot: 1 },
      { t: 'close', p: 0, h: 3 },
      { t: 'close', p: 0, h: 4, unpinFirst: false },
      { t: 'ioctl', p: 0, h: 2, req: U.VFIO_GROUP_UNSET_CONTAINER },
    ] },
  ],
  [
    // docs/conformance.md §2.6, §4.3: replay pins page by page, each page charged as it is pinned; here
    // page 300 passes RLIMIT_MEMLOCK before page 639 (unmapped) is reached: ENOMEM, as for MAP
    'replay stops at the first page that fails, in page order',
    { seed: 0, setup: GROUPS_SETUP(false, 300n * 4096n), ops: [
      { t: 'mmap', p: 0, len: 639n * 4096n, out: 0 },
      { t: 'open', p: 0, path: 'container', out: 1 },
      { t: 'open', p: 0, path: 2, out: 2 },
      { t: 'setContainer', p: 0, h: 2, c: 1 },
      { t: 'ioctl', p: 0, h: 1, req: U.VFIO_SET_IOMMU, arg: 3 },
      { t: 'map', p: 0, h: 1, flags: 3, iova: 0x800000n, size: 640n * 4096n, vaddr: { region: 0, off: 0n } },
      { t: 'open', p: 0, path: 0, out: 3 },
      { t: 'setContainer', p: 0, h: 3, c: 1 },
    ] },
  ],
];

describe('differential: Wasm engine vs reference model', () => {
  it.each(REGRESSIONS)('replays: %s', async (_name, seq) => {
    await check(seq);
  });

  it('exports the uAPI numbers of docs/conformance.md §3.1', () => {
    const names = Object.keys(U).filter((k) => /^(VFIO_|IOMMU_READ|IOMMU_WRITE)/.test(k));
    for (const k of names) expect([k, (uapi as Record<string, unknown>)[k]]).toEqual([k, (U as Record<string, unknown>)[k]]);
  });

  const replay = process.env.VFIO_DIFF_REPLAY;
  if (replay) {
    it('replays VFIO_DIFF_REPLAY', async () => {
      await check(parse<Sequence>(existsSync(replay) ? readFileSync(replay, 'utf8') : replay));
    });
    return;
  }

  const seeds = [...FIXED_SEEDS, ...Array.from({ length: EXTRA }, (_, i) => 1000 + i + (Date.now() % 100000) * 1000)];
  it.each(seeds)('seed %i', async (seed) => {
    await check(generateSequence(seed, STEPS));
  });
});
