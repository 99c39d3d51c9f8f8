// The self-contained HTML report of a simulated migration: the summary, a heat map of dirty pages
// over guest memory per round (canvas), a convergence chart of dirty bytes and expected downtime
// per round against the limit (SVG), and the rounds table. No external resource: the data is
// embedded as JSON and drawn by an inline script.
import type { SimSummary } from './summary.js';

/** Dirty density of guest memory per round, in RAM order (low RAM, then high RAM). */
export interface Heatmap {
  /** Cells per row. */
  columns: number;
  /** RAM pages per cell (the last cell may hold fewer). */
  pagesPerCell: number;
  /** RAM pages below the hole: where high RAM starts in RAM order. */
  lowPages: number;
  /** RAM pages in all. */
  ramPages: number;
  /** One row per harvest: round number and per-cell density, 0 (clean) to 255 (all dirty). */
  rows: { round: number; cells: Uint8Array }[];
}

/** Renders the report page. */
export function renderHtmlReport(summary: SimSummary, heatmap: Heatmap): string {
  const data = {
    summary,
    heatmap: {
      columns: heatmap.columns,
      pagesPerCell: heatmap.pagesPerCell,
      lowPages: heatmap.lowPages,
      ramPages: heatmap.ramPages,
      rows: heatmap.rows.map((r) => ({ round: r.round, cells: Buffer.from(r.cells).toString('base64') })),
    },
  };
  // JSON inside <script>: escape '<' so no '</script>' can end the element early.
  const json = JSON.stringify(data).replace(/</g, '\\u003c');
  const c = summary.config;
  const title = `vfio-dirty: pre-copy migration of a ${(c.memory / 2 ** 30).toFixed(c.memory % 2 ** 30 ? 2 : 0)} GiB guest`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2230; background: #fff; }
  h1 { font-size: 20px; margin: 0 0 4px; }
  h2 { font-size: 16px; margin: 28px 0 8px; }
  .verdict { font-weight: 600; }
  .ok { color: #1a7f37; } .bad { color: #c62828; }
  table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
  td, th { padding: 2px 10px 2px 0; text-align: right; }
  th { border-bottom: 1px solid #ccd; font-weight: 600; }
  td:first-child, th:first-child { text-align: left; }
  #facts td:first-child { color: #556; }
  #facts td { text-align: left; }
  .figure { overflow-x: auto; }
  .legend { font-size: 12px; color: #556; margin-top: 4px; }
  .legend span { display: inline-block; width: 12px; height: 12px; vertical-align: -2px; margin: 0 4px 0 12px; }
  svg text { font: 11px system-ui, sans-serif; fill: #556; }
</style>
</head>
<body>
<h1>${esc(title)}</h1>
<div id="verdict" class="verdict"></div>
<table id="facts"></table>
<h2>Dirty pages over guest memory, per round</h2>
<div class="figure"><canvas id="heatmap"></canvas></div>
<div class="legend">Each row is one harvest (GET_BITMAP of the device merged with the CPU dirty log); each cell a slice of guest RAM in RAM order; the colour is the share of its pages that were dirty. The dashed line marks where RAM above 4 GiB starts.</div>
<h2>Convergence</h2>
<div class="figure"><svg id="convergence" xmlns="http://www.w3.org/2000/svg"></svg></div>
<div class="legend"><span style="background:#5b8def"></span>dirty bytes at each harvest (left axis)<span style="background:#e8590c"></span>expected downtime (right axis, log scale)<span style="background:#c62828;height:2px"></span>downtime limit</div>
<h2>Rounds</h2>
<table id="rounds"></table>
<script type="application/json" id="report-data">${json}</script>
<script>
${CLIENT_SCRIPT}
</script>
</body>
</html>
`;
}

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[ch] as string);
}

// The page's own script: plain ES2017, no library.
const CLIENT_SCRIPT = String.raw`
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var s = data.summary, hm = data.heatmap, cfg = s.config, rounds = s.roundsDetail;
  var MiB = 1048576, GiB = 1073741824;
  function bytes(b) {
    if (b >= GiB) return (b / GiB).toFixed(2) + ' GiB';
    if (b >= MiB) return (b / MiB).toFixed(1) + ' MiB';
    return (b / 1024).toFixed(0) + ' KiB';
  }
  function secs(x) { return x < 10 ? (x * 1000).toFixed(0) + ' ms' : x.toFixed(2) + ' s'; }
  function el(tag, attrs, text) {
    var e = document.createElementNS(tag === 'svg' || /^(rect|line|polyline|circle|text|g|path|title)$/.test(tag)
      ? 'http://www.w3.org/2000/svg' : 'http://www.w3.org/1999/xhtml', tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // ---- verdict and facts ----
  var v = document.getElementById('verdict');
  v.textContent = s.converged ? 'Converged after ' + s.rounds + ' pre-copy rounds'
    : 'Did not converge within ' + cfg.maxRounds + ' rounds';
  v.className += s.converged ? ' ok' : ' bad';
  var facts = [
    ['total time (virtual)', secs(s.totalTimeS)],
    ['downtime', secs(s.downtimeS) + (s.converged ? '' : ' if forced') + ' (limit ' + secs(cfg.downtimeLimit) + ')'],
    ['bytes sent', bytes(s.bytesSent)],
    ['bandwidth', (cfg.bandwidth / MiB).toFixed(1) + ' MiB/s'],
    ['workload', cfg.workload + ' at ' + (cfg.dirtyRate / MiB).toFixed(1) + ' MiB/s, seed ' + cfg.seed],
    ['devices', (cfg.vgpu ? 'vGPU pinning ' + bytes(cfg.vgpuPinned) : 'no vGPU') + ', passthrough ' + cfg.passthrough],
    ['engine time (real)', s.engine.totalMs.toFixed(1) + ' ms over ' + s.engine.harvests + ' harvests'],
  ];
  var ft = document.getElementById('facts');
  facts.forEach(function (f) { var tr = el('tr'); tr.appendChild(el('td', {}, f[0])); tr.appendChild(el('td', {}, f[1])); ft.appendChild(tr); });

  // ---- heat map ----
  var cv = document.getElementById('heatmap');
  var cols = hm.columns, rows = hm.rows, cw = Math.max(1, Math.floor(1024 / cols)), left = 60, top = 6, bottom = 26;
  var rh = Math.max(8, Math.min(24, Math.floor(240 / Math.max(1, rows.length))));
  // The geometry, for readers of the pixels (the browser test).
  cv.setAttribute('data-left', left); cv.setAttribute('data-top', top);
  cv.setAttribute('data-cell-width', cw); cv.setAttribute('data-row-height', rh);
  cv.width = left + cols * cw + 10;
  cv.height = top + Math.max(1, rows.length) * rh + bottom;
  var g = cv.getContext('2d');
  g.fillStyle = '#ffffff'; g.fillRect(0, 0, cv.width, cv.height);
  function colour(d) {
    // 0: pale grey-blue, 255: deep red, through yellow.
    var t = d / 255, r, gg, b;
    if (t === 0) return [236, 239, 245];
    if (t < 0.5) { r = 255; gg = Math.round(236 - 60 * t * 2); b = Math.round(160 - 140 * t * 2); }
    else { r = Math.round(255 - 75 * (t - 0.5) * 2); gg = Math.round(176 - 160 * (t - 0.5) * 2); b = 20; }
    return [r, gg, b];
  }
  var img = g.createImageData(cols * cw, Math.max(1, rows.length) * rh);
  rows.forEach(function (row, y) {
    var raw = atob(row.cells);
    for (var x = 0; x < cols; x++) {
      var c = colour(raw.charCodeAt(x));
      for (var dy = 0; dy < rh - 1; dy++) for (var dx = 0; dx < cw; dx++) {
        var i = (((y * rh + dy) * cols * cw) + x * cw + dx) * 4;
        img.data[i] = c[0]; img.data[i + 1] = c[1]; img.data[i + 2] = c[2]; img.data[i + 3] = 255;
      }
    }
  });
  g.putImageData(img, left, top);
  g.fillStyle = '#556'; g.font = '11px system-ui, sans-serif'; g.textBaseline = 'middle'; g.textAlign = 'left';
  rows.forEach(function (row, y) { g.fillText('round ' + row.round, 4, top + y * rh + rh / 2); });
  g.textBaseline = 'top';
  var ramBytes = hm.ramPages * 4096, ticks = 8;
  for (var k = 0; k <= ticks; k++) {
    var x = left + Math.round((k / ticks) * cols * cw);
    g.fillRect(x, top + rows.length * rh, 1, 4);
    g.textAlign = k === 0 ? 'left' : k === ticks ? 'right' : 'center';
    g.fillText(bytes(ramBytes * k / ticks), x, top + rows.length * rh + 6);
  }
  if (hm.lowPages < hm.ramPages) {
    var hx = left + Math.round((hm.lowPages / hm.pagesPerCell) * cw);
    g.strokeStyle = '#1d2230'; g.setLineDash([4, 3]); g.beginPath();
    g.moveTo(hx + 0.5, top); g.lineTo(hx + 0.5, top + rows.length * rh); g.stroke(); g.setLineDash([]);
  }

  // ---- convergence chart ----
  var svg = document.getElementById('convergence');
  var W = 760, H = 300, L = 70, R = 70, T = 14, B = 36, n = rounds.length;
  svg.setAttribute('width', W); svg.setAttribute('height', H); svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
  var pw = W - L - R, ph = H - T - B, slot = pw / Math.max(1, n);
  var maxBytes = Math.max.apply(null, rounds.map(function (r) { return r.phase === 'bulk' ? r.bytesSent : r.dirtyPages * 4096; }).concat([1]));
  // Downtime on a log scale, so that the last rounds' approach to the limit stays visible.
  var downs = rounds.map(function (r) { return r.expectedDowntimeS; }).filter(function (t) { return t > 0; });
  var maxDown = Math.max.apply(null, downs.concat([cfg.downtimeLimit * 1.5]));
  var minDown = Math.min.apply(null, downs.concat([cfg.downtimeLimit / 1.5]));
  var lo = Math.log10(minDown), hi = Math.log10(maxDown);
  function yb(b) { return T + ph - (b / maxBytes) * ph; }
  function yd(t) { return T + ph - ((Math.log10(Math.max(t, minDown)) - lo) / (hi - lo)) * ph; }
  svg.appendChild(el('line', { x1: L, y1: T + ph, x2: L + pw, y2: T + ph, stroke: '#99a' }));
  svg.appendChild(el('line', { x1: L, y1: T, x2: L, y2: T + ph, stroke: '#99a' }));
  svg.appendChild(el('line', { x1: L + pw, y1: T, x2: L + pw, y2: T + ph, stroke: '#99a' }));
  for (var t = 0; t <= 4; t++) {
    svg.appendChild(el('text', { x: L - 6, y: yb(maxBytes * t / 4) + 4, 'text-anchor': 'end' }, bytes(maxBytes * t / 4)));
  }
  [1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000].forEach(function (d) {
    if (d < minDown || d > maxDown) return;
    svg.appendChild(el('line', { x1: L + pw, y1: yd(d), x2: L + pw + 4, y2: yd(d), stroke: '#99a' }));
    svg.appendChild(el('text', { x: L + pw + 6, y: yd(d) + 4 }, secs(d)));
  });
  var pts = [];
  rounds.forEach(function (r, i) {
    var b = r.phase === 'bulk' ? r.bytesSent : r.dirtyPages * 4096;
    var x = L + i * slot;
    var bar = el('rect', { 'class': 'bar', x: x + slot * 0.15, y: yb(b), width: Math.max(1, slot * 0.7), height: Math.max(0, T + ph - yb(b)), fill: '#5b8def' });
    bar.appendChild(el('title', {}, 'round ' + r.round + ' (' + r.phase + '): ' + bytes(b) + ', expected downtime ' + secs(r.expectedDowntimeS)));
    svg.appendChild(bar);
    pts.push((x + slot / 2) + ',' + yd(r.expectedDowntimeS));
    if (n <= 40 || i % Math.ceil(n / 40) === 0) svg.appendChild(el('text', { x: x + slot / 2, y: T + ph + 14, 'text-anchor': 'middle' }, String(r.round)));
  });
  svg.appendChild(el('polyline', { 'class': 'downtime', points: pts.join(' '), fill: 'none', stroke: '#e8590c', 'stroke-width': 2 }));
  rounds.forEach(function (r, i) {
    svg.appendChild(el('circle', { 'class': 'point', cx: L + i * slot + slot / 2, cy: yd(r.expectedDowntimeS), r: 3, fill: '#e8590c' }));
  });
  svg.appendChild(el('line', { 'class': 'limit', x1: L, y1: yd(cfg.downtimeLimit), x2: L + pw, y2: yd(cfg.downtimeLimit), stroke: '#c62828', 'stroke-dasharray': '6 4', 'stroke-width': 1.5 }));
  svg.appendChild(el('text', { x: L + pw / 2, y: H - 4, 'text-anchor': 'middle' }, 'round'));

  // ---- rounds table ----
  var rt = document.getElementById('rounds');
  var head = el('tr');
  ['round', 'phase', 'start', 'dirty', 'device', 'runs', 'rate MiB/s', 'expected downtime', 'sent', 'duration', 'engine ms']
    .forEach(function (h) { head.appendChild(el('th', {}, h)); });
  rt.appendChild(head);
  rounds.forEach(function (r) {
    var tr = el('tr');
    [String(r.round), r.phase + (r.allDirty ? ' (all-dirty)' : ''), secs(r.startS), bytes(r.dirtyPages * 4096), bytes(r.devicePages * 4096),
     String(r.runs), (r.dirtyRate / MiB).toFixed(1), secs(r.expectedDowntimeS), bytes(r.bytesSent), secs(r.durationS), r.harvestMs.toFixed(2)]
      .forEach(function (c) { tr.appendChild(el('td', {}, c)); });
    rt.appendChild(tr);
  });
  document.body.setAttribute('data-drawn', String(rows.length));
})();
`;
