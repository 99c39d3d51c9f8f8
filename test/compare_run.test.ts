// `vfio-dirty compare` running: the same cells on worker threads and on this thread give the same
// summaries (the engine's real times aside), a failing cell is named, --json holds the matrix and
// every summary, each cell rerun alone by `simulate` gives the same figures, and the HTML report
// embeds the data and draws its charts in a browser.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareCommand } from '../src/cli/compare.js';
import { main } from '../src/cli/main.js';
import { renderCompareReport } from '../src/compare/html.js';
import { parseCompareOptions, type CompareCell } from '../src/compare/matrix.js';
import { CellError, runCells } from '../src/compare/run.js';
import { COMPARE_SCHEMA, compareJson } from '../src/compare/table.js';
import { runTooLong } from '../src/sim/run_bounds.js';
import { SUMMARY_SCHEMA, type RoundRecord, type SimSummary } from '../src/sim/summary.js';
import { simulate } from '../src/sim/simulator.js';
import { Engine } from '../src/engine.js';

async function run(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: { write: (s: string) => out.push(s) }, err: { write: (s: string) => err.push(s) } });
  return { code, out: out.join(''), err: err.join('') };
}

/** A summary without what is measured on a real clock. */
function figures(s: SimSummary): unknown {
  return {
    ...s,
    wallMs: 0,
    engine: { ...s.engine, totalMs: 0, meanMs: 0, maxMs: 0, activityMs: 0 },
    roundsDetail: s.roundsDetail.map((r) => ({ ...r, harvestMs: 0 })),
  };
}

// 4 cells of a 64 MiB guest on a slow link, so that each has several rounds.
const ARGS = ['--memory', '64MiB', '--vgpu-pinned', '8MiB', '--bandwidth', '100MiB/s', '--sweep', 'dirty-rate=32MiB/s,64MiB/s', '--seeds', '2'];
const cells = parseCompareOptions(ARGS).cells;

describe('cells on workers and on this thread', () => {
  let inline: SimSummary[];
  let pooled: SimSummary[];
  const events: string[] = [];
  beforeAll(async () => {
    inline = await runCells(cells, 0);
    pooled = await runCells(cells, 2, {
      cellStart: (c) => events.push(`start ${c.index}`),
      round: (c, r) => events.push(`round ${c.index} ${r.round}`),
      cellDone: (c) => events.push(`done ${c.index}`),
    });
  });

  it('give the same summaries, in cell order', () => {
    expect(pooled.map(figures)).toEqual(inline.map(figures));
    expect(inline.map((s) => s.config)).toEqual(cells.map((c) => c.config));
    // The cells differ: the matrix is not one run four times.
    expect(new Set(inline.map((s) => s.bytesSent)).size).toBe(4);
    expect(Math.max(...inline.map((s) => s.roundsDetail.length))).toBeGreaterThanOrEqual(4);
  });

  it('tell each cell\'s start, every round in order, and its end', () => {
    for (const [i, c] of cells.entries()) {
      const mine = events.filter((e) => e.split(' ')[1] === String(c.index));
      expect(mine).toEqual([`start ${c.index}`, ...inline[i].roundsDetail.map((r: RoundRecord) => `round ${c.index} ${r.round}`), `done ${c.index}`]);
    }
  });
});

describe('the core instance a thread\'s cells pass on', () => {
  it('leaves every figure of a cell as on a fresh engine, whatever cell ran before', async () => {
    // After the 64 MiB cells above, on this thread: all three strategies, then a larger guest.
    const mixed = [
      ...parseCompareOptions(['--memory', '64MiB', '--vgpu-pinned', '8MiB', '--strategies', 'all']).cells,
      ...parseCompareOptions(['--memory', '256MiB', '--vgpu-pinned', '8MiB']).cells,
      cells[0],
    ];
    const passedOn = await runCells(mixed, 0);
    for (const [i, c] of mixed.entries()) {
      const engine = await Engine.create();
      try {
        expect(figures(passedOn[i])).toEqual(figures(simulate(engine, c.config).summary));
      } finally {
        engine.dispose();
      }
    }
  });
});

describe('a failing cell', () => {
  // A configuration simulate refuses at run time: the link is too slow for the run's bounds.
  const bad: CompareCell = { ...cells[1], label: 'too slow', config: { ...cells[1].config, bandwidth: 1 } };
  const message = `cell 2 (too slow): ${runTooLong(bad.config)}`;

  it.each([0, 2])('is named, with what failed (jobs %i), and stops the run', async (jobs) => {
    const done: number[] = [];
    const err = await runCells([cells[0], bad, cells[2]], jobs, { cellDone: (c) => done.push(c.index) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CellError);
    expect((err as CellError).message).toBe(message);
    expect((err as CellError).cell.index).toBe(2);
    if (jobs === 0) expect(done).toEqual([1]); // cell 3 never ran
    expect(done).not.toContain(2);
  });

  it('fails the command (exit status 1 from main) with nothing printed and no report written', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'cmp-fail-')), 'r.html');
    const o = parseCompareOptions([...ARGS, '--report', file, '--progress', 'lines', '--jobs', '0']);
    o.cells[1] = { ...o.cells[1], config: { ...o.cells[1].config, bandwidth: 1 } };
    const out: string[] = [];
    const err = await compareCommand.run(o, { out: { write: (x: string) => out.push(x) }, err: { write: () => {} } }).catch((e: unknown) => e);
    expect((err as Error).message).toBe(`cell 2 (dirty-rate=32MiB/s seed 2): ${runTooLong(o.cells[1].config)}`);
    expect(out.join('')).toMatch(/^\[1\/4\] cell 1 \(dirty-rate=32MiB\/s seed 1\): [^\n]*\n$/); // cell 1's progress line alone
    expect(existsSync(file)).toBe(false);
  });
});

describe('--json', () => {
  let doc: { schema: string; matrix: unknown; cells: { index: number; label: string; tracking: null; value: string; seed: number; simulateArgs: string[]; summary: SimSummary }[] };
  let stderr = '';
  beforeAll(async () => {
    const r = await run(['compare', ...ARGS, '--json', '--jobs', '2', '--progress', 'lines']);
    expect(r.code).toBe(0);
    doc = JSON.parse(r.out);
    stderr = r.err;
  });

  it('holds the matrix and every cell with its full summary; progress goes to stderr', () => {
    expect(doc.schema).toBe(COMPARE_SCHEMA);
    expect(doc.matrix).toEqual({
      base: ['--memory', '64MiB', '--vgpu-pinned', '8MiB', '--bandwidth', '100MiB/s'],
      strategies: null, sweep: { option: 'dirty-rate', values: ['32MiB/s', '64MiB/s'] }, seeds: [1, 2], cells: 4,
    });
    expect(doc.cells.map((c) => [c.index, c.label, c.tracking, c.value, c.seed])).toEqual([
      [1, 'dirty-rate=32MiB/s seed 1', null, '32MiB/s', 1], [2, 'dirty-rate=32MiB/s seed 2', null, '32MiB/s', 2],
      [3, 'dirty-rate=64MiB/s seed 1', null, '64MiB/s', 1], [4, 'dirty-rate=64MiB/s seed 2', null, '64MiB/s', 2],
    ]);
    expect(doc.cells.map((c) => Object.keys(c))).toEqual(doc.cells.map(() => ['index', 'label', 'tracking', 'value', 'seed', 'simulateArgs', 'summary']));
    expect(doc.cells.map((c) => c.summary.schema)).toEqual(doc.cells.map(() => SUMMARY_SCHEMA));
    expect(doc.cells[3].simulateArgs).toEqual([...ARGS.slice(0, 6), '--dirty-rate=64MiB/s', '--seed=2']);
    // One line per finished cell, counted 1 to 4 in the order they finish.
    const lines = stderr.trimEnd().split('\n');
    expect(lines.map((l) => /^\[(\d)\/4\] cell \d \(/.exec(l)?.[1])).toEqual(['1', '2', '3', '4']);
    expect(lines.map((l) => /cell (\d)/.exec(l)?.[1]).sort()).toEqual(['1', '2', '3', '4']);
  });

  it('gives each cell\'s simulate command line, which reruns it alone with the same figures', async () => {
    for (const c of doc.cells) {
      const r = await run(['simulate', ...c.simulateArgs, '--json', '--progress', 'none']);
      expect(r.code).toBe(0);
      expect(figures(JSON.parse(r.out) as SimSummary)).toEqual(figures(c.summary));
    }
  });
});

describe('--report', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cmp-report-'));
  const file = join(dir, 'compare.html');
  let html = '';
  let text = '';
  beforeAll(async () => {
    const r = await run(['compare', ...ARGS, '--jobs', '0', '--progress', 'none', '--report', file]);
    expect(r.code).toBe(0);
    text = r.out;
    html = readFileSync(file, 'utf8');
  });

  it('is one page with the cells\' labels, their table and the data embedded, loading nothing from elsewhere', () => {
    expect(text.trimEnd().split('\n').pop()).toBe(`report: ${file}`);
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=|url\(http/);
    const data = JSON.parse(/<script type="application\/json" id="report-data">(.*?)<\/script>/s.exec(html)![1]) as { compare: ReturnType<typeof compareJson> & { cells: { label: string; summary: SimSummary }[] } };
    expect(data.compare.cells.map((c) => c.label)).toEqual(cells.map((c) => c.label));
    expect(data.compare.cells.map((c) => c.summary.roundsDetail.length)).toEqual(data.compare.cells.map((c) => c.summary.roundsDetail.length));
    for (const c of cells) expect(html).toContain(`#${c.index}  vfio-dirty simulate ${c.simulateArgs.join(' ')}`);
    expect(html).toContain('<th class="l">dirty-rate</th>');
    expect(html).toContain('<td class="l">64MiB/s</td>');
    expect(html).toMatch(/uPlot 1\.\d+\.\d+ \(MIT\), inlined/);
    expect(html).toContain('id="licence-uplot"');
  });

  it('escapes what the user typed', async () => {
    const [summary] = await runCells([cells[0]], 0);
    const cell = { ...cells[0], label: '<b>x', simulateArgs: ['--config', 'a</script>.json'] };
    const page = renderCompareReport({ base: ['<i>'], strategies: null, sweep: null, seeds: [1] }, [{ cell, summary }]);
    expect(page).not.toMatch(/<i>|<b>x|a<\/script>/);
    expect(page).toContain('simulate &lt;i&gt;</code>');
    expect(page).toContain("#1  vfio-dirty simulate --config 'a&lt;/script&gt;.json'");
    expect(page).toContain('"label":"\\u003cb>x"');
  });

  const CHROMIUM = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => p && existsSync(p));
  describe.skipIf(!CHROMIUM)('in headless chromium', () => {
    let browser: import('playwright-core').Browser;
    beforeAll(async () => {
      const { chromium } = await import('playwright-core');
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    });
    afterAll(async () => browser?.close());

    it('draws the per-round charts with one line per cell and the bar chart of the totals, without an error', async () => {
      const page = await browser.newPage({ viewport: { width: 1140, height: 900 } });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
      await page.goto(`file://${file}`);
      const charts = await page.evaluate(() => {
        const r = (globalThis as unknown as { vfioReport: Record<string, { series: { label: string }[]; data: (number | null)[][] }> }).vfioReport;
        return Object.fromEntries(Object.entries(r).map(([k, u]) => [k, { labels: u.series.map((s) => s.label), data: u.data }]));
      });
      expect(errors).toEqual([]);
      const labels = ['round', ...cells.map((c) => `#${c.index} ${c.label}`)];
      expect(charts.dirty.labels).toEqual(labels);
      expect(charts.sent.labels).toEqual(labels);
      expect(charts.totals.labels).toEqual(['cell', 'downtime', 'bytes sent']);
      expect(charts.totals.data[0]).toEqual([1, 2, 3, 4]);
      const summaries = await runCells(cells, 0);
      expect(charts.totals.data[1]).toEqual(summaries.map((s) => s.downtimeS));
      expect(charts.totals.data[2]).toEqual(summaries.map((s) => s.bytesSent));
      // Cell 1's bytes per round, where it has rounds; nothing past its last round.
      const sent = summaries[0].roundsDetail.map((r) => (r.bytesSent > 0 ? r.bytesSent : null));
      expect(charts.sent.data[1].slice(0, sent.length)).toEqual(sent);
      expect(charts.sent.data[1].slice(sent.length).every((v) => v === null)).toBe(true);
      // Over-reported pages are charted only where the summaries count them.
      expect(charts.over === undefined).toBe(!summaries[0].roundsDetail.some((r) => 'overReported' in r));
      await page.close();
    });

    it('charts the over-reported pages per round when the summaries count them', async () => {
      const summaries = (await runCells(cells, 0)).map((s) => ({ ...s, roundsDetail: s.roundsDetail.map((r) => ({ ...r, overReported: r.round * 10 })) }));
      const other = join(dir, 'over.html');
      writeFileSync(other, renderCompareReport(parseCompareOptions(ARGS).matrix, cells.map((cell, i) => ({ cell, summary: summaries[i] }))));
      const page = await browser.newPage({ viewport: { width: 1140, height: 900 } });
      await page.goto(`file://${other}`);
      const over = await page.evaluate(() => {
        const u = (globalThis as unknown as { vfioReport: Record<string, { data: (number | null)[][] }> }).vfioReport.over;
        return { data: u.data, hidden: (globalThis as unknown as { document: { getElementById(id: string): { hidden: boolean } } }).document.getElementById('over-section').hidden };
      });
      expect(over.hidden).toBe(false);
      // Round 0 (bulk) has no harvest; then 10 pages a round, up to each cell's last round.
      expect(over.data[1].slice(0, summaries[0].roundsDetail.length)).toEqual(summaries[0].roundsDetail.map((r) => (r.round === 0 ? null : r.round * 10)));
      await page.close();
    });
  });
});
