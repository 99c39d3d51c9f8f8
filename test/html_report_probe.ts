// What the report test reads back from a report page in the browser: the tick labels each chart
// drew (text, value and the box its text takes), the canvas pixels at data coordinates, and where
// the limit line was drawn. The charts are the uPlot instances the page leaves on
// `window.vfioReport`; the labels are uPlot's own list of what it drew on each axis (`_splits`,
// `_values`), measured with the axis's font.
import type { Page } from 'playwright-core';

/** One axis: its title, its labels (empty ones left out), and each label's extent along it, CSS px. */
export interface ChartLabels {
  title: string;
  labels: { value: number; text: string }[];
  boxes: [number, number][];
}

// The browser side compiles without the DOM library: the little of it used here, as `any`-free types.
interface Axis { show: boolean; side: number; scale: string; label: string; font: [string, number]; _splits: number[]; _values: (string | null)[] }
interface Chart {
  axes: Axis[];
  valToPos(v: number, scale: string, canvasPixels?: boolean): number;
  ctx: { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } };
}
interface Win {
  vfioReport: Record<string, Chart>;
  document: {
    createElement(t: 'canvas'): { getContext(k: '2d'): { font: string; measureText(s: string): { width: number } } };
    querySelectorAll(s: string): ArrayLike<{ textContent: string; getBoundingClientRect(): { left: number; right: number } }>;
    getElementById(id: string): { textContent: string };
  };
}

/** The labels of every axis of both charts, and of the heat map's colour scale. */
export async function chartLabels(page: Page): Promise<{ heatmap: ChartLabels[]; convergence: ChartLabels[]; scale: ChartLabels }> {
  return page.evaluate(() => {
    const w = globalThis as unknown as Win;
    const g = w.document.createElement('canvas').getContext('2d');
    const axes = (u: Chart): ChartLabels[] => u.axes.filter((a) => a.show).map((a) => {
      g.font = a.font[0];
      const horizontal = a.side % 2 === 0;
      const labels: ChartLabels['labels'] = [];
      const boxes: ChartLabels['boxes'] = [];
      a._splits.forEach((value, i) => {
        const text = a._values[i];
        if (text == null) return;
        const p = u.valToPos(value, a.scale);
        const width = Math.max(...String(text).split('\n').map((line) => g.measureText(line).width));
        const half = horizontal ? width / 2 : a.font[1] / 2;
        labels.push({ value, text: String(text) });
        boxes.push([p - half, p + half]);
      });
      return { title: a.label, labels, boxes };
    });
    const ticks = Array.from(w.document.querySelectorAll('#heat-scale .tick'));
    return {
      heatmap: axes(w.vfioReport.heatmap),
      convergence: axes(w.vfioReport.convergence),
      scale: {
        title: 'colour scale',
        labels: ticks.map((t, i) => ({ value: i, text: t.textContent })),
        boxes: ticks.map((t) => [t.getBoundingClientRect().left, t.getBoundingClientRect().right] as [number, number]),
      },
    };
  });
}

/** Every pair of labels on one axis that stand closer than 2 px, as text; [] when none. */
export function labelOverlaps(axes: ChartLabels[]): string[] {
  const out: string[] = [];
  for (const a of axes) {
    const order = a.boxes.map((b, i) => i).sort((i, j) => a.boxes[i][0] - a.boxes[j][0]);
    for (let k = 1; k < order.length; k++) {
      const [prev, next] = [order[k - 1], order[k]];
      if (a.boxes[next][0] < a.boxes[prev][1] + 2) out.push(`${a.title}: "${a.labels[prev].text}" and "${a.labels[next].text}"`);
    }
  }
  return out;
}

/** The RGB of a chart's canvas at data coordinates: x on 'x', y on 'y' (heat map) or 'bytes'. */
export async function pixel(page: Page, chart: 'heatmap' | 'convergence', x: number, y: number): Promise<number[]> {
  return page.evaluate(([chart, x, y]) => {
    const u = (globalThis as unknown as Win).vfioReport[chart];
    const px = Math.round(u.valToPos(x, 'x', true));
    const py = Math.round(u.valToPos(y, chart === 'heatmap' ? 'y' : 'bytes', true));
    return Array.from(u.ctx.getImageData(px, py, 1, 1).data.slice(0, 3));
  }, [chart, x, y] as const);
}

/**
 * Where the convergence chart's limit line is, in canvas px: as drawn (the red rows between bars
 * 0 and 1), where the limit's seconds and its bytes (limit x bandwidth) fall on their axes, and
 * the top of round 3's bar (the test gives it exactly the limit's bytes); with the right axis's
 * label at the limit, and 1 GiB against 1 GiB / bandwidth to check the two scales agree.
 */
export async function limitLine(page: Page) {
  return page.evaluate(() => {
    const w = globalThis as unknown as Win;
    const u = w.vfioReport.convergence;
    const cfg = (JSON.parse(w.document.getElementById('report-data').textContent) as { summary: { config: { downtimeLimit: number; bandwidth: number } } }).summary.config;
    const isRed = (d: Uint8ClampedArray, i: number) => d[i] > 150 && d[i + 1] < 90 && d[i + 2] < 90;
    const left = Math.ceil(u.valToPos(0.4, 'x', true));
    const right = Math.floor(u.valToPos(0.6, 'x', true));
    const height = Math.ceil(u.valToPos(1, 'bytes', true));
    const rows: number[] = [];
    for (let x = left; x <= right; x++) {
      const col = u.ctx.getImageData(x, 0, 1, height).data;
      for (let y = 0; y < height; y++) if (isRed(col, y * 4)) rows.push(y);
    }
    const barX = Math.round(u.valToPos(3, 'x', true));
    const bar = u.ctx.getImageData(barX, 0, 1, height).data;
    let barTopY = -1;
    for (let y = 0; y < height && barTopY < 0; y++) if (bar[y * 4] === 76 && bar[y * 4 + 1] === 123 && bar[y * 4 + 2] === 217) barTopY = y;
    const axis = u.axes[2];
    const GiB = 2 ** 30;
    return {
      drawnY: rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length + 0.5 : NaN,
      timeY: u.valToPos(cfg.downtimeLimit, 's', true),
      bytesY: u.valToPos(cfg.downtimeLimit * cfg.bandwidth, 'bytes', true),
      barTopY,
      tickText: axis._values[axis._splits.indexOf(cfg.downtimeLimit)],
      gibY: u.valToPos(GiB, 'bytes'),
      gibSecondsY: u.valToPos(GiB / cfg.bandwidth, 's'),
    };
  });
}
