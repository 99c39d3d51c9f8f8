// One cell of a comparison: a simulation on a fresh engine, as `vfio-dirty simulate` runs it, the
// engine disposed after. The worker thread and the in-process runner both call this.
import { Engine } from '../engine.js';
import type { SimConfig } from '../sim/config.js';
import { simulate } from '../sim/simulator.js';
import type { RoundRecord, SimSummary } from '../sim/summary.js';
import { CoreRecycler } from '../core_recycler.js';

/** What a cell reports while it runs: a round has been sent (or ended the run). */
export type RoundListener = (r: RoundRecord) => void;

// The cells of a thread run one after another, each on a new engine, and each takes over the
// core instance the previous one left, made new (src/core_recycler.ts). A new instance per
// cell meant a fresh memory to map and fault in (about 11,000 page faults a cell of a 128 GiB
// guest; two threads of one process faulting at once also wait on each other in the kernel), and
// new export functions: V8 then dropped the optimised code that had called the old ones and
// compiled it again, on each thread, in the second and third cells.
const recycler = new CoreRecycler();

/**
 * Runs one simulated migration of `config` on an engine of its own.
 * @returns its summary
 * @throws what the simulator throws (the engine is disposed first)
 */
export async function runCell(config: SimConfig, onRound?: RoundListener): Promise<SimSummary> {
  const engine = await Engine.create(undefined, recycler);
  try {
    const progress = onRound && { roundStart() {}, advance() {}, roundEnd: onRound, finish() {} };
    return simulate(engine, config, { progress }).summary;
  } finally {
    engine.dispose();
  }
}
