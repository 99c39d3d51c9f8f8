// The compare page's script (plain ES2017, uPlot, run after the report's shared script R): one line
// per cell over the rounds for the pages each harvest found dirty and for the bytes each round
// sent (log scales: the bulk round dwarfs the rest), and one bar chart with each cell's downtime
// and total bytes sent side by side. The charts land on window.vfioReport.

/** Series colours, one per cell, cycled (Tableau 10). */
export const CELL_PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

export const CLIENT_COMPARE = String.raw`
(function () {
  'use strict';
  var doc = R.data.compare, cells = doc.cells, palette = R.data.palette;
  function colour(i) { return palette[i % palette.length]; }
  function name(c) { return '#' + c.index + ' ' + c.label; }
  var last = Math.max.apply(null, cells.map(function (c) { var d = c.summary.roundsDetail; return d[d.length - 1].round; }));
  var xs = [];
  for (var x = 0; x <= last; x++) xs.push(x);
  /** One row per cell: f(round) at each round of the x axis; null where the cell has no such round or f gives 0. */
  function perRound(f) {
    return cells.map(function (c) {
      var at = {};
      c.summary.roundsDetail.forEach(function (r) { var v = f(r); at[r.round] = v > 0 ? v : null; });
      return xs.map(function (x) { return x in at ? at[x] : null; });
    });
  }
  function count(n) {
    return n >= 1e9 ? +(n / 1e9).toPrecision(3) + 'G' : n >= 1e6 ? +(n / 1e6).toPrecision(3) + 'M' : n >= 1e3 ? +(n / 1e3).toPrecision(3) + 'k' : String(n);
  }
  var POW2 = [];
  for (var e = 10; e <= 50; e++) POW2.push(Math.pow(2, e));
  var axisX = {
    scale: 'x', label: 'round (0 = bulk copy)', font: R.font, labelFont: R.labelFont, size: 40, labelSize: 22,
    grid: { show: false }, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
    values: function (u, splits) { return splits.map(function (v) { return v == null ? null : String(v); }); },
  };
  function lines(id, yLabel, rows, tick, text, base) {
    var host = document.getElementById(id);
    var u = new uPlot({
      width: R.width(host), height: 320,
      cursor: { drag: { x: false, y: false, setScale: false } },
      scales: { x: { time: false, auto: false, range: [-0.25, last + 0.25] }, y: { distr: 3, log: base } },
      axes: [axisX, {
        scale: 'y', label: yLabel, font: R.font, labelFont: R.labelFont, labelSize: 22, size: R.fitSize,
        values: function (u, splits) { return splits.map(function (v) { return v == null ? null : tick(v); }); },
      }],
      series: [{ label: 'round' }].concat(cells.map(function (c, i) {
        return { label: name(c), stroke: colour(i), width: 2, spanGaps: false, points: { show: true, size: 5, fill: colour(i) },
          value: function (u, v) { return v == null ? '-' : text(v); } };
      })),
    }, [xs].concat(rows), host);
    R.charts[id] = u;
  }
  lines('dirty', 'dirty pages at the harvest (log)', perRound(function (r) { return r.phase === 'bulk' ? 0 : r.dirtyPages; }), count, String, 10);
  lines('sent', 'bytes sent in the round (log)', perRound(function (r) { return r.bytesSent; }), R.bytesTick, R.bytes, 2);
  // Over-reported pages per harvest, where the runs count them against the truth.
  if (cells.some(function (c) { return c.summary.roundsDetail.some(function (r) { return typeof r.overReported === 'number'; }); })) {
    document.getElementById('over-section').hidden = false;
    lines('over', 'pages over-reported at the harvest (log)', perRound(function (r) { return r.phase === 'bulk' ? 0 : r.overReported || 0; }), count, String, 10);
  }

  // Downtime (left axis, seconds) and bytes sent (right axis), a pair of bars per cell.
  var host = document.getElementById('totals');
  var ids = cells.map(function (c) { return c.index; });
  var u = new uPlot({
    width: R.width(host), height: 320,
    cursor: { drag: { x: false, y: false, setScale: false } },
    scales: {
      x: { time: false, auto: false, range: [ids[0] - 0.6, ids[ids.length - 1] + 0.6] },
      s: { auto: true, range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } },
      bytes: { auto: true, range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } },
    },
    axes: [
      { scale: 'x', label: 'cell', font: R.font, labelFont: R.labelFont, size: 40, labelSize: 22, grid: { show: false },
        incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
        values: function (u, splits) { return splits.map(function (v) { return v == null ? null : '#' + v; }); } },
      { scale: 's', label: 'downtime', font: R.font, labelFont: R.labelFont, labelSize: 22, size: R.fitSize,
        values: function (u, splits) { return splits.map(function (v) { return v == null ? null : v === 0 ? '0' : R.secsTick(v); }); } },
      { scale: 'bytes', side: 1, label: 'bytes sent', font: R.font, labelFont: R.labelFont, labelSize: 22, size: R.fitSize, grid: { show: false },
        incrs: POW2,
        values: function (u, splits) { return splits.map(function (v) { return v == null ? null : R.bytesTick(v); }); } },
    ],
    series: [
      { label: 'cell', value: function (u, v) { if (v == null) return '-'; var c = cells[ids.indexOf(v)]; return c ? name(c) : '-'; } },
      { label: 'downtime', scale: 's', fill: R.data.colours.stopCopy, stroke: R.data.colours.stopCopy, width: 0,
        paths: uPlot.paths.bars({ size: [0.35, 48], align: -1 }), points: { show: false }, value: function (u, v) { return v == null ? '-' : R.secs(v); } },
      { label: 'bytes sent', scale: 'bytes', fill: R.data.colours.precopy, stroke: R.data.colours.precopy, width: 0,
        paths: uPlot.paths.bars({ size: [0.35, 48], align: 1 }), points: { show: false }, value: function (u, v) { return v == null ? '-' : R.bytes(v); } },
    ],
  }, [ids, cells.map(function (c) { return c.summary.downtimeS; }), cells.map(function (c) { return c.summary.bytesSent; })], host);
  R.charts.totals = u;
})();
`;
