// The page's shared script (plain ES2017, run in the browser before the charts): the embedded
// data, unit formatters for text and for axis ticks, the heat map's colour ramp, a tick thinner
// that keeps labels apart, and a hover tip. Everything lands on the page-global `R`.

/** Colours of the report, one source for the page's CSS, its scripts and the tests. */
export const COLOURS = {
  /** Heat map: a cell with no dirty page. */
  clean: [232, 236, 243],
  /** Heat map ramp from 1/255 dirty to all dirty (YlOrRd). */
  ramp: [[255, 237, 160], [254, 178, 76], [252, 78, 42], [189, 0, 38], [128, 0, 38]],
  bulk: '#9aa3b2',
  precopy: '#4c7bd9',
  stopCopy: '#2f9e44',
  unconverged: '#e8590c',
  limit: '#c62828',
} as const;

export const CLIENT_COMMON = String.raw`
var R = (function () {
  'use strict';
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var COLOURS = data.colours;
  var KiB = 1024, MiB = 1048576, GiB = 1073741824, TiB = 1099511627776;
  var UNITS = [[TiB, 'TiB'], [GiB, 'GiB'], [MiB, 'MiB'], [KiB, 'KiB']];
  /** Bytes with three significant digits: 769 MiB, 4.18 GiB. */
  function bytes(b) {
    for (var i = 0; i < UNITS.length; i++) {
      if (b >= UNITS[i][0]) {
        var v = b / UNITS[i][0];
        return (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) + ' ' + UNITS[i][1];
      }
    }
    return b.toFixed(0) + ' B';
  }
  /** Bytes for an axis tick: the shortest exact form, 0, 512 MiB, 1.5 GiB. */
  function bytesTick(b) {
    if (b === 0) return '0';
    for (var i = 0; i < UNITS.length; i++) {
      if (b >= UNITS[i][0]) return +(b / UNITS[i][0]).toFixed(2) + ' ' + UNITS[i][1];
    }
    return b + ' B';
  }
  /** Seconds as text: 645 ms, 13.74 s. */
  function secs(x) {
    return x === 0 ? '0 ms' : x < 0.01 ? +(x * 1000).toPrecision(2) + ' ms' : x < 10 ? (x * 1000).toFixed(0) + ' ms' : x.toFixed(2) + ' s';
  }
  /** Seconds for an axis tick: 20 ms, 1 s, 50 s. */
  function secsTick(x) { return x < 1 ? +(x * 1000).toPrecision(3) + ' ms' : +x.toPrecision(3) + ' s'; }
  function pct(d) { return (d / 2.55).toFixed(d > 0 && d < 3 ? 1 : 0) + ' %'; }

  /** Heat-map colour of a density 0..255: clean, or the ramp from 1 to 255. */
  function colour(d) {
    if (d === 0) return COLOURS.clean;
    var stops = COLOURS.ramp, t = (d - 1) / 254 * (stops.length - 1), i = Math.min(stops.length - 2, Math.floor(t)), f = t - i;
    return [0, 1, 2].map(function (k) { return Math.round(stops[i][k] + (stops[i + 1][k] - stops[i][k]) * f); });
  }

  /**
   * An axis filter for log scales that labels a uniform subset of the splits: the first of
   * levels (predicates, densest first) whose labels all stand at least minGap CSS px apart.
   * pinned, when a split, is always labelled, and level labels too close to it are dropped.
   * Splits left unlabelled keep their tick.
   */
  function sparse(minGap, levels, pinned) {
    return function (u, splits, axisIdx) {
      var scale = u.axes[axisIdx].scale;
      function pos(v) { return u.valToPos(v, scale); }
      var pin = pinned != null && splits.indexOf(pinned) >= 0 ? pinned : null;
      var kept = [];
      for (var l = 0; l < levels.length; l++) {
        kept = splits.filter(function (v) {
          return v != null && (v === pin || (levels[l](v) && (pin == null || Math.abs(pos(v) - pos(pin)) >= minGap)));
        }).sort(function (a, b) { return pos(a) - pos(b); });
        var apart = kept.every(function (v, i) { return i === 0 || pos(v) - pos(kept[i - 1]) >= minGap; });
        if (apart) break;
      }
      return splits.map(function (v) { return kept.indexOf(v) >= 0 ? v : null; });
    };
  }
  /** An axis size that fits its widest label (uPlot's own recipe). */
  function fitSize(u, values, axisIdx, cycle) {
    var axis = u.axes[axisIdx];
    if (cycle > 1) return axis._size;
    var longest = (values || []).reduce(function (a, v) { return v != null && String(v).length > a.length ? String(v) : a; }, '');
    u.ctx.font = axis.font[0];
    return Math.ceil(axis.ticks.size + axis.gap + u.ctx.measureText(longest).width / (window.devicePixelRatio || 1)) + 4;
  }
  /** A chart's width: its host block's (the page's column), bounded. */
  function width(host) { return Math.max(480, Math.min(1100, host.clientWidth)); }

  /** A hover tip inside a chart's cursor layer; show(lines, left, top) in the layer's CSS px. */
  function tip(u, id) {
    var el = document.createElement('div');
    el.className = 'tip'; el.id = id; el.style.display = 'none';
    u.over.appendChild(el);
    return {
      el: el,
      show: function (lines, left, top) {
        el.textContent = '';
        lines.forEach(function (l, i) { var d = document.createElement('div'); if (i === 0) d.className = 'tip-head'; d.textContent = l; el.appendChild(d); });
        el.style.display = 'block';
        var w = el.offsetWidth, h = el.offsetHeight, W = u.over.clientWidth;
        el.style.left = (left + 14 + w > W ? Math.max(0, left - 14 - w) : left + 14) + 'px';
        el.style.top = Math.max(0, top - h - 10) + 'px';
      },
      hide: function () { el.style.display = 'none'; },
    };
  }
  var font = '12px system-ui, sans-serif', labelFont = '600 12px system-ui, sans-serif';
  return {
    data: data, bytes: bytes, bytesTick: bytesTick, secs: secs, secsTick: secsTick, pct: pct, colour: colour,
    sparse: sparse, fitSize: fitSize, width: width, tip: tip, font: font, labelFont: labelFont, charts: {},
  };
})();
window.vfioReport = R.charts;
`;
