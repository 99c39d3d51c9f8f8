// The HTML report: the heat map's bucketing (plain TS), the page's text (self-contained, licence
// kept), and the page in a real browser: Debian's chromium, headless, driven by playwright-core.
// In the browser it must load with no error and no request, title its axes, show the colour
// scale, label round 0 as the bulk copy, keep every tick label apart at every guest size and
// round count, draw the limit line where its value is on both axes, bound the heat map's width
// for a 1 TiB guest, and show values on hover.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimConfig } from '../src/sim/config.js';
import { renderHtmlReport, type Heatmap } from '../src/sim/html_report.js';
import { COLOURS } from '../src/sim/report/client_common.js';
import { HEATMAP_MAX_BUCKETS, heatmapBucket } from '../src/sim/report/heatmap_buckets.js';
import { emptySync } from '../src/sim/cpu_log.js';
import { SUMMARY_SCHEMA, type RoundRecord, type SimSummary } from '../src/sim/summary.js';
import { chartLabels, labelOverlaps, limitLine, pixel, type ChartLabels } from './html_report_probe.js';

const CHROMIUM = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find(
  (p): p is string => !!p && existsSync(p),
);
if (!CHROMIUM) console.warn('html_report.test: SKIPPED the browser tests: no chromium binary (install Debian\'s `chromium` package)');

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const PAGE = 4096;

function config(memory: number, maxRounds = 30): SimConfig {
  return {
    memory, lowMemory: 3 * GiB, bandwidth: 1000 * MiB, downtimeLimit: 0.3, maxRounds, workload: 'mixed', dirtyRate: 512 * MiB,
    hotFraction: 0.1, hotWeight: 0.9, vgpu: false, vgpuPinned: 0, vgpuChurn: 0, vgpuDmaRate: 0, vgpuRegion: 0,
    passthrough: 'none', tracking: 'type1', trackerRanges: 4, trackingPageSize: 4096, seed: 1, step: 0.1, heatmapColumns: 512, zeroFraction: 0, vcpus: 4,
    throttle: { autoConverge: false, initial: 20, increment: 10, max: 99, tailslow: false, triggerThreshold: 50, dirtyLimit: false, vcpuDirtyLimit: MiB },
    deviceState: { precopyInitial: 0, precopyDirtyRate: 0, stopCopy: 0 },
    accelerator: { enabled: false, rate: 0, buffers: 0, fallback: 'none' }, postcopyAfter: 0, postcopyRtt: 1e-4,
    cpuLog: 'manual', dirtyRingSize: 4096, clearBitmapShift: 18, gpuPtPages: 0, gpuPtRate: 0,
  };
}

function record(i: number, phase: RoundRecord['phase'], bytes: number, bw: number): RoundRecord {
  const pages = Math.round(bytes / PAGE);
  const sent = phase === 'unconverged' ? 0 : pages;
  return {
    round: i, phase, startS: i, devicePages: phase === 'bulk' ? 0 : pages >> 2, dirtyPages: pages, runs: 3, pagesSent: sent,
    bytesSent: sent * PAGE, durationS: (sent * PAGE) / bw, dirtyRate: 10 * MiB, expectedDowntimeS: (pages * PAGE) / bw,
    normalPages: sent, zeroPages: 0, deviceBytes: 0, devicePendingBytes: 0, pendingBytes: pages * PAGE, dirtySyncCount: i + 1,
    dirtyPagesRate: 0, throttlePct: 0, dirtyLimit: 0, transferredBytes: 0, mbps: 0, pagesPerSecond: 0, accelPages: 0, accelUnseen: 0,
    allDirty: false, harvestMs: 0.5,
  };
}

/** A run: round 0 sends all RAM, then the given dirty bytes per harvest; the last harvest ends it. */
function run(memory: number, dirty: number[], opts: { converged?: boolean; columns?: number } = {}) {
  const c = config(memory, dirty.length);
  const converged = opts.converged ?? true;
  const roundsDetail = [record(0, 'bulk', memory, c.bandwidth)].concat(dirty.map((b, i) =>
    record(i + 1, i < dirty.length - 1 ? 'precopy' : converged ? 'stop-copy' : 'unconverged', b, c.bandwidth)));
  const summary: SimSummary = {
    schema: SUMMARY_SCHEMA, config: c, slots: [{ gpa: 0, size: memory }], converged, rounds: dirty.length,
    totalTimeS: 10, downtimeS: roundsDetail[roundsDetail.length - 1].expectedDowntimeS,
    bytesSent: roundsDetail.reduce((a, r) => a + r.bytesSent, 0), allDirtyRounds: 0,
    engine: { harvests: dirty.length, totalMs: 1.5, meanMs: 0.5, maxMs: 0.6, activityMs: 3, peakHeapBytes: MiB },
    wallMs: 12, roundsDetail, accelerator: null, postcopy: null,
    cpuLog: { mode: 'manual', vcpus: 4, stores: 0, rounds: [], total: emptySync(), shadow: null },
    migrate: {
      status: converged ? 'completed' : 'active', setupTimeS: 0, totalTimeS: 10, downtimeS: converged ? 0.1 : null, expectedDowntimeS: 0.1,
      transferredBytes: 0, remainingBytes: 0, totalBytes: memory, duplicatePages: 0, normalPages: 0, normalBytes: 0, mbps: 0,
      pagesPerSecond: 0, dirtyPagesRate: 0, dirtySyncCount: dirty.length + 1, precopyBytes: 0, downtimeBytes: 0, postcopyBytes: 0,
      cpuThrottlePercentage: 0, dirtyLimit: 0, thresholdBytes: 0.3 * c.bandwidth,
    },
  };
  const ramPages = memory / PAGE;
  const columns = opts.columns ?? 512;
  const pagesPerCell = Math.ceil(ramPages / columns);
  // Row i: cell c is dirty at (37 c + 11 i) mod 256, the first 16 cells all dirty.
  const rows = dirty.map((_, i) => {
    const cells = new Uint8Array(columns).map((_, cell) => (cell < 16 ? 255 : (37 * cell + 11 * i) % 256));
    return { round: i + 1, cells };
  });
  const heatmap: Heatmap = { columns, pagesPerCell, lowPages: Math.min(ramPages, (3 * GiB) / PAGE), ramPages, rows };
  return { summary, heatmap };
}

/** Dirty bytes halving from a quarter of RAM, `n` harvests, at least 64 KiB. */
function halving(memory: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.max(16, Math.floor(memory / 4 / 2 ** i / PAGE)) * PAGE);
}

describe('heatmapBucket', () => {
  const hm = (columns: number, pagesPerCell: number, ramPages: number, cells: number[][]): Heatmap => ({
    columns, pagesPerCell, lowPages: ramPages, ramPages, rows: cells.map((c, i) => ({ round: i + 1, cells: Uint8Array.from(c) })),
  });

  it('bounds a 1 TiB guest at 4096 cells to 316 buckets of 13 cells', () => {
    const { heatmap } = run(1024 * GiB, [GiB], { columns: 4096 });
    const b = heatmapBucket(heatmap);
    expect([b.buckets, b.cellsPerBucket, b.pagesPerBucket]).toEqual([316, 13, 13 * 65536]);
    expect(b.buckets).toBeLessThanOrEqual(HEATMAP_MAX_BUCKETS);
    expect(b.rows[0].cells).toHaveLength(316);
  });

  it('keeps each cell when there are no more than the bound', () => {
    const b = heatmapBucket(hm(4, 2, 8, [[0, 1, 128, 255]]), 4);
    expect([b.buckets, b.cellsPerBucket, b.pagesPerBucket]).toEqual([4, 1, 2]);
    expect([...b.rows[0].cells]).toEqual([0, 1, 128, 255]);
  });

  it('weighs cells by their pages, keeps clean exact and any dirt at least 1', () => {
    // 10 pages in cells of 4, 4, 2: bucket 0 = cells 0-1, bucket 1 = cell 2 alone.
    const b = heatmapBucket(hm(3, 4, 10, [[255, 0, 7], [0, 1, 0], [0, 0, 0]]), 2);
    expect([b.buckets, b.cellsPerBucket, b.pagesPerBucket]).toEqual([2, 2, 8]);
    expect(b.rows.map((r) => [...r.cells])).toEqual([[128, 7], [1, 0], [0, 0]]);
    // Cells 0-1 of 4 pages and cell 2 of 2 pages in one bucket: (4 x 255 + 4 x 0 + 2 x 100) / 10.
    expect([...heatmapBucket(hm(3, 4, 10, [[255, 0, 100]]), 1).rows[0].cells]).toEqual([122]);
  });

  it('drops the cells past the end of RAM', () => {
    const b = heatmapBucket(hm(16, 1, 8, [new Array(16).fill(9)]), 320);
    expect(b.buckets).toBe(8);
  });

  it('refuses a bound below 1', () => {
    expect(() => heatmapBucket(hm(4, 2, 8, []), 0)).toThrow(RangeError);
  });
});

describe('renderHtmlReport as text', () => {
  const html = renderHtmlReport(run(16 * GiB, halving(16 * GiB, 5)).summary, run(16 * GiB, halving(16 * GiB, 5)).heatmap);

  it('loads nothing from elsewhere and inlines uPlot with its licence', () => {
    expect(html).not.toMatch(/<script[^>]*\ssrc=|<link[\s>]|<img[\s>]|@import|url\(/i);
    expect(html).toContain('var uPlot=function()');
    expect(html).toMatch(/<pre id="licence-uplot">The MIT License \(MIT\)\s+Copyright \(c\) 2022 Leon Sorokin/);
  });
});

describe.skipIf(!CHROMIUM)('HTML report in headless chromium', () => {
  let dir: string;
  let context: import('playwright-core').BrowserContext;

  beforeAll(async () => {
    const { chromium } = await import('playwright-core');
    dir = mkdtempSync(join(tmpdir(), 'vfio-dirty-report-'));
    context = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1200, height: 900 },
      deviceScaleFactor: 1,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
    });
  });

  /** The report most tests read: 16 GiB, harvests of 4 GiB, 1 GiB, the limit's 300 MiB, 100 MiB. */
  let shared: Awaited<ReturnType<typeof open>>;
  beforeAll(async () => {
    shared = await open(run(16 * GiB, [4 * GiB, GiB, 300 * MiB, 100 * MiB]));
  });

  afterAll(async () => {
    await context?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Opens a report; returns the page and the errors and requests seen while loading it. */
  async function open({ summary, heatmap }: ReturnType<typeof run>) {
    const file = join(dir, `r${Math.random().toString(36).slice(2)}.html`);
    writeFileSync(file, renderHtmlReport(summary, heatmap));
    const page = await context.newPage();
    const errors: string[] = [];
    const requests: string[] = [];
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') errors.push(`console: ${m.text()}`); });
    page.on('request', (r) => { if (r.url() !== pathToFileURL(file).href) requests.push(r.url()); });
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
    return { page, errors, requests };
  }

  it('loads with no error and no request, with titled axes and the heat map\'s colour scale', async () => {
    const { page, errors, requests } = shared;
    expect(errors).toEqual([]);
    expect(requests).toEqual([]);
    expect(await page.getAttribute('body', 'data-drawn')).toBe('4');
    const labels = await chartLabels(page);
    expect(labels.heatmap.map((a) => a.title)).toEqual(['guest RAM offset (RAM order: low RAM, then RAM above 4 GiB)', 'round (harvest)']);
    expect(labels.convergence.map((a) => a.title)).toEqual([
      'round (0 = bulk copy; every later round starts with a harvest)', 'dirty bytes at the harvest (log scale)', 'expected downtime (log scale)',
    ]);
    expect(labelOverlaps([...labels.heatmap, ...labels.convergence, labels.scale])).toEqual([]);
    expect(await page.locator('#heat-scale .tick').allTextContents()).toEqual(['>0 %', '25 %', '50 %', '75 %', '100 %']);
    expect(await page.textContent('#heat-scale')).toContain('clean (0)');
    expect(await page.$eval('#heat-clean', (e) => (e as unknown as { style: { background: string } }).style.background))
      .toBe(`rgb(${COLOURS.clean.join(', ')})`);
    const ramp = await page.$eval('#heat-ramp', (e) => (e as unknown as { style: { background: string } }).style.background);
    expect(ramp).toContain(`rgb(${COLOURS.ramp[0].join(', ')}) 0%`);
    expect(ramp).toContain(`rgb(${COLOURS.ramp[4].join(', ')}) 100%`);
    // Heat map cells in the colours of the scale: bucket 0 (cells 0-1, 64 MiB) all dirty.
    expect(await pixel(page, 'heatmap', 32 * MiB, 1)).toEqual(COLOURS.ramp[4]);
    expect(await page.textContent('#heat-bucket')).toBe('Each cell: 64.0 MiB of RAM (16384 pages of 4 KiB) in one round; 256 cells a row.');
  });

  it('labels and colours round 0 as the bulk copy, apart from the harvests', async () => {
    const { page } = shared;
    const labels = await chartLabels(page);
    expect(labels.convergence[0].labels.slice(0, 2)).toEqual([{ value: 0, text: '0\nbulk' }, { value: 1, text: '1' }]);
    expect(await page.locator('#convergence .u-legend th').allTextContents()).toEqual([
      'bulk copy (round 0: all RAM sent)', 'pre-copy round: dirty at its harvest',
      'stop-copy: dirty at the last harvest, sent with the guest stopped', 'downtime limit 300 ms (= 300 MiB at 1000 MiB/s)',
    ]);
    const hex = (c: string) => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16));
    expect(await pixel(page, 'convergence', 0, 256 * MiB)).toEqual(hex(COLOURS.bulk));
    expect(await pixel(page, 'convergence', 1, 256 * MiB)).toEqual(hex(COLOURS.precopy));
    expect(await pixel(page, 'convergence', 4, 80 * MiB)).toEqual(hex(COLOURS.stopCopy));
    expect(await page.locator('#rounds tr:nth-child(2) td').allTextContents()).toEqual(
      ['0', 'bulk copy (all RAM)', '0 ms', '', '', '', '3', '', '16.38 s', '16.0 GiB', '16.0 GiB', '16.38 s', '0 B', '1', '']);
  });

  it('draws the limit line at 300 ms on the time axis, which is 300 MiB at 1000 MiB/s on the byte axis', async () => {
    // The third harvest holds exactly the limit's bytes: its bar's top meets the line.
    const line = await limitLine(shared.page);
    expect(line.tickText).toBe('300 ms');
    expect(Math.abs(line.drawnY - line.timeY)).toBeLessThanOrEqual(1);
    expect(Math.abs(line.drawnY - line.bytesY)).toBeLessThanOrEqual(1);
    expect(Math.abs(line.barTopY - line.drawnY)).toBeLessThanOrEqual(2);
    // The scales agree: 1 GiB sits where 1.024 s does.
    expect(Math.abs(line.gibY - line.gibSecondsY)).toBeLessThan(0.5);
  });

  it('shows a cell\'s and a round\'s values on hover', async () => {
    const { page } = shared;
    await page.locator('#heatmap').scrollIntoViewIfNeeded();
    // Heat map: bucket 0 of round 2, all dirty.
    const cell = await page.evaluate(() => {
      const u = (globalThis as unknown as { vfioReport: { heatmap: { valToPos(v: number, s: string): number; over: { getBoundingClientRect(): { left: number; top: number } } } } }).vfioReport.heatmap;
      const r = u.over.getBoundingClientRect();
      return { x: r.left + u.valToPos(32 * 2 ** 20, 'x'), y: r.top + u.valToPos(2, 'y') };
    });
    await page.mouse.move(cell.x, cell.y);
    expect(await page.locator('#heatmap-tip div').allTextContents()).toEqual([
      'round 2: 100 % dirty', 'about 64.0 MiB of 64.0 MiB', 'RAM 0 \u2013 64 MiB', 'GPA 0x0 \u2013 0x3ffffff',
    ]);
    await page.locator('#convergence').scrollIntoViewIfNeeded();
    const bar = await page.evaluate(() => {
      const u = (globalThis as unknown as { vfioReport: { convergence: { valToPos(v: number, s: string): number; over: { getBoundingClientRect(): { left: number; top: number } } } } }).vfioReport.convergence;
      const r = u.over.getBoundingClientRect();
      return { x: r.left + u.valToPos(2, 'x'), y: r.top + u.valToPos(200 * 2 ** 20, 'bytes') };
    });
    await page.mouse.move(bar.x, bar.y);
    expect(await page.locator('#convergence-tip div').allTextContents()).toEqual([
      'round 2: pre-copy', 'dirty at harvest: 1.00 GiB', 'expected downtime: 1024 ms > 300 ms', 'sent 1.00 GiB in 1024 ms',
      'dirty rate 10.0 MiB/s; engine 0.50 ms',
    ]);
    await page.mouse.move(0, 0);
    expect(await page.locator('#convergence-tip').isVisible()).toBe(false);
  });

  it('bounds the heat map of a 1 TiB guest at 4096 cells: 316 buckets, no wider than the page', async () => {
    const { page, errors } = await open(run(1024 * GiB, halving(1024 * GiB, 6), { columns: 4096 }));
    expect(errors).toEqual([]);
    const geo = await page.evaluate(() => {
      const w = globalThis as unknown as {
        vfioReport: { heatmap: { bbox: { width: number } } };
        document: { getElementById(id: string): { textContent: string }; documentElement: { scrollWidth: number; clientWidth: number } };
      };
      const data = JSON.parse(w.document.getElementById('report-data').textContent) as { heatmap: { buckets: number } };
      return { buckets: data.heatmap.buckets, plot: w.vfioReport.heatmap.bbox.width, scroll: w.document.documentElement.scrollWidth, client: w.document.documentElement.clientWidth };
    });
    expect(geo.buckets).toBe(316);
    expect(geo.plot).toBeLessThanOrEqual(1100);
    expect(geo.scroll).toBe(geo.client);
    expect(await page.textContent('#heat-bucket')).toBe('Each cell: 3.25 GiB of RAM (851968 pages of 4 KiB) in one round; 316 cells a row.');
    await page.close();
  });

  const SIZES: [string, number][] = [['16 MiB', 16 * MiB], ['16 GiB', 16 * GiB], ['1 TiB', 1024 * GiB]];
  it.each(SIZES)('keeps every tick label apart for a %s guest with 1, 30 and 120 harvests, and labels each axis', async (_, memory) => {
    const page = await context.newPage();
    for (const n of [1, 30, 120]) {
      const { summary, heatmap } = run(memory, halving(memory, n), { converged: n !== 30 });
      const file = join(dir, `ticks-${memory}-${n}.html`);
      writeFileSync(file, renderHtmlReport(summary, heatmap));
      await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
      const labels = await chartLabels(page);
      const axes: ChartLabels[] = [...labels.heatmap, ...labels.convergence, labels.scale];
      for (const a of axes) expect(a.labels.length, `${n} harvests: ${a.title}`).toBeGreaterThanOrEqual(a.title === 'round (harvest)' && n === 1 ? 1 : 2);
      expect(labelOverlaps(axes), `${n} harvests`).toEqual([]);
    }
    await page.close();
  });

  it('escapes the embedded data so a label cannot end the script element', async () => {
    const r = run(16 * GiB, halving(16 * GiB, 4));
    (r.summary.config as { workload: string }).workload = '</script><script>throw new Error("x")</script>';
    const { page, errors } = await open(r);
    expect(errors).toEqual([]);
    expect(await page.getAttribute('body', 'data-drawn')).toBe('4');
    await page.close();
  });
});
