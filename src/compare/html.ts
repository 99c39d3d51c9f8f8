// The self-contained HTML page of `vfio-dirty compare --report`: what ran, the table of cells (the
// text table's columns), per-round charts with one line per cell, and the downtime and bytes sent
// of every cell side by side. Like the simulate report it loads nothing from elsewhere: the data
// (compare's --json document) is embedded, and uPlot is inlined by the same code (report/page.ts).
import { COLOURS } from '../sim/report/client_common.js';
import { embeddedJson, esc, pageHead, pageTail, uplotInline } from '../sim/report/page.js';
import { CELL_PALETTE, CLIENT_COMPARE } from './client_compare.js';
import type { MatrixDefinition } from './matrix.js';
import { compareJson, compareTable, simulateCommandLine, type CellResult } from './table.js';

/**
 * Renders the comparison page.
 * @returns the page's text
 * @throws Error when the `uplot` package cannot be read
 */
export function renderCompareReport(m: MatrixDefinition, results: readonly CellResult[]): string {
  const uplot = uplotInline();
  const json = embeddedJson({ colours: COLOURS, palette: CELL_PALETTE, compare: compareJson(m, results) });
  const title = `vfio-dirty: ${results.length} simulated migration${results.length === 1 ? '' : 's'} compared`;
  const { head, rows, left } = compareTable(m, results);
  const td = (tag: 'th' | 'td', v: string, i: number) => `<${tag}${left[i] ? ' class="l"' : ''}>${esc(v)}</${tag}>`;
  const table = [
    `<tr>${head.map((h, i) => td('th', h, i)).join('')}</tr>`,
    ...rows.map((r, k) => `<tr style="--c:${CELL_PALETTE[k % CELL_PALETTE.length]}">${r.map((v, i) => td('td', v, i)).join('')}</tr>`),
  ].join('\n');
  const what = [
    m.strategies && `tracking strategies ${m.strategies.join(', ')}`,
    m.sweep && `--${m.sweep.option} over ${m.sweep.values.join(', ')}`,
    `seed${m.seeds.length > 1 ? 's' : ''} ${m.seeds.join(', ')}`,
  ].filter(Boolean).join(' \u00d7 ');
  return `${pageHead(title, uplot.style, PAGE_CSS)}
<p class="what">${esc(what)}; every cell from <code>simulate ${esc(m.base.join(' ') || '(defaults)')}</code></p>
<div class="table-wrap"><table id="cells">
${table}
</table></div>
<p class="note">Pages re-sent: pages sent again after the bulk round. Over-reported: pages the tracking reported that nothing wrote, where the run counts them ('-' otherwise). Engine ms: real time of the harvests on the engine.</p>
<h2>Dirty pages per round</h2>
<p class="note">The pages each harvest found dirty (CPU dirty log merged with the device's tracking), one line per cell. Hover for the values.</p>
<div class="figure" id="dirty" role="img" aria-label="dirty pages per round, one line per cell"></div>
<h2>Bytes sent per round</h2>
<p class="note">Round 0 is the bulk copy of all RAM; each later round sends what its harvest found dirty (the last one with the guest stopped).</p>
<div class="figure" id="sent" role="img" aria-label="bytes sent per round, one line per cell"></div>
<section id="over-section" hidden>
<h2>Over-reported pages per round</h2>
<p class="note">Pages each harvest reported that nothing wrote since the previous one (the engine knows the truth): sent without need. A cell with none has no point on this log scale.</p>
<div class="figure" id="over" role="img" aria-label="over-reported pages per round, one line per cell"></div>
</section>
<h2>Downtime and bytes sent, per cell</h2>
<p class="note">Left bar: downtime (a cell that did not converge shows the downtime it would have had at its last harvest). Right bar: all bytes sent over the link.</p>
<div class="figure" id="totals" role="img" aria-label="downtime and bytes sent per cell"></div>
<h2>Each cell alone</h2>
<p class="note">Each cell is this simulate command; it gives the same figures (the engine's times aside).</p>
<pre id="commands">${results.map((r) => esc(`#${r.cell.index}  ${simulateCommandLine(r.cell)}`)).join('\n')}</pre>
${pageTail(uplot, json, [CLIENT_COMPARE])}`;
}

const PAGE_CSS = `
  .what { margin: 0 0 12px; color: #334; }
  code, pre { font: 12px/1.4 ui-monospace, monospace; }
  pre#commands { white-space: pre-wrap; background: #f4f6fa; padding: 8px 10px; }
  .table-wrap { overflow-x: auto; }
  #cells { border-collapse: collapse; font-variant-numeric: tabular-nums; }
  #cells td, #cells th { padding: 2px 10px 2px 0; text-align: right; white-space: nowrap; }
  #cells th { border-bottom: 1px solid #ccd; font-weight: 600; }
  #cells .l { text-align: left; }
  #cells tr td:first-child { border-left: 4px solid var(--c); padding-left: 6px; }
`;
