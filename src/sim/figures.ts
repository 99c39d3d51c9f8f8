// The run's summary and the figures of QEMU's `info migrate` at its end, computed from the round
// records alone (each figure's definition is in summary.ts and docs/simulate.md).
import type { SimConfig } from './config.js';
import { throughputMbps } from './convergence.js';
import { GUEST_PAGE, type RamSlot } from './guest_layout.js';
import { SUMMARY_SCHEMA, type CpuLogSummary, type PostcopySummary, type EngineCost, type MigrateInfo, type RoundRecord, type SimSummary } from './summary.js';
import type { Throttle } from './throttle.js';

/** The summary of a run whose rounds are `rounds` (the last is stop-copy or unconverged). */
export function summarize(
  config: SimConfig, slots: readonly RamSlot[], rounds: readonly RoundRecord[], converged: boolean,
  throttle: Throttle, accel: { pasid: number; jobs: number } | null, postcopy: PostcopySummary | null, engine: EngineCost, wallMs: number,
  cpuLog: CpuLogSummary,
): SimSummary {
  const last = rounds[rounds.length - 1];
  const totalTimeS = last.startS + last.durationS;
  const bytesSent = rounds.reduce((a, r) => a + r.bytesSent, 0);
  return {
    schema: SUMMARY_SCHEMA,
    config: structuredClone(config),
    slots: slots.map((s) => ({ gpa: s.gpa, size: s.size })),
    converged,
    rounds: rounds.length - 1,
    totalTimeS,
    downtimeS: downtimeOf(config, last, converged),
    bytesSent,
    migrate: migrateInfo(config, rounds, converged, throttle),
    postcopy,
    allDirtyRounds: rounds.filter((r) => r.allDirty).length,
    accelerator: accel && {
      pasid: accel.pasid,
      jobs: accel.jobs,
      fallback: config.accelerator.fallback,
      pagesWritten: rounds.reduce((a, r) => a + r.accelPages, 0),
      unseenAtEnd: last.accelUnseen,
      lost: converged ? last.accelUnseen : 0,
    },
    cpuLog,
    engine,
    wallMs,
    roundsDetail: [...rounds],
  };
}

/** `info migrate` at the end of the run. */
export function migrateInfo(config: SimConfig, rounds: readonly RoundRecord[], converged: boolean, throttle: Throttle): MigrateInfo {
  const last = rounds[rounds.length - 1];
  const setupTimeS = 0;
  const totalTimeS = last.startS + last.durationS;
  const sum = (f: (r: RoundRecord) => number) => rounds.reduce((a, r) => a + f(r), 0);
  const transferredBytes = sum((r) => r.bytesSent);
  const isPostcopy = last.phase === 'postcopy';
  const downtimeBytes = !converged ? 0 : isPostcopy ? last.deviceBytes : last.bytesSent;
  const postcopyBytes = isPostcopy ? last.bytesSent - last.deviceBytes : 0;
  const normalPages = sum((r) => r.normalPages);
  const duplicatePages = sum((r) => r.zeroPages);
  const transferS = totalTimeS - setupTimeS;
  return {
    status: converged ? 'completed' : 'active',
    setupTimeS,
    totalTimeS,
    downtimeS: converged ? downtimeOf(config, last, true) : null,
    expectedDowntimeS: last.expectedDowntimeS,
    transferredBytes,
    remainingBytes: converged ? 0 : last.dirtyPages * GUEST_PAGE,
    totalBytes: config.memory,
    duplicatePages,
    normalPages,
    normalBytes: normalPages * GUEST_PAGE,
    mbps: throughputMbps(transferredBytes, transferS),
    pagesPerSecond: transferS > 0 ? (normalPages + duplicatePages) / transferS : 0,
    dirtyPagesRate: last.dirtyPagesRate,
    dirtySyncCount: last.dirtySyncCount,
    precopyBytes: transferredBytes - downtimeBytes - postcopyBytes,
    downtimeBytes,
    postcopyBytes,
    cpuThrottlePercentage: throttle.pct,
    dirtyLimit: throttle.guestLimit,
    thresholdBytes: config.bandwidth * config.downtimeLimit,
  };
}

/** The downtime: the stop-copy's time; for postcopy, the device's stop-copy data alone; unconverged, the expected one. */
function downtimeOf(config: SimConfig, last: RoundRecord, converged: boolean): number {
  if (!converged) return last.expectedDowntimeS;
  return last.phase === 'postcopy' ? last.deviceBytes / config.bandwidth : last.durationS;
}
