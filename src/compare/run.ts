// Runs the cells of a comparison: spread over worker threads by a tinypool pool (one engine per
// cell, one cell at a time per thread), or one after another on this thread. Summaries come back
// in cell order, whichever finishes first; the first failure stops the rest and names its cell.
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import { Tinypool } from 'tinypool';
import type { RoundRecord, SimSummary } from '../sim/summary.js';
import { workerModuleUrl } from '../worker_url.js';
import { runCell } from './cell.js';
import type { CompareCell } from './matrix.js';
import type { CellMessage, CellTask } from './worker.js';

/** What the runner tells while cells run. */
export interface MatrixListener {
  /** A cell starts. */
  cellStart?(cell: CompareCell): void;
  /** One of a running cell's rounds has been sent. */
  round?(cell: CompareCell, r: RoundRecord): void;
  /** A cell is done. */
  cellDone?(cell: CompareCell, summary: SimSummary): void;
}

/** A cell failed: the message names it. */
export class CellError extends Error {
  override name = 'CellError';
  constructor(readonly cell: CompareCell, cause: unknown) {
    super(`cell ${cell.index} (${cell.label}): ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/**
 * Runs `cells` on `jobs` worker threads (0: on this thread, one after another).
 * @returns the summaries, in the order of `cells`
 * @throws CellError for the first cell that failed (the cells not started are not run)
 */
export async function runCells(cells: readonly CompareCell[], jobs: number, listener: MatrixListener = {}): Promise<SimSummary[]> {
  if (jobs === 0) {
    const out: SimSummary[] = [];
    for (const cell of cells) {
      listener.cellStart?.(cell);
      try {
        out.push(await runCell(cell.config, (r) => listener.round?.(cell, r)));
      } catch (e) {
        throw new CellError(cell, e);
      }
      listener.cellDone?.(cell, out[out.length - 1]);
    }
    return out;
  }
  const threads = Math.min(jobs, cells.length);
  const pool = new Tinypool({ filename: (await workerModuleUrl(import.meta.url, 'worker')).href, minThreads: threads, maxThreads: threads });
  let failed = false;
  try {
    const one = async (cell: CompareCell): Promise<SimSummary> => {
      const { port1, port2 } = new MessageChannel();
      const tell = (m: CellMessage) => {
        if (failed) return;
        if ('start' in m) listener.cellStart?.(cell);
        else listener.round?.(cell, m.round);
      };
      port1.on('message', tell);
      try {
        const task: CellTask = { config: cell.config, port: port2 };
        const summary = (await pool.run(task, { transferList: [port2] })) as SimSummary;
        // What the cell posted before it returned is told before it is done.
        for (let m = receiveMessageOnPort(port1); m; m = receiveMessageOnPort(port1)) tell(m.message as CellMessage);
        if (!failed) listener.cellDone?.(cell, summary);
        return summary;
      } catch (e) {
        failed = true;
        throw new CellError(cell, e);
      } finally {
        port1.close();
      }
    };
    return await Promise.all(cells.map(one));
  } finally {
    await pool.destroy();
  }
}
