// The HTML report in a real browser: Debian's chromium, headless, driven by playwright-core.
// The page must load with no page error and no console error, and both charts must be drawn:
// heat-map pixels of the expected colours, one SVG bar and one point per round, the limit line.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/cli/options.js';
import { renderHtmlReport, type Heatmap } from '../src/sim/html_report.js';
import { SUMMARY_SCHEMA, type RoundRecord, type SimSummary } from '../src/sim/summary.js';

const CHROMIUM = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find(
  (p): p is string => !!p && existsSync(p),
);
if (!CHROMIUM) console.warn('html_report.test: SKIPPED: no chromium binary (install Debian\'s `chromium` package)');

const MiB = 2 ** 20;

function round(i: number, phase: RoundRecord['phase'], dirtyMiB: number, downS: number): RoundRecord {
  return {
    round: i, phase, startS: i, devicePages: 100, dirtyPages: (dirtyMiB * MiB) / 4096, runs: 3,
    pagesSent: phase === 'unconverged' ? 0 : (dirtyMiB * MiB) / 4096, bytesSent: dirtyMiB * MiB, durationS: downS,
    dirtyRate: 10 * MiB, expectedDowntimeS: downS, allDirty: false, harvestMs: 0.5,
  };
}

/** A four-round summary with a heat map whose rows are all-dirty, clean, half, quarter. */
function sample(): { summary: SimSummary; heatmap: Heatmap } {
  const config = { ...defaultConfig(), memory: 1024 * MiB };
  const roundsDetail = [round(0, 'bulk', 1024, 1), round(1, 'precopy', 512, 0.5), round(2, 'precopy', 400, 0.4), round(3, 'stop-copy', 200, 0.2)];
  const summary: SimSummary = {
    schema: SUMMARY_SCHEMA, config, slots: [{ gpa: 0, size: 1024 * MiB }], converged: true, rounds: 3,
    totalTimeS: 2.1, downtimeS: 0.2, bytesSent: 2136 * MiB, allDirtyRounds: 0,
    engine: { harvests: 3, totalMs: 1.5, meanMs: 0.5, maxMs: 0.6, activityMs: 3, peakHeapBytes: 1 << 20 },
    wallMs: 12, roundsDetail,
  };
  const columns = 64;
  const rows = [255, 0, 128, 64].map((d, i) => ({ round: i, cells: new Uint8Array(columns).fill(d) }));
  rows[1].cells[10] = 255; // one hot cell in the clean row
  const heatmap: Heatmap = { columns, pagesPerCell: 4096, lowPages: 262144, ramPages: 262144, rows };
  return { summary, heatmap };
}

describe.skipIf(!CHROMIUM)('HTML report in headless chromium', () => {
  let dir: string;
  let context: import('playwright-core').BrowserContext;

  beforeAll(async () => {
    const { chromium } = await import('playwright-core');
    dir = mkdtempSync(join(tmpdir(), 'vfio-dirty-report-'));
    context = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
    });
  });

  afterAll(async () => {
    await context?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Opens a report file; returns the page and the errors seen while loading it. */
  async function open(html: string) {
    const file = join(dir, `r${Math.random().toString(36).slice(2)}.html`);
    writeFileSync(file, html);
    const page = await context.newPage();
    const errors: string[] = [];
    const requests: string[] = [];
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
    page.on('request', (r) => { if (!r.url().startsWith('file:')) requests.push(r.url()); });
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
    return { page, errors, requests };
  }

  it('loads with no errors, fetches nothing, and draws the heat map and the chart', async () => {
    const { summary, heatmap } = sample();
    const { page, errors, requests } = await open(renderHtmlReport(summary, heatmap));
    expect(errors).toEqual([]);
    expect(requests).toEqual([]);
    expect(await page.getAttribute('body', 'data-drawn')).toBe('4');
    // Convergence chart: one bar and one point per round, one limit line, a 4-vertex polyline.
    expect(await page.locator('#convergence rect.bar').count()).toBe(4);
    expect(await page.locator('#convergence circle.point').count()).toBe(4);
    expect(await page.locator('#convergence line.limit').count()).toBe(1);
    const pts = await page.getAttribute('#convergence polyline.downtime', 'points');
    expect(pts!.trim().split(/\s+/)).toHaveLength(4);
    // Bar heights follow dirty bytes: 1024, 512, 400, 200 MiB.
    const heights = await page.$$eval('#convergence rect.bar', (els) => els.map((e) => Number(e.getAttribute('height'))));
    expect(heights[1] / heights[0]).toBeCloseTo(0.5, 6);
    expect(heights[3] / heights[0]).toBeCloseTo(200 / 1024, 6);
    // Heat map: read back the pixel at the centre of cells, from the geometry the page states.
    const px = await page.evaluate(() => {
      // The test compiles without the DOM library: describe the little of it used here.
      type Canvas = {
        width: number; height: number; getAttribute(n: string): string;
        getContext(k: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } };
      };
      const cv = (globalThis as unknown as { document: { getElementById(id: string): Canvas } }).document.getElementById('heatmap');
      const g = cv.getContext('2d');
      const [left, top, cw, rh] = ['left', 'top', 'cell-width', 'row-height'].map((k) => Number(cv.getAttribute(`data-${k}`)));
      const at = (x: number, y: number) => Array.from(g.getImageData(x, y, 1, 1).data.slice(0, 3));
      const cell = (col: number, row: number) => at(left + col * cw + Math.floor(cw / 2), top + row * rh + Math.floor(rh / 2));
      return {
        dirty: cell(0, 0), clean: cell(0, 1), hot: cell(10, 1), half: cell(5, 2), margin: at(left - 2, top + 2),
        width: cv.width, height: cv.height, geometry: [left, top, cw, rh],
      };
    });
    expect(px.geometry).toEqual([60, 6, 16, 24]); // 64 cells of 16 px; 4 rows of 24 px
    expect(px.width).toBe(60 + 64 * 16 + 10);
    expect(px.height).toBe(6 + 4 * 24 + 26);
    expect(px.margin).toEqual([255, 255, 255]);
    expect(px.dirty).toEqual([180, 16, 20]);
    expect(px.clean).toEqual([236, 239, 245]);
    expect(px.hot).toEqual(px.dirty);
    expect(px.half).not.toEqual(px.clean);
    expect(px.half).not.toEqual(px.dirty);
    // Rounds table: a header and one row per round.
    expect(await page.locator('#rounds tr').count()).toBe(5);
    expect(await page.textContent('#verdict')).toBe('Converged after 3 pre-copy rounds');
    await page.close();
  });

  it('escapes the embedded data so a label cannot end the script element', async () => {
    const { summary, heatmap } = sample();
    (summary.config as { workload: string }).workload = '</script><script>throw new Error("x")</script>';
    const { page, errors } = await open(renderHtmlReport(summary, heatmap));
    expect(errors).toEqual([]);
    expect(await page.getAttribute('body', 'data-drawn')).toBe('4');
    await page.close();
  });
});
