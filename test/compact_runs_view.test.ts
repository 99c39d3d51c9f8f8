// DirtyReport.compactRunsView(): the runs gathered in the core in one call (bitmap_runs_all, its
// block sized from the run starts of every 16th 512-word block plus 1/8 and 4,096 runs, grown by
// doubling when that falls short), handed out as a view of Wasm memory; the same values as
// compactRuns() and the bitmap's own runs(), at every edge of the growth.
import { beforeAll, describe, expect, it } from 'vitest';
import { DirtyBitmap } from '../src/core/dirty_bitmap.js';
import { OutOfMemoryError } from '../src/errors.js';
import { DirtyReport } from '../src/export/dirty_report.js';
import { Core } from '../src/wasm.js';

let core: Core;
beforeAll(async () => {
  core = await Core.create();
});

/** A report over `nbits` bits with the given bits set. */
function reportOf(nbits: number, set: number[]): DirtyReport {
  const bm = DirtyBitmap.create(core, nbits);
  if (set.length) bm.setBatch(Uint32Array.from(set));
  return new DirtyReport(bm, 0n, 4096n);
}

/** Every other bit from `from`, `runs` of them: runs of one page each. */
function alternating(from: number, runs: number): number[] {
  return Array.from({ length: runs }, (_, i) => from + 2 * i);
}

/** The expected pairs of `alternating`. */
function pairsOf(from: number, runs: number): Uint32Array {
  const out = new Uint32Array(2 * runs);
  for (let i = 0; i < runs; i++) {
    out[2 * i] = from + 2 * i;
    out[2 * i + 1] = 1;
  }
  return out;
}

/** Byte equality of two u32 arrays (toEqual walks 400,000 elements slowly). */
function same(a: Uint32Array, b: Uint32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

describe('compactRunsView', () => {
  it('holds exact pairs for runs at word edges and a run reaching the last bit', () => {
    const r = reportOf(200, [0, 1, 62, 63, 64, 65, 127, 128, 150, 197, 198, 199]);
    const want = Uint32Array.from([0, 2, 62, 4, 127, 2, 150, 1, 197, 3]);
    expect(r.compactRunsView()).toEqual(want);
    expect(r.compactRuns()).toEqual(want);
    r.dispose();
  });

  it('is empty for a bitmap without set bits, and a single run for a full one', () => {
    const e = reportOf(1000, []);
    expect(e.compactRunsView().length).toBe(0);
    expect(e.compactRuns().length).toBe(0);
    e.dispose();
    const f = DirtyBitmap.create(core, 1000);
    f.setRange(0, 1000);
    const full = new DirtyReport(f, 0n, 4096n);
    expect(full.compactRunsView()).toEqual(Uint32Array.from([0, 1000]));
    full.dispose();
  });

  for (const runs of [65535, 65536, 200001]) {
    it(`gathers ${runs} runs spread evenly, sized by the sample without growing`, () => {
      const r = reportOf(2 * runs + 3, alternating(1, runs));
      const allocs = core.x.heap_alloc_calls();
      const view = r.compactRunsView();
      expect(core.x.heap_alloc_calls() - allocs).toBe(2); // the slot and the block: no growth
      expect(view.length).toBe(2 * runs);
      expect(same(view, pairsOf(1, runs))).toBe(true);
      expect(same(r.compactRuns(), r.bitmap.runs())).toBe(true);
      r.dispose();
    });
  }

  // Runs from bit 32768 (word 512) to below bit 524288 (word 8192) lie between the sampled blocks
  // (words 0-511 and 8192-8703): the estimate is 0 and the block grows from 4,096 runs (a block
  // filled exactly grows once more, to look past its last run).
  for (const [runs, grows] of [[4095, 0], [4096, 1], [4097, 1], [8193, 2], [200001, 6]]) {
    it(`gathers ${runs} runs the sample misses, growing the block ${grows} times from 4,096`, () => {
      const r = reportOf(32768 + 2 * runs + 3, alternating(32768, runs));
      const allocs = core.x.heap_alloc_calls();
      const view = r.compactRunsView();
      expect(core.x.heap_alloc_calls() - allocs).toBe(2 + grows);
      expect(view.length).toBe(2 * runs);
      expect(same(view, pairsOf(32768, runs))).toBe(true);
      expect(same(r.compactRuns(), r.bitmap.runs())).toBe(true);
      r.dispose();
    });
  }

  it('is a view of the core memory: no copy, same buffer, same values on a second call', () => {
    const r = reportOf(4096, alternating(0, 100));
    const a = r.compactRunsView();
    expect(a.buffer).toBe(core.memory.buffer);
    const b = r.compactRunsView();
    expect(b.byteOffset).toBe(a.byteOffset);
    expect(b).toEqual(pairsOf(0, 100));
    r.dispose();
  });

  it('is gathered again after mergeFrom, and freed by releaseRuns and dispose', () => {
    const live0 = core.x.heap_live();
    const r = reportOf(4096, [10]);
    expect(r.compactRunsView()).toEqual(Uint32Array.from([10, 1]));
    const log = DirtyBitmap.create(core, 4096);
    log.set(11);
    log.set(4095);
    r.mergeFrom(log);
    expect(r.compactRunsView()).toEqual(Uint32Array.from([10, 2, 4095, 1]));
    const withRuns = core.x.heap_live();
    r.releaseRuns();
    expect(core.x.heap_live()).toBe(withRuns - 1);
    expect(r.compactRunsView()).toEqual(Uint32Array.from([10, 2, 4095, 1]));
    r.dispose();
    log.dispose();
    expect(core.x.heap_live()).toBe(live0);
    expect(() => r.compactRunsView()).toThrow(/after dispose/);
  });

  it('fails with ENOMEM at every allocation it makes, leaking nothing and changing nothing', () => {
    const r = reportOf(32768 + 2 * 5000 + 1, alternating(32768, 5000)); // unsampled, grows once: 3 allocations
    const live0 = core.x.heap_live();
    for (let n = 1; n <= 3; n++) {
      core.x.heap_fail_nth(n);
      expect(() => r.compactRunsView(), `allocation ${n}`).toThrow(OutOfMemoryError);
      core.x.heap_fail_nth(0);
      expect(core.x.heap_live(), `allocation ${n}`).toBe(live0);
    }
    expect(same(r.compactRunsView(), pairsOf(32768, 5000))).toBe(true);
    r.dispose();
  });
});
