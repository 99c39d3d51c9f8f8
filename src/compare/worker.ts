// The worker thread of `vfio-dirty compare` (run by the tinypool pool of run.ts): each task is one
// cell, run on an engine of this thread's own; each finished round goes back on the task's port.
import type { MessagePort } from 'node:worker_threads';
import type { SimConfig } from '../sim/config.js';
import type { RoundRecord, SimSummary } from '../sim/summary.js';
import { runCell } from './cell.js';

/** A task: the cell's configuration and the port its rounds are posted on. */
export interface CellTask {
  config: SimConfig;
  port: MessagePort;
}

/** What a task posts on its port: that it started, then each round sent. */
export type CellMessage = { start: true } | { round: RoundRecord };

/** Runs one cell; returns its summary (cloned to the main thread). */
export default async function runTask(task: CellTask): Promise<SimSummary> {
  const post = (m: CellMessage) => task.port.postMessage(m);
  try {
    post({ start: true });
    return await runCell(task.config, (round) => post({ round }));
  } finally {
    task.port.close();
  }
}
