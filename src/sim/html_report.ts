// The self-contained HTML report of a simulated migration: the summary, a heat map of dirty pages
// over guest memory per round, a convergence chart of dirty bytes (and so expected downtime) per
// round against the limit, and the rounds table. No external resource: the data is embedded as
// JSON, the charting library (uPlot, MIT, see ./report/vendor.ts) is inlined with its licence,
// and the page's own scripts (./report/client_*.ts) draw the charts.
import { COLOURS } from './report/client_common.js';
import { CLIENT_CONVERGENCE } from './report/client_convergence.js';
import { CLIENT_HEATMAP } from './report/client_heatmap.js';
import { heatmapBucket } from './report/heatmap_buckets.js';
import { embeddedJson, esc, pageHead, pageTail, uplotInline } from './report/page.js';
import type { SimSummary } from './summary.js';
import { describeCpuLog, describeShadow, describeSync } from './cpu_log_summary.js';

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

/**
 * Renders the report page: one HTML document that loads nothing from elsewhere.
 * @returns the page's text
 * @throws Error when the `uplot` package cannot be read
 */
export function renderHtmlReport(summary: SimSummary, heatmap: Heatmap): string {
  const hm = heatmapBucket(heatmap);
  const data = {
    summary,
    cpuLog: { text: describeCpuLog(summary.cpuLog, summary.config), rounds: summary.cpuLog.rounds.map((r) => describeSync(summary.cpuLog.mode, r)),
      shadow: summary.cpuLog.shadow && describeShadow(summary.cpuLog.shadow) },
    colours: COLOURS,
    heatmap: { ...hm, rows: hm.rows.map((r) => ({ round: r.round, cells: Buffer.from(r.cells).toString('base64') })) },
  };
  const json = embeddedJson(data);
  const uplot = uplotInline();
  const c = summary.config;
  const title = `vfio-dirty: pre-copy migration of a ${sizeText(c.memory)} guest`;
  return `${pageHead(title, uplot.style, PAGE_CSS)}
<div id="verdict" class="verdict"></div>
<table id="facts"></table>
<h2>info migrate</h2>
<p class="note">QEMU's figures at the end of the run, under its labels: transferred counts every byte on the wire (8-byte page headers, zero pages as 9 bytes, device data); remaining is the RAM left dirty.</p>
<table id="info"></table>
<h2>Dirty pages over guest memory, per round</h2>
<p class="note">Each row is one harvest (the dirty tracking's reports, the header names it, merged with the CPU dirty log); each cell a slice of guest RAM in RAM order; its colour the share of its pages that were dirty. The dashed line marks where RAM above 4 GiB starts. Hover a cell for its values.</p>
<div class="scale" id="heat-scale" aria-label="colour scale: share of a cell's pages dirty">
  <span class="scale-title">share of the cell's pages dirty:</span>
  <span class="swatch" id="heat-clean"></span><span class="scale-clean">clean (0)</span>
  <span class="ramp-box"><span class="ramp" id="heat-ramp"></span>${[0, 25, 50, 75, 100]
    .map((p) => `<span class="tick" style="left:${p}%">${p === 0 ? '&gt;0' : p} %</span>`).join('')}</span>
</div>
<div class="figure" id="heatmap" role="img" aria-label="heat map: guest RAM offset across, round down, colour the dirty share"></div>
<div class="note" id="heat-bucket"></div>
<h2>Convergence</h2>
<p class="note">Bars: round 0 is the bulk copy of all RAM; each later bar the bytes its harvest found dirty. Expected downtime is dirty bytes / bandwidth, so the right axis reads the same bars in seconds and the limit line stands at its time there. Hover a round for its values.</p>
<div class="figure" id="convergence" role="img" aria-label="convergence: round across, dirty bytes and expected downtime up"></div>
<h2>Rounds</h2>
<div class="table-wrap"><table id="rounds"></table></div>
${pageTail(uplot, json, [CLIENT_TEXT, CLIENT_HEATMAP, CLIENT_CONVERGENCE])}`;
}

/** Guest size for the title: 16 MiB, 16 GiB, 1 TiB, 1.50 GiB. */
function sizeText(bytes: number): string {
  for (const [unit, name] of [[2 ** 40, 'TiB'], [2 ** 30, 'GiB'], [2 ** 20, 'MiB']] as const) {
    if (bytes >= unit) return `${(bytes / unit).toFixed(bytes % unit ? 2 : 0)} ${name}`;
  }
  return `${bytes} B`;
}

const PAGE_CSS = `
  .verdict { font-weight: 600; margin-bottom: 6px; }
  .ok { color: ${COLOURS.stopCopy}; } .bad { color: ${COLOURS.limit}; }
  #facts, #info, #rounds { border-collapse: collapse; font-variant-numeric: tabular-nums; }
  #facts td, #rounds td, #rounds th { padding: 2px 10px 2px 0; text-align: right; }
  #rounds td, #rounds th { white-space: nowrap; }
  .table-wrap { overflow-x: auto; }
  #rounds th { border-bottom: 1px solid #ccd; font-weight: 600; }
  #rounds td:nth-child(-n+2), #rounds th:nth-child(-n+2) { text-align: left; }
  #facts td:first-child { color: #556; }
  #facts td, #info td { text-align: left; padding: 1px 10px 1px 0; }
  #rounds tr.bulk td { color: #556; font-style: italic; }
  .scale { font-size: 12px; color: #556; margin: 4px 0 6px; display: flex; align-items: flex-start; gap: 6px; height: 30px; }
  .swatch { display: inline-block; width: 14px; height: 12px; border: 1px solid #ccd; }
  .scale-clean { margin-right: 14px; }
  .ramp-box { position: relative; display: inline-block; width: 240px; height: 28px; }
  .ramp { position: absolute; left: 0; right: 0; top: 0; height: 12px; border: 1px solid #ccd; }
  .tick { position: absolute; top: 14px; transform: translateX(-50%); white-space: nowrap; }
`;

// The summary and the rounds table: text, no chart.
const CLIENT_TEXT = String.raw`
(function () {
  'use strict';
  var s = R.data.summary, cfg = s.config, rounds = s.roundsDetail, m = s.migrate, MiB = 1048576;
  function el(tag, text) { var e = document.createElement(tag); if (text !== undefined) e.textContent = text; return e; }
  var v = document.getElementById('verdict');
  v.textContent = s.postcopy ? 'Completed in postcopy after ' + s.rounds + ' pre-copy rounds'
    : s.converged ? 'Converged after ' + s.rounds + ' pre-copy rounds'
    : 'Did not converge within ' + cfg.maxRounds + ' rounds';
  v.className += s.converged ? ' ok' : ' bad';
  var facts = [
    ['total time (virtual)', R.secs(s.totalTimeS)],
    ['downtime', R.secs(s.downtimeS) + (s.converged ? '' : ' if forced') + ' (limit ' + R.secs(cfg.downtimeLimit) + ')'],
    ['bytes sent', R.bytes(s.bytesSent)],
    ['bandwidth', (cfg.bandwidth / MiB).toFixed(1) + ' MiB/s'],
    ['workload', cfg.workload + ' at ' + (cfg.dirtyRate / MiB).toFixed(1) + ' MiB/s, seed ' + cfg.seed],
    ['devices', (cfg.vgpu ? 'vGPU pinning ' + R.bytes(cfg.vgpuPinned) : 'no vGPU') + ', passthrough ' + cfg.passthrough],
    ['dirty tracking', s.tracking.mechanism + ': ' + s.tracking.overReported + ' pages over-reported of ' + s.tracking.reportedPages + ' reported (' + s.tracking.truePages + ' truly written, 0 under-reported)'],
    ['engine time (real)', s.engine.totalMs.toFixed(1) + ' ms over ' + s.engine.harvests + ' harvests'],
    ['convergence aid', cfg.throttle.autoConverge ? 'auto-converge (initial ' + cfg.throttle.initial + ' %, increment ' + cfg.throttle.increment + ' %, max ' + cfg.throttle.max + ' %' + (cfg.throttle.tailslow ? ', tailslow' : '') + '): throttle ' + m.cpuThrottlePercentage + ' % at the end'
      : cfg.throttle.dirtyLimit ? 'dirty-limit ' + (cfg.throttle.vcpuDirtyLimit / MiB).toFixed(1) + ' MiB/s per vCPU x ' + cfg.vcpus + (m.dirtyLimit > 0 ? ' (in service)' : ' (not triggered)') : 'none'],
  ];
  facts.push(['CPU dirty log', R.data.cpuLog.text]);
  if (R.data.cpuLog.shadow) facts.push(['vGPU shadow', R.data.cpuLog.shadow]);
  if (s.postcopy) {
    facts.push(['postcopy', 'after round ' + s.postcopy.round + ': ' + s.postcopy.pages + ' pages streamed in ' + R.secs(s.postcopy.streamS) +
      '; ' + s.postcopy.faults + ' fetched on demand, ' + R.secs(s.postcopy.waitS) + ' of vCPU wait']);
  }
  if (s.accelerator) {
    var a = s.accelerator;
    facts.push(['accelerator', 'PASID ' + a.pasid + ', ' + a.jobs + ' jobs, ' + a.pagesWritten + ' pages written by PASID; fallback ' + a.fallback +
      '; ' + (s.converged ? 'lost ' + a.lost : 'unseen ' + a.unseenAtEnd) + ' pages no dirty record saw']);
  }
  var ft = document.getElementById('facts');
  facts.forEach(function (f) { var tr = el('tr'); tr.appendChild(el('td', f[0])); tr.appendChild(el('td', f[1])); ft.appendChild(tr); });
  // info migrate, under QEMU's labels.
  var kb = function (b) { return Math.round(b / 1024) + ' kbytes'; }, ms = function (t) { return Math.round(t * 1000) + ' ms'; };
  var info = [
    ['status', m.status], ['setup', ms(m.setupTimeS)], ['total time', ms(m.totalTimeS)],
    m.downtimeS === null ? ['expected downtime', ms(m.expectedDowntimeS)] : ['downtime', ms(m.downtimeS)],
    ['transferred ram', kb(m.transferredBytes)], ['throughput', m.mbps.toFixed(2) + ' mbps'],
    ['remaining ram', kb(m.remainingBytes)], ['total ram', kb(m.totalBytes)],
    ['duplicate', m.duplicatePages + ' pages'], ['normal', m.normalPages + ' pages'], ['normal bytes', kb(m.normalBytes)],
    ['pages-per-second', String(Math.round(m.pagesPerSecond))], ['dirty sync count', String(m.dirtySyncCount)],
    ['dirty pages rate', Math.round(m.dirtyPagesRate) + ' pages'], ['precopy ram', kb(m.precopyBytes)], ['downtime ram', kb(m.downtimeBytes)], ['postcopy ram', kb(m.postcopyBytes)],
    ['cpu-throttle-percentage', String(m.cpuThrottlePercentage)],
  ];
  var it = document.getElementById('info');
  info.forEach(function (f) { var tr = el('tr'); tr.appendChild(el('td', f[0] + ':')); tr.appendChild(el('td', f[1])); it.appendChild(tr); });
  var rt = document.getElementById('rounds'), head = el('tr');
  // The throttle and device columns only when the run has a convergence aid or device state.
  var dev = cfg.deviceState, hasAid = cfg.throttle.autoConverge || cfg.throttle.dirtyLimit;
  var hasDev = dev.precopyInitial > 0 || dev.precopyDirtyRate > 0 || dev.stopCopy > 0;
  var cols = [
    ['round', function (r) { return String(r.round); }],
    ['phase', function (r, bulk) { return bulk ? 'bulk copy (all RAM)' : r.phase + (r.allDirty ? ' (all-dirty)' : ''); }],
    ['start', function (r) { return R.secs(r.startS); }],
    ['dirty', function (r, bulk) { return bulk ? '' : R.bytes(r.dirtyPages * 4096); }],
    ['device', function (r, bulk) { return bulk ? '' : R.bytes(r.devicePages * 4096); }],
    ['over-reported', function (r, bulk) { return bulk ? '' : R.bytes(r.overReported * 4096); }],
    ['CPU log', function (r, bulk) { return bulk ? '' : R.data.cpuLog.rounds[r.round - 1] || ''; }],
    ['runs', function (r) { return String(r.runs); }],
    ['rate MiB/s', function (r, bulk) { return bulk ? '' : (r.dirtyRate / MiB).toFixed(1); }],
    ['expected downtime', function (r) { return R.secs(r.expectedDowntimeS); }],
    ['pending', function (r) { return R.bytes(r.pendingBytes); }],
    hasAid && ['throttle', function (r) { return r.throttlePct > 0 ? r.throttlePct + ' %' : r.dirtyLimit > 0 ? 'limit ' + (r.dirtyLimit / MiB).toFixed(0) + ' MiB/s' : ''; }],
    cfg.accelerator.enabled && ['accel wrote / unseen', function (r, bulk) { return bulk ? '' : r.accelPages + ' / ' + r.accelUnseen; }],
    hasDev && ['device data', function (r) { return r.deviceBytes > 0 ? R.bytes(r.deviceBytes) : ''; }],
    ['sent', function (r) { return R.bytes(r.bytesSent); }],
    ['duration', function (r) { return R.secs(r.durationS); }],
    ['transferred', function (r) { return R.bytes(r.transferredBytes); }],
    ['sync', function (r) { return String(r.dirtySyncCount); }],
    ['engine ms', function (r, bulk) { return bulk ? '' : r.harvestMs.toFixed(2); }],
  ].filter(Boolean);
  cols.forEach(function (c) { head.appendChild(el('th', c[0])); });
  rt.appendChild(head);
  rounds.forEach(function (r) {
    var tr = el('tr'), bulk = r.phase === 'bulk';
    if (bulk) tr.className = 'bulk';
    cols.forEach(function (c) { tr.appendChild(el('td', c[1](r, bulk))); });
    rt.appendChild(tr);
  });
})();
`;
