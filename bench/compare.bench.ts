// Benchmark of `vfio-dirty compare`: the same 8 cells (the default 16 GiB guest, 8 seeds) run on 2
// worker threads, one engine per cell, and one after another on this thread, interleaved in one
// run; target: the workers at least 1.6x faster in wall time. CPU time (process.cpuUsage, every
// thread of this process) and the load average are reported beside it, since the machine is shared.
// The cells are timed in setup (benchmark.js cases are synchronous) and reported as notes; the
// case measures the main thread's own share: parsing the 8 cells' command lines.
// With `quick`, 2 small cells (a smoke run) and the target is not checked.
import { loadavg } from 'node:os';
import { cellsOf, type MatrixDefinition } from '../src/compare/matrix.js';
import { runCells } from '../src/compare/run.js';
import type { BenchGroup } from './harness.js';

interface Timing {
  wallMs: number;
  cpuMs: number;
}

async function timed(f: () => Promise<unknown>): Promise<Timing> {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await f();
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const c = process.cpuUsage(c0);
  return { wallMs, cpuMs: (c.user + c.system) / 1000 };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

export function groups(quick: boolean): BenchGroup[] {
  const matrix: MatrixDefinition = {
    base: quick ? ['--memory', '64MiB', '--vgpu-pinned', '8MiB', '--max-rounds', '3'] : [],
    strategies: null,
    sweep: null,
    seeds: Array.from({ length: quick ? 2 : 8 }, (_, i) => i + 1),
  };
  const reps = quick ? 1 : 3;
  const workers: Timing[] = [];
  const inline: Timing[] = [];
  let load = '';
  return [{
    name: `compare: ${matrix.seeds.length} cells (${quick ? '64 MiB' : '16 GiB'} guests) on 2 workers against one thread`,
    baseline: `parse the ${matrix.seeds.length} cells`,
    target: '2 workers >= 1.6x faster (wall) than one thread',
    async setup() {
      const cells = cellsOf(matrix);
      await runCells(cells.slice(0, 1), 1); // the worker's module loaded once
      const before = loadavg();
      for (let i = 0; i < reps; i++) {
        workers.push(await timed(() => runCells(cells, 2)));
        inline.push(await timed(() => runCells(cells, 0)));
      }
      const after = loadavg();
      load = `load average (1 min) ${before[0].toFixed(2)} before, ${after[0].toFixed(2)} after, on ${2} cores shared`;
    },
    cases: [{ name: `parse the ${matrix.seeds.length} cells`, fn: () => cellsOf(matrix), units: matrix.seeds.length, unit: 'cells' }],
    notes: () => {
      const w = median(workers.map((t) => t.wallMs));
      const s = median(inline.map((t) => t.wallMs));
      return [
        `median of ${reps}, interleaved: 2 workers ${w.toFixed(0)} ms wall (${median(workers.map((t) => t.cpuMs)).toFixed(0)} ms CPU), ` +
          `one thread ${s.toFixed(0)} ms wall (${median(inline.map((t) => t.cpuMs)).toFixed(0)} ms CPU): x${(s / w).toFixed(2)} faster on workers`,
        load,
      ];
    },
    check: () => quick || median(inline.map((t) => t.wallMs)) >= 1.6 * median(workers.map((t) => t.wallMs)),
  }];
}
