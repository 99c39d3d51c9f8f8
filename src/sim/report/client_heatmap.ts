// The page's heat-map script (plain ES2017, uPlot): one row per harvest, one column per bucket of
// guest RAM in RAM order, coloured by the share of the bucket's pages that were dirty. uPlot
// draws the axes (titled, ticks thinned so labels never overlap) and tracks the cursor; the cells
// are one small image, a pixel per bucket and round, scaled into the plot without smoothing.
// Hovering a cell shows its round, RAM and guest-physical range and its dirty share.

export const CLIENT_HEATMAP = String.raw`
(function () {
  'use strict';
  var hm = R.data.heatmap, rows = hm.rows, nb = hm.buckets, PAGE = 4096;
  var ramBytes = hm.ramPages * PAGE, bucketBytes = hm.pagesPerBucket * PAGE, lowBytes = hm.lowPages * PAGE;
  var holeBytes = 4294967296 - lowBytes; // GPA = RAM offset + this, above the hole
  var cells = rows.map(function (r) {
    var raw = atob(r.cells), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  });
  var host = document.getElementById('heatmap');
  if (!rows.length) { host.textContent = 'No harvest: the run ended after the bulk copy.'; return; }
  var first = rows[0].round, last = rows[rows.length - 1].round;

  // The cells as an image: one pixel per bucket and row.
  var img = document.createElement('canvas');
  img.width = nb; img.height = rows.length;
  var ig = img.getContext('2d'), id = ig.createImageData(nb, rows.length);
  cells.forEach(function (row, y) {
    for (var x = 0; x < nb; x++) {
      var c = R.colour(row[x]), k = (y * nb + x) * 4;
      id.data[k] = c[0]; id.data[k + 1] = c[1]; id.data[k + 2] = c[2]; id.data[k + 3] = 255;
    }
  });
  ig.putImageData(id, 0, 0);

  function rowAt(round) {
    for (var i = 0; i < rows.length; i++) if (rows[i].round === round) return i;
    return -1;
  }
  function drawCells(u) {
    var g = u.ctx, b = u.bbox, dpr = window.devicePixelRatio || 1;
    g.save();
    g.beginPath(); g.rect(b.left, b.top, b.width, b.height); g.clip();
    g.imageSmoothingEnabled = false;
    var x0 = u.valToPos(0, 'x', true), x1 = u.valToPos(nb * bucketBytes, 'x', true);
    rows.forEach(function (r, i) {
      var ya = u.valToPos(r.round - 0.5, 'y', true), yb = u.valToPos(r.round + 0.5, 'y', true);
      var top = Math.min(ya, yb), h = Math.abs(yb - ya);
      // A hairline between rows once they are tall enough to spare it.
      g.drawImage(img, 0, i, nb, 1, x0, top, x1 - x0, h >= 6 * dpr ? h - dpr : h);
    });
    g.restore();
    if (lowBytes < ramBytes) {
      var hx = Math.round(u.valToPos(lowBytes, 'x', true)) + 0.5;
      g.save();
      g.strokeStyle = '#1d2230'; g.lineWidth = dpr; g.setLineDash([4 * dpr, 3 * dpr]);
      g.beginPath(); g.moveTo(hx, b.top - 4 * dpr); g.lineTo(hx, b.top + b.height); g.stroke();
      g.setLineDash([]); g.fillStyle = '#1d2230'; g.font = R.font.replace('12px', 11 * dpr + 'px');
      g.textBaseline = 'bottom';
      var right = hx + 4 * dpr < b.left + b.width * 0.8;
      g.textAlign = right ? 'left' : 'right';
      g.fillText(right ? 'RAM above 4 GiB \u2192' : '\u2190 RAM below 4 GiB', right ? hx + 4 * dpr : hx - 4 * dpr, b.top - 3 * dpr);
      g.restore();
    }
  }

  // Rows of 4 to 22 px, the map at most 480 px tall (rows thinner than a pixel past 120 rounds,
  // each still on hover); a short map still gets room for its titled y axis.
  var plotH = Math.max(110, Math.min(480, rows.length * Math.max(4, Math.min(22, Math.floor(330 / rows.length)))));
  var u = new uPlot({
    width: R.width(host),
    height: plotH + 16 + 34 + 22,
    padding: [16, 32, 0, 0],
    legend: { show: false },
    cursor: { points: { show: false }, drag: { x: false, y: false, setScale: false }, focus: { prox: -1 } },
    scales: {
      x: { time: false, auto: false, range: [0, ramBytes] },
      y: { auto: false, dir: -1, range: [first - 0.5, last + 0.5] },
    },
    axes: [
      {
        scale: 'x', label: 'guest RAM offset (RAM order: low RAM, then RAM above 4 GiB)', font: R.font, labelFont: R.labelFont,
        size: 34, labelSize: 22, space: 84, grid: { show: false },
        incrs: Array.from({ length: 40 }, function (v, i) { return Math.pow(2, i + 12); }),
        values: function (u, splits) { return splits.map(function (v) { return v == null ? null : R.bytesTick(v); }); },
      },
      {
        scale: 'y', label: 'round (harvest)', font: R.font, labelFont: R.labelFont, labelSize: 22, size: R.fitSize,
        space: 16, grid: { show: false }, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000],
        values: function (u, splits) { return splits.map(function (v) { return v == null ? null : String(v); }); },
      },
    ],
    series: [{}, { label: 'dirty share', paths: function () { return null; }, points: { show: false } }],
    hooks: { draw: [drawCells], setCursor: [hover] },
  }, [[0, ramBytes], [null, null]], host);

  var t = R.tip(u, 'heatmap-tip');
  function hex(n) { return '0x' + n.toString(16); }
  function gpa(off) { return off < lowBytes ? off : off + holeBytes; }
  function hover(u) {
    if (!t) return;
    var l = u.cursor.left, tp = u.cursor.top;
    if (l == null || l < 0 || tp < 0) return t.hide();
    var off = u.posToVal(l, 'x'), i = rowAt(Math.round(u.posToVal(tp, 'y'))), b = Math.floor(off / bucketBytes);
    if (i < 0 || b < 0 || b >= nb || off >= ramBytes) return t.hide();
    var from = b * bucketBytes, to = Math.min(ramBytes, from + bucketBytes), d = cells[i][b];
    var lastByte = to - 1, span = lowBytes > from && lowBytes < to ? ' (across the hole)' : '';
    t.show([
      'round ' + rows[i].round + ': ' + R.pct(d) + ' dirty',
      'about ' + R.bytes(Math.round(d / 255 * (to - from) / PAGE) * PAGE) + ' of ' + R.bytes(to - from),
      'RAM ' + R.bytesTick(from) + ' \u2013 ' + R.bytesTick(to),
      'GPA ' + hex(gpa(from)) + ' \u2013 ' + hex(gpa(lastByte)) + span,
    ], l, tp);
  }
  R.charts.heatmap = u;

  // The colour scale beside the map: the clean swatch, then the ramp with its ticks.
  var bar = document.getElementById('heat-ramp'), stops = [];
  for (var k = 0; k <= 10; k++) stops.push('rgb(' + R.colour(Math.max(1, Math.round(k * 25.5))).join(',') + ') ' + k * 10 + '%');
  bar.style.background = 'linear-gradient(to right, ' + stops.join(', ') + ')';
  document.getElementById('heat-clean').style.background = 'rgb(' + R.colour(0).join(',') + ')';
  document.getElementById('heat-bucket').textContent = 'Each cell: ' + R.bytes(bucketBytes) + ' of RAM (' +
    hm.pagesPerBucket + ' pages of 4 KiB) in one round; ' + nb + ' cells a row.';
  document.body.setAttribute('data-drawn', String(rows.length));
})();
`;
