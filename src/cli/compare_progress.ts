// Progress of a comparison across its whole matrix: cells done out of all, and where each running
// cell is (its last round sent). As a bar redrawn in place on a terminal, with each finished cell
// scrolling above it; as one plain line per finished cell elsewhere; or nothing.
import type { CompareCell } from '../compare/matrix.js';
import type { MatrixListener } from '../compare/run.js';
import type { RoundRecord, SimSummary } from '../sim/summary.js';
import { drawsBar, fmtS, type ProgressStream } from './progress.js';
import { formatBytes } from './units.js';
import type { ProgressMode } from './options.js';

/** A finished cell as a line: `[3/8] cell 3 device seed 1: converged, 5 rounds, ...`. */
export function cellLine(done: number, total: number, cell: CompareCell, s: SimSummary): string {
  const result = s.converged ? `converged after ${s.rounds} rounds` : `did NOT converge in ${s.rounds} rounds`;
  return `[${String(done).padStart(String(total).length)}/${total}] cell ${cell.index} (${cell.label}): ${result}, downtime ${fmtS(s.downtimeS)}, sent ${formatBytes(s.bytesSent)}`;
}

/** Matrix progress: the runner's listener, and the end of the run. */
export interface MatrixProgress extends MatrixListener {
  finish(): void;
}

/** The progress of `total` cells in `mode` on `out`. */
export function matrixProgress(mode: ProgressMode, out: ProgressStream, total: number): MatrixProgress {
  if (mode === 'none') return { cellStart() {}, round() {}, cellDone() {}, finish() {} };
  const bar = drawsBar(mode, out);
  let done = 0;
  const running = new Map<number, number>(); // cell index -> last round sent (-1: none yet)
  let last = '';
  const draw = () => {
    if (!bar) return;
    const width = 30;
    const filled = Math.round((done / total) * width);
    const where = [...running].map(([i, r]) => `#${i} ${r < 0 ? 'starting' : `round ${r}`}`).join(', ');
    const text = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} cells${where ? `  running: ${where}` : ''}`;
    const line = text.slice(0, (out.columns ?? 100) - 1);
    if (line === last) return;
    last = line;
    out.write(`\r\x1b[2K${line}`);
  };
  return {
    cellStart(cell: CompareCell) {
      running.set(cell.index, -1);
      draw();
    },
    round(cell: CompareCell, r: RoundRecord) {
      if (!running.has(cell.index)) return;
      running.set(cell.index, r.round);
      draw();
    },
    cellDone(cell: CompareCell, s: SimSummary) {
      running.delete(cell.index);
      done++;
      out.write(`${bar ? '\r\x1b[2K' : ''}${cellLine(done, total, cell, s)}\n`);
      last = '';
      draw();
    },
    finish() {
      if (bar && last) out.write('\r\x1b[2K');
    },
  };
}
