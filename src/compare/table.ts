// The text outputs of `vfio-dirty compare`: one row per cell, the figures each summary gives, and
// the simulate command line of each cell; and the JSON document (--json).
import { fmtS } from '../cli/progress.js';
import { formatBytes } from '../cli/units.js';
import type { SimSummary } from '../sim/summary.js';
import type { CompareCell, MatrixDefinition } from './matrix.js';

/** The schema name and version of compare's JSON output. */
export const COMPARE_SCHEMA = 'vfio-dirty/compare/v1';

/** A cell and its run. */
export interface CellResult {
  cell: CompareCell;
  summary: SimSummary;
}

/** Pages sent again after the bulk round: every page of a later round was sent in the bulk one. */
export function pagesResent(s: SimSummary): number {
  return s.roundsDetail.reduce((n, r) => n + (r.phase === 'bulk' ? 0 : r.pagesSent), 0);
}

/**
 * Pages the tracking reported dirty that nothing wrote (the summary's `tracking.overReported`,
 * counted against the truth the engine knows), when the summary has it; null otherwise.
 */
export function pagesOverReported(s: SimSummary): number | null {
  const n = (s as { tracking?: { overReported?: unknown } | null }).tracking?.overReported;
  return typeof n === 'number' ? n : null;
}

type Column = [head: string, value: (r: CellResult) => string, left?: boolean];

/** The columns, the strategy and swept value first where the matrix has them. */
function columns(m: MatrixDefinition): Column[] {
  const cols: Column[] = [['cell', (r) => String(r.cell.index)]];
  if (m.strategies) cols.push(['tracking', (r) => r.cell.tracking ?? '', true]);
  if (m.sweep) cols.push([m.sweep.option, (r) => r.cell.value ?? '', true]);
  cols.push(
    ['seed', (r) => String(r.cell.seed)],
    ['converged', (r) => (r.summary.converged ? 'yes' : 'no'), true],
    ['rounds', (r) => String(r.summary.rounds)],
    ['downtime', (r) => fmtS(r.summary.downtimeS)],
    ['sent', (r) => formatBytes(r.summary.bytesSent)],
    ['pages re-sent', (r) => String(pagesResent(r.summary))],
    ['over-reported', (r) => String(pagesOverReported(r.summary) ?? '-')],
    ['peak heap', (r) => formatBytes(r.summary.engine.peakHeapBytes)],
    // Measured on a real clock: last, so that a reader (and the README's test) finds it there.
    ['engine ms', (r) => r.summary.engine.totalMs.toFixed(2)],
  );
  return cols;
}

/** The table as text cells: its head, one row per cell, and which columns are text (left-aligned). */
export function compareTable(m: MatrixDefinition, results: readonly CellResult[]): { head: string[]; rows: string[][]; left: boolean[] } {
  const cols = columns(m);
  return { head: cols.map((c) => c[0]), rows: results.map((r) => cols.map((c) => c[1](r))), left: cols.map((c) => c[2] === true) };
}

/** The table: a header and one row per cell, columns aligned (text left, numbers right). */
export function formatCompareTable(m: MatrixDefinition, results: readonly CellResult[]): string {
  const { head, rows, left } = compareTable(m, results);
  const all = [head, ...rows];
  const widths = head.map((_, i) => Math.max(...all.map((row) => row[i].length)));
  return all
    .map((row) => row.map((v, i) => (left[i] ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ').trimEnd())
    .join('\n');
}

/** A word of a command line as a POSIX shell reads it back. */
function shellWord(w: string): string {
  return /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

/** The simulate command line of a cell. */
export function simulateCommandLine(cell: CompareCell): string {
  return ['vfio-dirty', 'simulate', ...cell.simulateArgs].map(shellWord).join(' ');
}

/** The whole text output: what ran, the table, and each cell as a simulate command. */
export function formatCompare(m: MatrixDefinition, results: readonly CellResult[]): string {
  const axes = [
    m.strategies && `tracking ${m.strategies.join(', ')}`,
    m.sweep && `${m.sweep.option} ${m.sweep.values.join(', ')}`,
    `seed${m.seeds.length > 1 ? 's' : ''} ${m.seeds.join(', ')}`,
  ].filter(Boolean);
  return [
    `Compared ${results.length} run${results.length === 1 ? '' : 's'}: ${axes.join(' x ')}`,
    '',
    formatCompareTable(m, results),
    '',
    'Each cell alone, with the same figures:',
    ...results.map((r) => `  ${String(r.cell.index).padStart(String(results.length).length)}  ${simulateCommandLine(r.cell)}`),
  ].join('\n');
}

/** The JSON document of --json: the matrix, and every cell with its full summary. */
export function compareJson(m: MatrixDefinition, results: readonly CellResult[]): object {
  return {
    schema: COMPARE_SCHEMA,
    matrix: { ...m, cells: results.length },
    cells: results.map(({ cell, summary }) => ({
      index: cell.index, label: cell.label, tracking: cell.tracking, value: cell.value, seed: cell.seed,
      simulateArgs: cell.simulateArgs, summary,
    })),
  };
}
