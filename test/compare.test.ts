// `vfio-dirty compare`, its command line: the matrix built from simulate's own parser (each cell
// is simulate's command line with the cell's arguments), one exact message and exit status 2 for
// each bad input with nothing run and nothing written, the text table, and the progress modes.
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compareHelp } from '../src/cli/compare.js';
import { matrixProgress } from '../src/cli/compare_progress.js';
import { main } from '../src/cli/main.js';
import { parseSimulateOptions } from '../src/cli/options.js';
import { parseCompareOptions, type CompareCell, type MatrixDefinition } from '../src/compare/matrix.js';
import { formatCompare, pagesOverReported, pagesResent, type CellResult } from '../src/compare/table.js';
import type { RoundRecord, SimSummary } from '../src/sim/summary.js';

async function run(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: { write: (s: string) => out.push(s) }, err: { write: (s: string) => err.push(s) } });
  return { code, out: out.join(''), err: err.join('') };
}

const HINT = 'Run `vfio-dirty compare --help` for the options and their defaults.\n';
const SIMULATE_ONLY = 'is simulate\'s alone: compare writes --json and --report for the whole matrix; rerun a cell with simulate for it';
const small = ['--memory', '64MiB', '--vgpu-pinned', '8MiB'];

describe('the matrix', () => {
  it('is strategies x swept values x seeds, each cell simulate\'s command line with its own arguments', () => {
    const o = parseCompareOptions([...small, '--strategies', 'type1,iommufd', '--sweep', 'dirty-rate=64MiB/s,1GiB/s', '--seeds', '2', '--seed', '7', '--jobs', '3']);
    expect(o.matrix).toEqual({ base: [...small, '--seed', '7'], strategies: ['type1', 'iommufd'], sweep: { option: 'dirty-rate', values: ['64MiB/s', '1GiB/s'] }, seeds: [7, 8] });
    expect(o.output).toEqual({ json: false, report: undefined, progress: 'auto', jobs: 3 });
    expect(o.cells.map((c) => c.label)).toEqual([
      'type1 dirty-rate=64MiB/s seed 7', 'type1 dirty-rate=64MiB/s seed 8', 'type1 dirty-rate=1GiB/s seed 7', 'type1 dirty-rate=1GiB/s seed 8',
      'iommufd dirty-rate=64MiB/s seed 7', 'iommufd dirty-rate=64MiB/s seed 8', 'iommufd dirty-rate=1GiB/s seed 7', 'iommufd dirty-rate=1GiB/s seed 8',
    ]);
    expect(o.cells.map((c) => c.index)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const c = o.cells[6];
    expect(c).toMatchObject({ tracking: 'iommufd', value: '1GiB/s', seed: 7 });
    expect(c.simulateArgs).toEqual([...small, '--seed', '7', '--tracking=iommufd', '--dirty-rate=1GiB/s', '--seed=7']);
    expect(c.config).toEqual(parseSimulateOptions(c.simulateArgs).config);
    expect(c.config).toMatchObject({ tracking: 'iommufd', dirtyRate: 2 ** 30, seed: 7, memory: 64 * 2 ** 20 });
  });

  it('derives the defaults that follow a swept option as simulate does (the vGPU region follows --memory)', () => {
    const o = parseCompareOptions(['--sweep', 'memory=3328MiB,16GiB']);
    expect(o.cells.map((c) => c.config.vgpuRegion)).toEqual([parseSimulateOptions(['--memory', '3328MiB']).config.vgpuRegion, 2 ** 30]);
    expect(o.cells[0].config.vgpuRegion).toBe(256 * 2 ** 20);
  });

  it('takes --strategies all, --seed-list, the base from a config file, and one cell by default', () => {
    expect(parseCompareOptions(['--strategies', 'all']).matrix.strategies).toEqual(['type1', 'device', 'iommufd']);
    expect(parseCompareOptions(['--seed-list', '5, 3,9']).cells.map((c) => c.seed)).toEqual([5, 3, 9]);
    const one = parseCompareOptions(['--memory=1GiB', '--json', '--progress=none', '--report', join(mkdtempSync(join(tmpdir(), 'cmp-')), 'r.html'), '--jobs=0']);
    expect(one.cells.map((c) => [c.label, c.simulateArgs])).toEqual([['seed 1', ['--memory=1GiB', '--seed=1']]]);
    expect(one.output).toMatchObject({ json: true, progress: 'none', jobs: 0 });
    expect(parseCompareOptions(['--config', 'examples/simulate.json']).cells[0].config).toEqual(parseSimulateOptions(['--config', 'examples/simulate.json']).config);
  });

  it('leaves help to the help text, which names every compare option', async () => {
    const r = await run(['compare', '--sweep', 'nonsense', '--help']);
    expect(r).toEqual({ code: 0, out: `${compareHelp()}\n`, err: '' });
    for (const o of ['--strategies', '--sweep', '--seeds', '--seed-list', '--jobs', '--json', '--report', '--progress']) expect(compareHelp()).toContain(o);
    expect((await run(['--help'])).out).toMatch(/\n {2}compare +run one configuration under several tracking strategies/);
  });
});

describe('bad usage: exit 2, one line, nothing run or written', () => {
  const report = () => join(mkdtempSync(join(tmpdir(), 'cmp-')), 'r.html');
  it.each([
    [['--sweep', 'foo=1,2'], '--sweep: "foo" is not an option of simulate (see vfio-dirty simulate --help)'],
    [['--sweep', 'dirty-rate'], '--sweep: expected NAME=V1,V2,... (e.g. dirty-rate=256MiB/s,1GiB/s), got "dirty-rate"'],
    [['--sweep', 'dirty-rate=1GiB/s,fast'], 'cell 2 (dirty-rate=fast seed 1): --dirty-rate: expected a rate like 512MiB/s or 10Gbit/s, got "fast"'],
    [['--strategies', 'type1,device', '--sweep', 'memory=1GiB,3MiB'], 'cell 2 (type1 memory=3MiB seed 1): --memory: must be between 16MiB and 1TiB'],
    [['--sweep', 'dirty-rate=1GiB/s,,2GiB/s'], '--sweep: an empty value in "1GiB/s,,2GiB/s"'],
    [['--sweep', 'dirty-rate=1,1'], '--sweep: "1" is given twice'],
    [['--sweep', 'seed=1,2'], '--sweep: seeds are swept with --seeds N or --seed-list'],
    [['--strategies', 'type1', '--sweep', 'tracking=device'], '--sweep: tracking is what --strategies sweeps: give one of them'],
    [['--strategies', 'type1,vtd'], '--strategies: must be all or a comma-separated list of type1, device, iommufd, got "vtd"'],
    [['--seeds', '0'], '--seeds: must be between 1 and 1000, got 0'],
    [['--seeds', '2', '--seed-list', '1,2'], '--seed-list: cannot be given together with --seeds'],
    [['--seed-list', '1,x'], '--seed-list: expected a whole number, got "x"'],
    [['--seed-list', '4,4'], '--seed-list: seed 4 is given twice'],
    [['--seeds', '1000', '--sweep', 'dirty-rate=1,2'], 'the matrix has 2000 cells; at most 1000'],
    [['--jobs', 'x'], '--jobs: expected a whole number, got "x"'],
    [['--jobs', '257'], '--jobs: must be between 0 and 256, got 257'],
    [['--jobs'], '--jobs: needs a value (see --help)'],
    [['--json=yes'], '--json: takes no value'],
    [['--progress', 'fancy'], '--progress: must be one of auto, bar, lines, none, got "fancy"'],
    [['--export', 'dir'], `--export: ${SIMULATE_ONLY}`],
    [['--export-format=all'], `--export-format: ${SIMULATE_ONLY}`],
    [['--trace=t.jsonl'], `--trace: ${SIMULATE_ONLY}`],
    [['--server', 'serve.sock'], `--server: ${SIMULATE_ONLY}`],
    [['--memory', '3MiB'], '--memory: must be between 16MiB and 1TiB'],
    [['--bogus'], '--bogus: unknown option (see --help)'],
  ])('%j', async (args, message) => {
    const file = report();
    const r = await run(['compare', '--report', file, '--progress', 'none', ...args]);
    expect(r).toEqual({ code: 2, out: '', err: `vfio-dirty: compare: ${message}\n${HINT}` });
    expect(existsSync(file)).toBe(false);
  });

  it('refuses simulate\'s other outputs from a config file too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cmp-'));
    const config = join(dir, 'c.json');
    writeFileSync(config, JSON.stringify({ memory: '1GiB', trace: join(dir, 't.jsonl') }));
    expect(await run(['compare', '--config', config])).toEqual({ code: 2, out: '', err: `vfio-dirty: compare: --trace: ${SIMULATE_ONLY}\n${HINT}` });
    expect(readdirSync(dir)).toEqual(['c.json']);
  });

  it('checks --report before anything runs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cmp-'));
    expect(await run(['compare', '--report', dir])).toEqual({ code: 2, out: '', err: `vfio-dirty: compare: --report: ${dir} is a directory\n${HINT}` });
  });
});

/** A run's figures, made up: `rounds` pre-copy rounds of `pages` each after a bulk round of 100. */
function fakeSummary(converged: boolean, pages: number[], extra: object = {}): SimSummary {
  const r = (round: number, phase: RoundRecord['phase'], pagesSent: number) => ({ round, phase, pagesSent }) as RoundRecord;
  return {
    converged, rounds: pages.length, downtimeS: 0.125, bytesSent: 3 * 2 ** 30,
    engine: { totalMs: 12.345, peakHeapBytes: 6.5 * 2 ** 20 },
    roundsDetail: [r(0, 'bulk', 100), ...pages.map((p, i) => r(i + 1, i === pages.length - 1 ? (converged ? 'stop-copy' : 'unconverged') : 'precopy', converged || i < pages.length - 1 ? p : 0))],
    ...extra,
  } as unknown as SimSummary;
}

describe('the table', () => {
  const matrix: MatrixDefinition = { base: ['--memory', '1GiB'], strategies: ['type1', 'iommufd'], sweep: { option: 'dirty-rate', values: ['1GiB/s'] }, seeds: [3] };
  const cell = (index: number, tracking: 'type1' | 'iommufd'): CompareCell => ({
    index, label: `${tracking} dirty-rate=1GiB/s seed 3`, tracking, value: '1GiB/s', seed: 3,
    simulateArgs: ['--memory', '1GiB', `--tracking=${tracking}`, '--dirty-rate=1GiB/s', '--seed=3'], config: {} as CompareCell['config'],
  });
  const results: CellResult[] = [
    { cell: cell(1, 'type1'), summary: fakeSummary(true, [40, 2]) },
    { cell: cell(2, 'iommufd'), summary: fakeSummary(false, [50, 60, 70], { tracking: { overReported: 1234 } }) },
  ];

  it('counts pages re-sent after the bulk round, and over-reported pages only when the summary has them', () => {
    expect(results.map((r) => pagesResent(r.summary))).toEqual([42, 110]);
    expect(results.map((r) => pagesOverReported(r.summary))).toEqual([null, 1234]);
  });

  it('has one row per cell, the strategy and the swept value first, and each cell as a simulate command', () => {
    expect(formatCompare(matrix, results)).toBe([
      'Compared 2 runs: tracking type1, iommufd x dirty-rate 1GiB/s x seed 3',
      '',
      'cell  tracking  dirty-rate  seed  converged  rounds  downtime      sent  pages re-sent  over-reported  peak heap  engine ms',
      '   1  type1     1GiB/s         3  yes             2    125 ms  3.00 GiB             42              -   6.50 MiB      12.35',
      '   2  iommufd   1GiB/s         3  no              3    125 ms  3.00 GiB            110           1234   6.50 MiB      12.35',
      '',
      'Each cell alone, with the same figures:',
      '  1  vfio-dirty simulate --memory 1GiB --tracking=type1 --dirty-rate=1GiB/s --seed=3',
      '  2  vfio-dirty simulate --memory 1GiB --tracking=iommufd --dirty-rate=1GiB/s --seed=3',
    ].join('\n'));
  });

  it('quotes a simulate argument the shell would split', () => {
    const c = { ...cell(1, 'type1'), simulateArgs: ['--config', "my config's.json", '--seed=3'] };
    expect(formatCompare({ ...matrix, strategies: null, sweep: null }, [{ cell: c, summary: results[0].summary }]).split('\n').pop())
      .toBe(`  1  vfio-dirty simulate --config 'my config'\\''s.json' --seed=3`);
  });
});

describe('progress across the matrix', () => {
  const cells = [1, 2].map((index) => ({ index, label: `seed ${index}` }) as CompareCell);
  const round = (n: number) => ({ round: n }) as RoundRecord;
  const drive = (mode: 'lines' | 'bar' | 'none' | 'auto', isTTY: boolean) => {
    const out: string[] = [];
    const p = matrixProgress(mode, { write: (s: string) => out.push(s), isTTY, columns: 200 }, 2);
    p.cellStart!(cells[0]);
    p.cellStart!(cells[1]);
    p.round!(cells[0], round(0));
    p.round!(cells[1], round(0));
    p.round!(cells[0], round(1));
    p.cellDone!(cells[1], fakeSummary(true, [5]));
    p.round!(cells[1], round(1)); // a late message of a finished cell changes nothing
    p.cellDone!(cells[0], fakeSummary(false, [5, 6]));
    p.finish();
    return out.join('');
  };

  it('lines: one line per finished cell, cells done out of all', () => {
    expect(drive('lines', true)).toBe(
      '[1/2] cell 2 (seed 2): converged after 1 rounds, downtime 125 ms, sent 3.00 GiB\n' +
      '[2/2] cell 1 (seed 1): did NOT converge in 2 rounds, downtime 125 ms, sent 3.00 GiB\n');
    expect(drive('auto', false)).toBe(drive('lines', true));
  });

  it('bar: redrawn in place with each running cell\'s round, finished cells scrolling above it', () => {
    const bar = (done: number, running: string) => `\r\x1b[2K[${'#'.repeat(done * 15)}${'.'.repeat(30 - done * 15)}] ${done}/2 cells${running}`;
    expect(drive('bar', false)).toBe([
      bar(0, '  running: #1 starting'),
      bar(0, '  running: #1 starting, #2 starting'),
      bar(0, '  running: #1 round 0, #2 starting'),
      bar(0, '  running: #1 round 0, #2 round 0'),
      bar(0, '  running: #1 round 1, #2 round 0'),
      '\r\x1b[2K[1/2] cell 2 (seed 2): converged after 1 rounds, downtime 125 ms, sent 3.00 GiB\n',
      bar(1, '  running: #1 round 1'),
      '\r\x1b[2K[2/2] cell 1 (seed 1): did NOT converge in 2 rounds, downtime 125 ms, sent 3.00 GiB\n',
      bar(2, ''),
      '\r\x1b[2K',
    ].join(''));
    expect(drive('auto', true)).toBe(drive('bar', false));
  });

  it('none: nothing', () => {
    expect(drive('none', true)).toBe('');
  });
});
