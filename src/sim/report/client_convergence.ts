// The page's convergence script (plain ES2017, uPlot): one bar per round on a log byte axis,
// round 0 (the bulk copy) in its own colour and label apart from the harvests. Expected downtime
// is dirty bytes / bandwidth, so the right axis is the same scale read in seconds (its range is
// the byte range divided by the bandwidth), and the downtime limit is drawn on it at its value in
// seconds, where it also meets the byte axis at limit x bandwidth. Hovering a round shows it.

export const CLIENT_CONVERGENCE = String.raw`
(function () {
  'use strict';
  var s = R.data.summary, cfg = s.config, rounds = s.roundsDetail, bw = cfg.bandwidth;
  var limit = cfg.downtimeLimit, limitBytes = limit * bw, PAGE = 4096;
  var KINDS = [
    { phase: 'bulk', label: 'bulk copy (round 0: all RAM sent)', colour: R.data.colours.bulk },
    { phase: 'precopy', label: 'pre-copy round: dirty at its harvest', colour: R.data.colours.precopy },
    { phase: 'stop-copy', label: 'stop-copy: dirty at the last harvest, sent with the guest stopped', colour: R.data.colours.stopCopy },
    { phase: 'unconverged', label: 'last harvest, not sent (did not converge)', colour: R.data.colours.unconverged },
  ];
  function dirtyBytes(r) { return r.phase === 'bulk' ? r.bytesSent : r.dirtyPages * PAGE; }
  var kinds = KINDS.filter(function (k) { return rounds.some(function (r) { return r.phase === k.phase; }); });
  var values = rounds.map(dirtyBytes);
  var positive = values.filter(function (b) { return b > 0; }).concat([limitBytes]);
  // Whole powers of two around the bars and the limit, the same range in seconds on the right.
  var lo = Math.pow(2, Math.floor(Math.log2(Math.min.apply(null, positive) / 1.5)));
  var hi = Math.pow(2, Math.ceil(Math.log2(Math.max.apply(null, positive) * 1.1)));
  var xs = rounds.map(function (r) { return r.round; });
  var first = xs[0], last = xs[xs.length - 1];

  function pow2Splits(u, ai, min, max) {
    var out = [];
    for (var e = Math.ceil(Math.log2(min) - 1e-9); Math.pow(2, e) <= max * (1 + 1e-9); e++) out.push(Math.pow(2, e));
    return out;
  }
  function decadeSplits(u, ai, min, max) {
    var out = [];
    for (var e = Math.floor(Math.log10(min)); Math.pow(10, e) <= max; e++) {
      [1, 2, 5].forEach(function (m) { var v = +(m * Math.pow(10, e)).toPrecision(12); if (v >= min * (1 - 1e-9) && v <= max * (1 + 1e-9)) out.push(v); });
    }
    if (out.indexOf(limit) < 0) out.push(limit);
    return out.sort(function (a, b) { return a - b; });
  }
  // Labels: every power of two, or every 2nd, 5th ... (whole KiB/MiB/GiB/TiB stay in step);
  // seconds at 1-2-5, or each decade, or fewer. The limit is always a labelled split in seconds.
  function exp2(v) { return Math.round(Math.log2(v)); }
  function exp10(v) { return Math.round(Math.log10(v)); }
  function mant(v) { return +v.toExponential(0)[0]; }
  var bytesLevels = [1, 2, 5, 10, 20].map(function (k) { return function (v) { return exp2(v) % k === 0; }; });
  var secsLevels = [
    function (v) { return [1, 2, 5].indexOf(mant(v)) >= 0; },
    function (v) { return mant(v) === 1; },
  ].concat([2, 3, 6].map(function (k) { return function (v) { return mant(v) === 1 && ((exp10(v) % k) + k) % k === 0; }; }));
  function drawLimit(u) {
    var g = u.ctx, b = u.bbox, dpr = window.devicePixelRatio || 1, y = Math.round(u.valToPos(limit, 's', true)) + 0.5;
    g.save();
    g.strokeStyle = R.data.colours.limit; g.lineWidth = 2 * dpr; g.setLineDash([8 * dpr, 5 * dpr]);
    g.beginPath(); g.moveTo(b.left, y); g.lineTo(b.left + b.width, y); g.stroke();
    g.restore();
  }

  var bars = uPlot.paths.bars({ size: [0.7, 64] });
  var series = [{ label: 'round' }].concat(kinds.map(function (k) {
    return { label: k.label, scale: 'bytes', fill: k.colour, stroke: k.colour, width: 0, paths: bars, points: { show: false }, fillTo: lo };
  })).concat([{ label: 'downtime limit ' + R.secs(limit) + ' (= ' + R.bytes(limitBytes) + ' at ' + (bw / 1048576).toFixed(0) + ' MiB/s)', scale: 's', stroke: R.data.colours.limit, width: 2, dash: [8, 5], paths: function () { return null; }, points: { show: false } }]);
  var data = [xs].concat(kinds.map(function (k) {
    return rounds.map(function (r, i) { return r.phase === k.phase && values[i] > 0 ? values[i] : null; });
  })).concat([xs.map(function () { return null; })]);
  var widest = String(last).length;

  var host = document.getElementById('convergence');
  var u = new uPlot({
    width: R.width(host),
    height: 360,
    legend: { live: false },
    cursor: { points: { show: false }, drag: { x: false, y: false, setScale: false }, y: false },
    scales: {
      x: { time: false, auto: false, range: [first - 0.5, last + 0.5] },
      bytes: { distr: 3, log: 2, auto: false, range: [lo, hi] },
      s: { distr: 3, log: 10, auto: false, range: [lo / bw, hi / bw] },
    },
    axes: [
      {
        scale: 'x', label: 'round (0 = bulk copy; every later round starts with a harvest)', font: R.font, labelFont: R.labelFont,
        size: 48, labelSize: 24, space: Math.max(30, widest * 8 + 16), grid: { show: false },
        incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000],
        values: function (u, splits) { return splits.map(function (v) { return v == null ? null : v === 0 ? '0\nbulk' : String(v); }); },
      },
      {
        scale: 'bytes', label: 'dirty bytes at the harvest (log scale)', font: R.font, labelFont: R.labelFont, labelSize: 22,
        size: R.fitSize, splits: pow2Splits, filter: R.sparse(20, bytesLevels),
        values: function (u, splits) { return splits.map(function (v) { return v == null ? null : R.bytesTick(v); }); },
      },
      {
        scale: 's', side: 1, label: 'expected downtime (log scale)', font: R.font, labelFont: R.labelFont, labelSize: 22,
        size: R.fitSize, splits: decadeSplits, filter: R.sparse(20, secsLevels, limit), grid: { show: false },
        values: function (u, splits) { return splits.map(function (v) { return v == null ? null : R.secsTick(v); }); },
      },
    ],
    series: series,
    hooks: { draw: [drawLimit], setCursor: [hover] },
  }, data, host);

  var t = R.tip(u, 'convergence-tip');
  function hover(u) {
    if (!t) return;
    var i = u.cursor.idx, l = u.cursor.left;
    if (i == null || l == null || l < 0) return t.hide();
    var r = rounds[i], b = values[i], lines;
    if (r.phase === 'bulk') {
      lines = ['round 0: bulk copy', 'sent all RAM: ' + R.bytes(r.bytesSent) + ' in ' + R.secs(r.durationS)];
    } else {
      lines = [
        'round ' + r.round + ': ' + (r.phase === 'precopy' ? 'pre-copy' : r.phase),
        'dirty at harvest: ' + R.bytes(b) + (r.allDirty ? ' (all-dirty report)' : ''),
        'expected downtime: ' + R.secs(r.expectedDowntimeS) + (r.expectedDowntimeS <= limit ? ' \u2264 ' : ' > ') + R.secs(limit),
        r.phase === 'unconverged' ? 'not sent' : 'sent ' + R.bytes(r.bytesSent) + ' in ' + R.secs(r.durationS),
        'dirty rate ' + R.bytes(r.dirtyRate) + '/s; engine ' + r.harvestMs.toFixed(2) + ' ms',
      ];
    }
    t.show(lines, l, b > 0 ? u.valToPos(b, 'bytes') : u.over.clientHeight / 2);
  }
  R.charts.convergence = u;
})();
`;
