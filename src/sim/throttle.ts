// QEMU's convergence aids, as migration/ram.c runs them at each dirty sync.
//
// A period closes at the first sync more than one second (virtual) after the previous close. At
// the close, the bytes dirtied in the period (pages the syncs found dirty x 4 KiB) are compared
// with throttle-trigger-threshold percent of the bytes transferred in it; each time they exceed
// it a counter goes up, and when it reaches 2 it is reset and the guest is slowed (QEMU's
// migration_trigger_throttle: the counter is not reset by a period that stays under, so "twice"
// means twice since the last step, not twice in a row):
//
// - auto-converge: the vCPU throttle starts at cpu-throttle-initial percent, then rises by
//   cpu-throttle-increment, capped at max-cpu-throttle (mig_throttle_guest_down). With
//   cpu-throttle-tailslow the rise is the smaller of the increment and what would bring the
//   guest's CPU share to the one that dirties exactly the threshold.
// - dirty-limit: every vCPU's dirty page rate is capped at vcpu-dirty-limit (set once).
//
// A throttled guest runs (100 - throttle) % of the time, so its writes slow by that share; a
// limited one writes at most vCPUs x the limit. The period's dirty page rate (pages/s) is the
// `dirty-pages-rate` of `info migrate`.
import type { ThrottleConfig } from './config.js';
import { GUEST_PAGE } from './guest_layout.js';

/** QEMU's bounds of a CPU throttle percentage (CPU_THROTTLE_PCT_MIN/MAX). */
export const THROTTLE_PCT_MIN = 1;
export const THROTTLE_PCT_MAX = 99;
/** A period closes at the first sync more than this many seconds after the last close. */
export const SYNC_PERIOD_S = 1;

/** What a sync did to the guest. */
export type ThrottleStep = 'none' | 'throttle' | 'limit';

/** The convergence aids' state over a run. */
export class Throttle {
  /** The vCPU throttle in effect, percent (0: none). */
  pct = 0;
  /** Whether the dirty limit is in service. */
  limited = false;
  /** Dirty pages per second over the last closed period (0 before the first). */
  dirtyPagesRate = 0;
  private highCount = 0;
  private periodStartS = 0;
  private periodDirtyPages = 0;
  private periodXferStart = 0;

  /**
   * @param c the capabilities and parameters
   * @param vcpus the guest's vCPUs
   * @param guestRate the guest's unthrottled write rate, bytes/s
   */
  constructor(private readonly c: ThrottleConfig, private readonly vcpus: number, private readonly guestRate: number) {}

  /**
   * A dirty sync at virtual time `nowS` that found `dirtyPages` newly dirty, when `transferred`
   * bytes have been sent since the start.
   * @returns what it did to the guest
   */
  sync(nowS: number, dirtyPages: number, transferred: number): ThrottleStep {
    this.periodDirtyPages += dirtyPages;
    if (!(nowS > this.periodStartS + SYNC_PERIOD_S)) return 'none';
    const dirtyBytes = this.periodDirtyPages * GUEST_PAGE;
    // QEMU's u64 arithmetic: bytes_xfer_period * threshold / 100, truncated.
    const thresholdBytes = Math.floor(((transferred - this.periodXferStart) * this.c.triggerThreshold) / 100);
    let step: ThrottleStep = 'none';
    if (dirtyBytes > thresholdBytes && ++this.highCount >= 2) {
      this.highCount = 0;
      if (this.c.autoConverge) step = this.throttleDown(dirtyBytes, thresholdBytes);
      else if (this.c.dirtyLimit && !this.limited) {
        this.limited = true;
        step = 'limit';
      }
    }
    this.dirtyPagesRate = this.periodDirtyPages / (nowS - this.periodStartS);
    this.periodStartS = nowS;
    this.periodDirtyPages = 0;
    this.periodXferStart = transferred;
    return step;
  }

  /** mig_throttle_guest_down: start at the initial percentage, or raise it. */
  private throttleDown(dirtyBytes: number, thresholdBytes: number): ThrottleStep {
    if (this.pct === 0) {
      this.pct = clampPct(this.c.initial);
      return 'throttle';
    }
    let inc = this.c.increment;
    if (this.c.tailslow) {
      const cpuNow = 100 - this.pct;
      // QEMU's integer arithmetic: the ideal share truncated, the step the smaller of the two.
      const cpuIdeal = Math.trunc(cpuNow * (thresholdBytes / dirtyBytes));
      inc = Math.min(cpuNow - cpuIdeal, this.c.increment);
    }
    this.pct = clampPct(Math.min(this.pct + inc, this.c.max));
    return 'throttle';
  }

  /** The dirty limit of the whole guest in service, bytes/s (0: none). */
  get guestLimit(): number {
    return this.limited ? this.vcpus * this.c.vcpuDirtyLimit : 0;
  }

  /** Share of its nominal write rate the guest runs at now, in (0, 1]. */
  get scale(): number {
    let s = 1 - this.pct / 100;
    if (this.limited && this.guestRate > 0) s = Math.min(s, this.guestLimit / this.guestRate);
    return s;
  }
}

function clampPct(p: number): number {
  return Math.min(THROTTLE_PCT_MAX, Math.max(THROTTLE_PCT_MIN, p));
}
