// The benchmark harness: every bench/*.bench.ts module exports `groups`, a list of BenchGroup.
// Each group is measured with benchmark.js in one run, beside its baseline (usually the
// memory-copy bound or a plain-TS model), and reported as ratios to that baseline, because this
// machine is shared and absolute figures drift between runs.
import Benchmark from 'benchmark';

// benchmark.js pastes the source of a case that has a setup into its timing loop; our cases are
// closures, whose variables the pasted source cannot see. Without decompilation it calls them.
Benchmark.support.decompilation = false;

export interface BenchCase {
  /** Short name, unique in its group, e.g. 'wasm read-and-clear'. */
  name: string;
  /** One operation; benchmark.js calls it many times. */
  fn: () => void;
  /** Units processed by one call (pages, calls, bytes), for a per-unit rate. */
  units?: number;
  /** The unit's name for the rate column, e.g. 'pages'. */
  unit?: string;
  /**
   * Untimed work before every call (e.g. dirtying a bitmap again before a read that clears it).
   * A case with it is timed one call per benchmark.js cycle, the prepare running as the cycle's
   * setup, outside the clock.
   */
  prepare?: () => void;
}

export interface BenchGroup {
  /** e.g. 'dirty_bitmap: count 32 MiB'. */
  name: string;
  /** Name of the case that ratios are computed against. */
  baseline: string;
  cases: BenchCase[];
  /** Prepares state before any case runs (allocations, fills); may be async. */
  setup?: () => void | Promise<void>;
  /** Frees state after all cases ran. */
  teardown?: () => void;
  /** The target, stated as text, e.g. '<= 1.5x memcpy'. */
  target?: string;
  /** Checks a measured group against its target; true when met. */
  check?: (r: GroupResult) => boolean;
  /** Measurements outside benchmark.js (first/last thousand, memory), as printable lines. */
  notes?: () => string[] | Promise<string[]>;
}

export interface CaseResult {
  name: string;
  /** Mean seconds per call. */
  mean: number;
  /** Relative margin of error, percent. */
  rme: number;
  samples: number;
  /** mean / baseline mean: below 1 is faster than the baseline. */
  ratio: number;
  /** Units per second when the case states units. */
  rate?: number;
  unit?: string;
}

export interface GroupResult {
  group: string;
  target?: string;
  met?: boolean;
  cases: CaseResult[];
  notes?: string[];
}

export interface RunOptions {
  /** Seconds benchmark.js spends per case; small in smoke runs. */
  maxTime: number;
  /** Minimum samples per case. */
  minSamples: number;
}

/** Runs one group with benchmark.js and returns its results. */
export async function runGroup(g: BenchGroup, opts: RunOptions): Promise<GroupResult> {
  await g.setup?.();
  try {
    const measured = new Map<string, Benchmark>();
    for (const c of g.cases) {
      c.prepare?.();
      c.fn(); // first calls run in the baseline tier: warm before measuring
      const b = new Benchmark(c.name, c.fn, {
        maxTime: opts.maxTime,
        minSamples: opts.minSamples,
        initCount: 1,
        // One call per cycle (a cycle of one call already lasts past this minTime), after the
        // cycle's setup, which runs before its clock starts.
        ...(c.prepare ? { minTime: 1e-9, setup: c.prepare } : {}),
      });
      b.run({ async: false });
      if (b.error) throw b.error;
      measured.set(c.name, b);
    }
    const base = measured.get(g.baseline);
    if (!base) throw new Error(`${g.name}: no baseline case named '${g.baseline}'`);
    const cases = g.cases.map((c): CaseResult => {
      const b = measured.get(c.name)!;
      const mean = b.stats.mean;
      return {
        name: c.name,
        mean,
        rme: b.stats.rme,
        samples: b.stats.sample.length,
        ratio: mean / base.stats.mean,
        rate: c.units ? c.units / mean : undefined,
        unit: c.unit,
      };
    });
    const r: GroupResult = { group: g.name, target: g.target, cases };
    if (g.notes) r.notes = await g.notes();
    if (g.check) r.met = g.check(r);
    return r;
  } finally {
    g.teardown?.();
  }
}

/** The ratio of case `name` to the group's baseline. */
export function ratioOf(r: GroupResult, name: string): number {
  const c = r.cases.find((x) => x.name === name);
  if (!c) throw new Error(`${r.group}: no case '${name}'`);
  return c.ratio;
}

/** The mean of case `name` divided by the mean of case `other`. */
export function relative(r: GroupResult, name: string, other: string): number {
  const a = r.cases.find((x) => x.name === name);
  const b = r.cases.find((x) => x.name === other);
  if (!a || !b) throw new Error(`${r.group}: no case '${!a ? name : other}'`);
  return a.mean / b.mean;
}

/** Formats results as a plain-text table. */
export function formatTable(results: GroupResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    const status = r.met === undefined ? '' : r.met ? '  [target met]' : '  [TARGET MISSED]';
    lines.push(`${r.group}${r.target ? ` (target: ${r.target})` : ''}${status}`);
    for (const c of r.cases) {
      const ms = (c.mean * 1e3).toFixed(c.mean < 1e-3 ? 5 : 3);
      const rate = c.rate ? `  ${fmtRate(c.rate)} ${c.unit ?? 'units'}/s` : '';
      lines.push(
        `  ${c.name.padEnd(36)} ${ms.padStart(12)} ms  ±${c.rme.toFixed(1).padStart(4)}%  x${c.ratio.toFixed(2)}${rate}`,
      );
    }
    for (const n of r.notes ?? []) lines.push(`  - ${n}`);
  }
  return lines.join('\n');
}

function fmtRate(x: number): string {
  if (x >= 1e9) return `${(x / 1e9).toFixed(2)} G`;
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)} M`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(2)} k`;
  return x.toFixed(1);
}
