// The human-readable summary printed at the end of `vfio-dirty simulate`.
import type { SimSummary } from '../sim/summary.js';
import { fmtS } from './progress.js';
import { formatBytes } from './units.js';

/** The final summary as text, one fact per line. */
export function formatSummary(s: SimSummary): string {
  const c = s.config;
  const lines = [
    `Pre-copy migration of a ${formatBytes(c.memory)} guest (${c.workload} workload at ${mib(c.dirtyRate)} MiB/s` +
      `${c.vgpu ? `, vGPU pinning ${formatBytes(c.vgpuPinned)}` : ''}` +
      `${c.passthrough !== 'none' ? `, passthrough device ${c.passthrough}` : ''}) over ${mib(c.bandwidth)} MiB/s, seed ${c.seed}`,
    `  result:          ${s.converged ? 'converged' : `did NOT converge within ${c.maxRounds} rounds`}`,
    `  rounds:          ${s.rounds} pre-copy (bulk included) + ${s.converged ? 'stop-copy' : 'no switch-over'}`,
    `  total time:      ${fmtS(s.totalTimeS)} (virtual)`,
    `  downtime:        ${fmtS(s.downtimeS)}${s.converged ? '' : ' if forced now'} (limit ${fmtS(c.downtimeLimit)})`,
    `  bytes sent:      ${formatBytes(s.bytesSent)} (${(s.bytesSent / c.memory).toFixed(2)}x guest RAM)`,
    `  engine time:     ${s.engine.totalMs.toFixed(1)} ms real over ${s.engine.harvests} harvests` +
      ` (mean ${s.engine.meanMs.toFixed(2)} ms, max ${s.engine.maxMs.toFixed(2)} ms);` +
      ` guest and device activity ${s.engine.activityMs.toFixed(0)} ms; peak Wasm heap ${formatBytes(s.engine.peakHeapBytes)}`,
  ];
  if (s.allDirtyRounds > 0) {
    lines.push(
      `  note:            ${s.allDirtyRounds} harvest(s) were all-dirty: an IOMMU-backed group that never pins`,
      `                   makes GET_BITMAP report every mapped page (use --passthrough pinning)`,
    );
  }
  lines.push(`  wall time:       ${(s.wallMs / 1000).toFixed(2)} s`);
  return lines.join('\n');
}

function mib(bytesPerS: number): string {
  const v = bytesPerS / 2 ** 20;
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}
