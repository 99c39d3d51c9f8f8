// How much work a simulated migration may take, decided before it starts. Time stepping does not
// depend on the rates: a round is cut into at most MAX_STEPS_PER_ROUND steps. What the guest and
// the vGPU do in a round does: page writes and engine calls grow with rate x round length. The
// longest round sends all RAM (no round sends more), so its length, memory / bandwidth, bounds
// every round's work; a configuration whose longest round would pass a bound is refused with the
// numbers, instead of running for hours.
import type { SimConfig } from './config.js';
import { GUEST_PAGE } from './guest_layout.js';
import { VGPU_BUFFER, VGPU_WRITE } from './vgpu.js';
import { RANDOM_SHARE } from './workload.js';

/** Most activity steps in one round; a longer round takes longer steps than --step. */
export const MAX_STEPS_PER_ROUND = 1000;
/** Most random guest page writes in one round: 2^28, seconds of core work (a sweep's are free). */
export const MAX_ROUND_WRITES = 2 ** 28;
/** Most vGPU engine calls (pins, or dmaRw writes) in one round: 2^22. */
export const MAX_ROUND_DEVICE_CALLS = 2 ** 22;

/** Activity steps for `seconds` of virtual time: steps of `step`, at most MAX_STEPS_PER_ROUND. */
export function stepsFor(seconds: number, step: number): number {
  return Math.min(MAX_STEPS_PER_ROUND, Math.max(1, Math.ceil(seconds / step - 1e-9)));
}

/** The work of the longest round of a configuration. */
export interface RoundWork {
  /** Virtual seconds of the longest round: all RAM at the bandwidth. */
  seconds: number;
  /** Random guest page writes drawn in it. */
  writes: number;
  /** vGPU pin calls (churn) in it. */
  pins: number;
  /** vGPU dmaRw writes in it. */
  dmaWrites: number;
}

export function longestRoundWork(c: SimConfig): RoundWork {
  const seconds = c.memory / c.bandwidth;
  return {
    seconds,
    writes: (RANDOM_SHARE[c.workload] * c.dirtyRate * seconds) / GUEST_PAGE,
    pins: c.vgpu ? (c.vgpuChurn / VGPU_BUFFER) * seconds : 0,
    dmaWrites: c.vgpu ? (c.vgpuDmaRate / VGPU_WRITE) * seconds : 0,
  };
}

/**
 * Why a configuration would run too long, or null when its longest round is within the bounds.
 * The reason names the options that set the work, with the numbers.
 */
export function runTooLong(c: SimConfig): string | null {
  const w = longestRoundWork(c);
  const round = `the longest round sends all ${gib(c.memory)} of RAM at ${c.bandwidth} B/s, ${count(w.seconds)} s of virtual time`;
  if (w.writes > MAX_ROUND_WRITES) {
    return `run too long: ${round}, in which the guest would write ${count(w.writes)} pages, more than the ${MAX_ROUND_WRITES} a round may take; ` +
      'raise --bandwidth, or lower --dirty-rate or --memory';
  }
  if (w.pins > MAX_ROUND_DEVICE_CALLS) {
    return `run too long: ${round}, in which the vGPU would pin ${count(w.pins)} buffers, more than the ${MAX_ROUND_DEVICE_CALLS} a round may take; ` +
      'raise --bandwidth, or lower --vgpu-churn or --memory';
  }
  if (w.dmaWrites > MAX_ROUND_DEVICE_CALLS) {
    return `run too long: ${round}, in which the vGPU would make ${count(w.dmaWrites)} dmaRw writes, more than the ${MAX_ROUND_DEVICE_CALLS} a round may take; ` +
      'raise --bandwidth, or lower --vgpu-dma-rate or --memory';
  }
  return null;
}

function gib(bytes: number): string {
  return `${+(bytes / 2 ** 30).toFixed(3)} GiB`;
}

/** A count as an integer, in exponent form past 10^12. */
function count(n: number): string {
  return n < 1e12 ? String(Math.ceil(n)) : n.toExponential(2);
}
