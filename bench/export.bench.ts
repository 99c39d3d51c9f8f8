// Benchmarks of the export layer, each beside the memory-copy bound (Buffer.copy of the same
// bytes inside the engine's linear memory), in one run:
//   - page runs from a 1 TiB bitmap (32 MiB) at 1 % random density: the compact form from the
//     core's run kernel, as a view of Wasm memory (target <= 5x memcpy of 32 MiB, wall and CPU
//     time of the two interleaved call by call) and as a copy, and the kernel alone, beside a plain-TS walk over the words; the
//     view's CPU time at 0.1 % and 10 % random and at 1 % in short runs is reported beside it
//     (the { iova, length } objects take about 1 us a run, seconds here: not measured);
//   - windowed reading of 8 TiB of mappings (three mappings, one of 2^31 - 1 pages) in 64 GiB
//     windows: peak Wasm memory within one window's bitmap + 10 % (measured in setup);
//   - page-size conversion (2 MiB, 64 KiB and 8 KiB pages from 4 KiB, 4 KiB from 8 KiB) and merges
//     (into a caller's bitmap at bit 205, from a CPU log) of a 32 MiB bitmap: <= 2x memcpy.
// With `quick`, sizes are 1/1024 of these (a smoke run) and the targets are not checked.
import { createEngine, type Engine } from '../src/index.js';
import { DirtyBitmap } from '../src/core/dirty_bitmap.js';
import { DirtyReport, windows } from '../src/export/index.js';
import { Prng } from '../src/sim/prng.js';
import type { Core } from '../src/wasm.js';
import { ratioOf, type BenchGroup, type GroupResult } from './harness.js';

const MiB = 2 ** 20;
const PG = 4096n;
let sink = 0; // results land here so no measured call is dead code

/** Copies `bytes` from a to b in linear memory through Buffer views (the copy bound). */
function copier(core: Core, a: number, b: number, bytes: number): () => void {
  let buf: ArrayBuffer | undefined;
  let from = Buffer.alloc(0);
  let to = Buffer.alloc(0);
  return () => {
    if (core.memory.buffer !== buf) {
      buf = core.memory.buffer;
      from = Buffer.from(buf, a, bytes);
      to = Buffer.from(buf, b, bytes);
    }
    from.copy(to);
  };
}

/** A bitmap of `bits` with about `p` of them set at seeded random places. */
function randomBitmap(core: Core, bits: number, p: number, seed: number): DirtyBitmap {
  const bm = DirtyBitmap.create(core, bits);
  const pages = new Uint32Array(Math.round(bits * p));
  new Prng(seed).fillBelow(pages, 0, pages.length, bits);
  bm.setBatch(pages);
  return bm;
}

/** A bitmap of `bits` with about `p` of them set in runs of 1 to 64 pages at seeded random places. */
function clusteredBitmap(core: Core, bits: number, p: number, seed: number): DirtyBitmap {
  const bm = DirtyBitmap.create(core, bits);
  const rng = new Prng(seed);
  for (let set = 0; set < bits * p; ) {
    const len = 1 + Math.floor(rng.float() * 64);
    const at = Math.floor(rng.float() * (bits - len));
    bm.setRange(at, len);
    set += len;
  }
  return bm;
}

const within = (x: number, ...names: string[]) => (r: GroupResult) => names.every((n) => ratioOf(r, n) <= x);

/** Runs of a 1 TiB bitmap at 1 % (quick: 1 GiB). */
function runsGroup(engine: Engine, quick: boolean): BenchGroup {
  const core = engine.core;
  const bits = quick ? 2 ** 18 : 2 ** 28;
  let bm: DirtyBitmap;
  let report: DirtyReport;
  let scratch = 0;
  let kernelOut = 0;
  let copy: () => void = () => {};
  let cpuRatio = Infinity; // compactRunsView / memcpy in CPU time, set by notes (run before check)
  let wallRatio = Infinity; // the same in wall time
  return {
    name: `export: runs from a ${quick ? '1 GiB' : '1 TiB'} bitmap (${bits / 8 / MiB} MiB) at 1 % random density`,
    baseline: 'memcpy',
    setup() {
      bm = randomBitmap(core, bits, 0.01, 1);
      report = new DirtyReport(bm, 0n, PG);
      scratch = core.x.heap_alloc(bits / 8);
      kernelOut = core.x.heap_alloc(8 << 18);
      copy = copier(core, core.x.bitmap_words(bm.handle), scratch, bits / 8);
    },
    teardown() {
      core.x.heap_free(scratch);
      core.x.heap_free(kernelOut);
      report.dispose(); // and its bitmap
    },
    cases: [
      { name: 'memcpy', fn: () => copy() },
      // The runs gathered again each time (releaseRuns frees them), so nothing cached is measured.
      { name: 'report.compactRunsView (core runs, a view)', fn: () => { report.releaseRuns(); sink += report.compactRunsView().length; } },
      { name: 'report.compactRuns (core runs, a copy)', fn: () => { report.releaseRuns(); sink += report.compactRuns().length; } },
      {
        name: 'the run kernel alone (256 K runs a call)',
        fn: () => {
          for (let pos = 0; ; ) {
            const n = core.x.bitmap_runs(bm.handle, pos, bits - pos, kernelOut, 1 << 18);
            if (n < 1 << 18) break;
            const u = core.u32();
            pos = u[(kernelOut >>> 2) + 2 * n - 2] + u[(kernelOut >>> 2) + 2 * n - 1];
          }
        },
      },
      {
        name: 'plain TS runs over the words',
        fn: () => {
          const w = bm.asTypedArray();
          const out: number[] = [];
          let start = -1;
          for (let i = 0; i < w.length; i++) {
            const lo = Number(w[i] & 0xffffffffn);
            const hi = Number(w[i] >> 32n);
            if (lo === 0 && hi === 0 && start < 0) continue;
            for (let b = 0; b < 64; b++) {
              const set = ((b < 32 ? lo >>> b : hi >>> (b - 32)) & 1) === 1;
              const bit = i * 64 + b;
              if (set && start < 0) start = bit;
              else if (!set && start >= 0) { out.push(start, bit - start); start = -1; }
            }
          }
          sink += out.length;
        },
      },
    ],
    // The target is judged as a plain caller times it (the method of the GET matrix's plain
    // loop): each call and a copy interleaved call by call, medians of wall and CPU time, so the
    // copy starts from the caches a sender's own work leaves. benchmark.js's copy runs back to back
    // over the same 32 MiB, partly from the cache (about 1.3 ms against 2 ms interleaved, idle):
    // its ratio is reported beside, not hidden. Other layouts of the same 32 MiB are measured
    // beside it so none regresses unseen.
    notes: () => {
      const reps = quick ? 3 : 11;
      const lines: string[] = [];
      const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1];
      /** Medians of CPU and wall ms of each case, interleaved call by call. */
      const timed = (cases: [string, () => void][]): { cpu: number[]; wall: number[] } => {
        const cpu = cases.map((): number[] => []);
        const wall = cases.map((): number[] => []);
        for (const [, fn] of cases) fn(); // warm
        for (let i = 0; i < reps; i++) {
          cases.forEach(([, fn], k) => {
            const c0 = process.cpuUsage();
            const t0 = process.hrtime.bigint();
            fn();
            wall[k].push(Number(process.hrtime.bigint() - t0) / 1e6);
            const d = process.cpuUsage(c0);
            cpu[k].push((d.user + d.system) / 1e3);
          });
        }
        return { cpu: cpu.map(median), wall: wall.map(median) };
      };
      const cpuMedians = (cases: [string, () => void][]): number[] => timed(cases).cpu;
      const runsOf = (r: DirtyReport) => () => { r.releaseRuns(); sink += r.compactRunsView().length; };
      const cases: [string, () => void][] = [
        ['memcpy', () => copy()],
        ['compactRunsView', runsOf(report)],
        ['compactRuns', () => { report.releaseRuns(); sink += report.compactRuns().length; }],
      ];
      const { cpu: med, wall } = timed(cases);
      cpuRatio = med[1] / med[0];
      wallRatio = wall[1] / wall[0];
      lines.push(`CPU time, medians of ${reps} interleaved: ` + cases.map(([n], k) => `${n} ${med[k].toFixed(2)} ms (${(med[k] / med[0]).toFixed(2)}x)`).join(', '));
      lines.push(`wall time, the same calls: ` + cases.map(([n], k) => `${n} ${wall[k].toFixed(2)} ms (${(wall[k] / wall[0]).toFixed(2)}x)`).join(', '));
      // Other layouts, one at a time (each bitmap and its runs freed before the next).
      const layouts: [string, () => DirtyBitmap][] = [
        ['0.1 % random', () => randomBitmap(core, bits, 0.001, 5)],
        ['1 % in runs of 1 to 64 pages', () => clusteredBitmap(core, bits, 0.01, 6)],
        ['10 % random', () => randomBitmap(core, bits, 0.1, 7)],
      ];
      for (const [name, make] of layouts) {
        const other = new DirtyReport(make(), 0n, PG);
        try {
          const m = cpuMedians([['memcpy', () => copy()], ['view', runsOf(other)]]);
          lines.push(`${name}: compactRunsView ${m[1].toFixed(2)} ms CPU, ${(m[1] / m[0]).toFixed(2)}x memcpy (${other.compactRunsView().length / 2} runs)`);
        } finally {
          other.dispose();
        }
      }
      return lines;
    },
    ...(quick
      ? {}
      : {
          target: 'report.compactRunsView <= 5x memcpy of 32 MiB, interleaved call by call (wall and CPU time)',
          check: () => cpuRatio <= 5 && wallRatio <= 5,
        }),
  };
}

/** Windowed reading of ~8 TiB of mappings in 64 GiB windows (quick: 8 GiB in 64 MiB windows). */
async function windowsGroup(quick: boolean): Promise<BenchGroup> {
  const scale = quick ? 1024n : 1n;
  const win = (64n << 30n) / scale;
  const bigPages = quick ? (1n << 21n) - 1n : (1n << 31n) - 1n; // one mapping at the 2^31 - 1 page limit
  const maps: [bigint, bigint][] = [
    [0n, win], // one window
    [2n * win, bigPages * PG], // 8 TiB - 4 KiB: not a multiple of the window; ends mid-word
    [2n * win + bigPages * PG + 3n * PG, win - 3n * PG], // right after it, cut by a window edge
  ];
  const end = maps[2][0] + maps[2][1];
  const winBitmap = Number(win / PG / 8n);
  let engine: Engine;
  let c: ReturnType<Engine['openContainer']>;
  let dev: { pinPages(iova: bigint, n: number, prot: number): number };
  let copy: () => void = () => {};
  let scratch = 0;
  let peakHeap = 0;
  let memGrowth = 0;
  let windowsRead = 0;
  const group: BenchGroup = {
    name: `export: windowed read of ${Number(end >> 30n) / 1024} TiB of mappings (3, one of 2^31-1 pages) in ${Number(win >> 20n) / 1024} GiB windows`,
    baseline: 'memcpy of one window bitmap',
    async setup() {
      engine = await createEngine();
      const proc = engine.createProcess();
      const g = engine.createGroup({ kind: 'emulated', devices: ['mdev'] });
      c = engine.openContainer(proc);
      c.attach(g);
      c.setIommu('type1v2');
      c.openDevice(g);
      dev = g.devices[0];
      g.devices[0].registerDmaUnmap(() => {});
      for (const [iova, size] of maps) c.map({ iova, size, vaddr: proc.mmap(size) });
      c.dirty.start();
      // Pins on both sides of window edges and at the ends of every mapping (stay dirty).
      for (const [iova, size] of maps) {
        for (const at of [iova, iova + size - PG, iova + win - PG]) if (at < iova + size) dev.pinPages(at, 1, 3);
      }
      // Measure memory once: the heap sampled at each window, and linear memory growth overall.
      const base = engine.memoryInUse();
      const bytes0 = engine.core.memory.buffer.byteLength;
      // Reading holds the window's bitmap only; runs are an output the consumer asks for (the
      // timed case below gathers them too).
      for (const r of windows(c, { iova: 0n, size: end, windowBytes: win })) {
        peakHeap = Math.max(peakHeap, engine.memoryInUse() - base);
        sink += r.count;
        windowsRead++;
      }
      memGrowth = engine.core.memory.buffer.byteLength - bytes0;
      group.target =
        `peak Wasm memory <= one window's bitmap + 10 % (${winBitmap} B): measured heap peak ${peakHeap} B over base, ` +
        `linear memory growth ${memGrowth} B, ${windowsRead} windows`;
      scratch = engine.core.x.heap_alloc(winBitmap);
      copy = copier(engine.core, scratch, scratch + winBitmap / 2, winBitmap / 2);
    },
    teardown() {
      engine.core.x.heap_free(scratch);
      c.dirty.stop();
    },
    cases: [
      { name: 'memcpy of one window bitmap', fn: () => { copy(); copy(); } },
      {
        name: 'all windows: count + compact runs',
        fn: () => {
          for (const r of windows(c, { iova: 0n, size: end, windowBytes: win, clear: false })) sink += r.count + r.compactRuns().length;
        },
      },
    ],
    check: () => peakHeap <= winBitmap * 1.1 && memGrowth <= winBitmap * 1.1,
  };
  return group;
}

/** Conversion and merges of a 32 MiB bitmap (quick: 32 KiB). */
function convertGroup(engine: Engine, quick: boolean): BenchGroup {
  const core = engine.core;
  const bits = quick ? 2 ** 18 : 2 ** 28;
  let a: DirtyBitmap, half: DirtyBitmap, target: DirtyBitmap, log: DirtyBitmap;
  let report: DirtyReport, halfReport: DirtyReport;
  let copy: () => void = () => {};
  return {
    name: `export: page-size conversion and merges of a ${bits / 8 / MiB} MiB bitmap (1 % dirty)`,
    baseline: 'memcpy',
    setup() {
      a = randomBitmap(core, bits, 0.01, 2);
      half = randomBitmap(core, bits / 2, 0.01, 3);
      target = DirtyBitmap.create(core, bits + 256);
      log = randomBitmap(core, bits, 0.01, 4);
      report = new DirtyReport(a, 0n, PG);
      halfReport = new DirtyReport(half, 0n, 2n * PG);
      copy = copier(core, core.x.bitmap_words(a.handle), core.x.bitmap_words(target.handle), bits / 8);
    },
    teardown() {
      for (const x of [report, halfReport, target, log]) x.dispose();
    },
    cases: [
      { name: 'memcpy', fn: () => copy() },
      { name: 'atPageSize(2 MiB)', fn: () => { const r = report.atPageSize(2 * MiB); sink += r.pages; r.dispose(); } },
      { name: 'atPageSize(64 KiB)', fn: () => { const r = report.atPageSize(65536); sink += r.pages; r.dispose(); } },
      { name: 'atPageSize(8 KiB)', fn: () => { const r = report.atPageSize(8192); sink += r.pages; r.dispose(); } },
      { name: 'atPageSize(4 KiB) from 8 KiB', fn: () => { const r = halfReport.atPageSize(4096); sink += r.pages; r.dispose(); } },
      { name: 'mergeInto at bit 205', fn: () => report.mergeInto(target, 205) },
      { name: 'mergeFrom a CPU log', fn: () => report.mergeFrom(log) },
    ],
    ...(quick
      ? {}
      : {
          target: 'conversion and merges <= 2x memcpy of 32 MiB',
          check: within(2, 'atPageSize(2 MiB)', 'atPageSize(64 KiB)', 'atPageSize(8 KiB)', 'atPageSize(4 KiB) from 8 KiB', 'mergeInto at bit 205', 'mergeFrom a CPU log'),
        }),
  };
}

export async function groups(quick: boolean): Promise<BenchGroup[]> {
  const engine = await createEngine();
  return [runsGroup(engine, quick), await windowsGroup(quick), convertGroup(engine, quick)];
}

export function result(): number {
  return sink;
}
