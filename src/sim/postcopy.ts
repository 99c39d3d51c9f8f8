// Postcopy, as a comparison: instead of another pre-copy round, the guest stops only to send the
// device's stop-copy data, then runs at the destination while the pages still dirty are streamed
// in the background, in ascending order, at the link bandwidth. A page the guest touches before
// the stream has sent it faults: the destination requests it and the vCPU waits a round trip and
// the page's transfer (`--postcopy-rtt` + 4104 bytes / bandwidth). The guest's accesses are its
// writes (the workload, unthrottled); the model leaves out reads, and the bandwidth the requests
// take from the stream.
//
// Counting is done on engine bitmaps: `have` holds the pages the destination has (those that were
// never dirty, those streamed, those fetched); each step streams its share (a range set), then
// ORs the guest's writes of the step into `have`: the bits that turn on are the faults.
import { DirtyBitmap } from '../core/dirty_bitmap.js';
import type { Core } from '../wasm.js';
import { stepsFor } from './run_bounds.js';
import { NORMAL_PAGE_WIRE } from './transfer.js';

/** What postcopy cost the guest. */
export interface PostcopyResult {
  /** Pages still dirty at the switch, streamed or fetched. */
  pages: number;
  /** Pages the guest touched before the stream sent them: fetched on demand. */
  faults: number;
  /** Virtual seconds the guest waited for them. */
  waitS: number;
  /** Virtual seconds of the background stream. */
  streamS: number;
}

/** What postcopy needs of the VM: its CPU log and activity in virtual time. */
export interface PostcopyVm {
  core: Core;
  gpaPages: number;
  /** Guest and device activity in (t0, t1]; the guest's writes land in `cpuLog`. */
  run(t0: number, t1: number): void;
  readonly cpuLog: DirtyBitmap;
}

/**
 * Runs the postcopy phase from virtual time `t0`, with `dirty` the (first page, pages) runs still
 * dirty at the switch (ascending).
 */
export function runPostcopy(vm: PostcopyVm, dirty: Uint32Array, t0: number, bandwidth: number, rttS: number, stepS: number): PostcopyResult {
  let pages = 0;
  for (let i = 1; i < dirty.length; i += 2) pages += dirty[i];
  const streamS = (pages * NORMAL_PAGE_WIRE) / bandwidth;
  const have = DirtyBitmap.create(vm.core, vm.gpaPages);
  try {
    have.setRange(0, vm.gpaPages);
    for (let i = 0; i < dirty.length; i += 2) have.clearRange(dirty[i], dirty[i + 1]);
    vm.cpuLog.clear();
    const steps = pages === 0 ? 0 : stepsFor(streamS, stepS);
    let faults = 0;
    let run = 0; // the stream's position: run index and pages sent of it
    let inRun = 0;
    let sent = 0;
    for (let k = 0; k < steps; k++) {
      // The stream has sent floor(pages x k / steps) pages by the start of step k.
      let toSend = Math.floor((pages * k) / steps) - sent;
      sent += toSend;
      while (toSend > 0) {
        const n = Math.min(toSend, dirty[2 * run + 1] - inRun);
        have.setRange(dirty[2 * run] + inRun, n);
        inRun += n;
        toSend -= n;
        if (inRun === dirty[2 * run + 1]) {
          run++;
          inRun = 0;
        }
      }
      const a = t0 + (streamS * k) / steps;
      const b = k === steps - 1 ? t0 + streamS : t0 + (streamS * (k + 1)) / steps;
      vm.run(a, b);
      const before = have.count();
      vm.cpuLog.orInto(have, 0);
      faults += have.count() - before;
      vm.cpuLog.clear();
    }
    return { pages, faults, waitS: faults * (rttS + NORMAL_PAGE_WIRE / bandwidth), streamS };
  } finally {
    have.dispose();
  }
}
