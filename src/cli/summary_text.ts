// The human-readable summary printed at the end of `vfio-dirty simulate`.
import type { SimSummary } from '../sim/summary.js';
import { describeCpuLog, describeShadow } from '../sim/cpu_log_summary.js';
import { fmtS } from './progress.js';
import { formatBytes } from './units.js';

/** The final summary as text, one fact per line. */
export function formatSummary(s: SimSummary): string {
  const c = s.config;
  const lines = [
    `Pre-copy migration of a ${formatBytes(c.memory)} guest (${c.workload} workload at ${mib(c.dirtyRate)} MiB/s` +
      `${c.vgpu ? `, vGPU pinning ${formatBytes(c.vgpuPinned)}` : ''}` +
      `${c.passthrough !== 'none' ? `, passthrough device ${c.passthrough}` : ''}) over ${mib(c.bandwidth)} MiB/s, seed ${c.seed}`,
    `  result:          ${s.postcopy ? 'completed in postcopy' : s.converged ? 'converged' : `did NOT converge within ${c.maxRounds} rounds`}`,
    `  rounds:          ${s.rounds} pre-copy (bulk included) + ${s.postcopy ? 'postcopy' : s.converged ? 'stop-copy' : 'no switch-over'}`,
    `  total time:      ${fmtS(s.totalTimeS)} (virtual)`,
    `  downtime:        ${fmtS(s.downtimeS)}${s.converged ? '' : ' if forced now'} (limit ${fmtS(c.downtimeLimit)})`,
    `  bytes sent:      ${formatBytes(s.bytesSent)} (${(s.bytesSent / c.memory).toFixed(2)}x guest RAM)`,
    ...infoMigrate(s),
    `  cpu dirty log:   ${describeCpuLog(s.cpuLog, c)}`,
    ...(s.cpuLog.shadow ? [`  vGPU shadow:     ${describeShadow(s.cpuLog.shadow)}`] : []),
    `  engine time:     ${s.engine.totalMs.toFixed(1)} ms real over ${s.engine.harvests} harvests` +
      ` (mean ${s.engine.meanMs.toFixed(2)} ms, max ${s.engine.maxMs.toFixed(2)} ms);` +
      ` guest and device activity ${s.engine.activityMs.toFixed(0)} ms; peak Wasm heap ${formatBytes(s.engine.peakHeapBytes)}`,
  ];
  const p = s.postcopy;
  if (p) {
    lines.push(`  postcopy:        after round ${p.round}: ${p.pages} pages streamed in ${fmtS(p.streamS)}; the guest faulted on ${p.faults} ` +
      `and its vCPUs waited ${fmtS(p.waitS)} in all for them (rtt ${+(s.config.postcopyRtt * 1e3).toFixed(3)} ms + a page each)`);
  }
  const a = s.accelerator;
  if (a) {
    const pages = (n: number) => `${n} page${n === 1 ? '' : 's'} (${formatBytes(n * 4096)})`;
    lines.push(
      `  accelerator:     PASID ${a.pasid}, ${a.jobs} jobs, ${pages(a.pagesWritten)} written by PASID; fallback ${a.fallback}`,
      `                   ${s.converged ? `lost: ${pages(a.lost)} written by the accelerator and never seen by a dirty record, stale at the destination`
        : `unseen: ${pages(a.unseenAtEnd)} written by the accelerator and not seen by any harvest`}`,
    );
  }
  if (s.allDirtyRounds > 0) {
    lines.push(
      `  note:            ${s.allDirtyRounds} harvest(s) were all-dirty: an IOMMU-backed group that never pins`,
      `                   makes GET_BITMAP report every mapped page (use --passthrough pinning)`,
    );
  }
  lines.push(`  wall time:       ${(s.wallMs / 1000).toFixed(2)} s`);
  return lines.join('\n');
}

/** The figures of QEMU's `info migrate`, under its labels. */
function infoMigrate(s: SimSummary): string[] {
  const m = s.migrate;
  const kb = (b: number) => `${Math.round(b / 1024)} kbytes`;
  const ms = (t: number) => `${Math.round(t * 1000)} ms`;
  const t = s.config.throttle;
  const aid = t.autoConverge ? `auto-converge, throttle ${m.cpuThrottlePercentage} %` :
    t.dirtyLimit ? `dirty-limit, ${m.dirtyLimit > 0 ? `${mib(m.dirtyLimit)} MiB/s in service` : 'not triggered'}` : 'none';
  const dev = s.config.deviceState;
  const lines = [
    `  info migrate:    status ${m.status}${s.postcopy ? ' (postcopy)' : ''}; setup ${ms(m.setupTimeS)}; total time ${ms(m.totalTimeS)}; ` +
      `${m.downtimeS === null ? `expected downtime ${ms(m.expectedDowntimeS)}` : `downtime ${ms(m.downtimeS)}`}`,
    `                   transferred ram ${kb(m.transferredBytes)}; throughput ${m.mbps.toFixed(2)} mbps; ` +
      `remaining ram ${kb(m.remainingBytes)}; total ram ${kb(m.totalBytes)}`,
    `                   duplicate ${m.duplicatePages} pages; normal ${m.normalPages} pages; normal bytes ${kb(m.normalBytes)}; ` +
      `pages-per-second ${Math.round(m.pagesPerSecond)}`,
    `                   dirty sync count ${m.dirtySyncCount}; dirty pages rate ${Math.round(m.dirtyPagesRate)} pages; ` +
      `precopy ram ${kb(m.precopyBytes)}; downtime ram ${kb(m.downtimeBytes)}${m.postcopyBytes ? `; postcopy ram ${kb(m.postcopyBytes)}` : ''}`,
    `  convergence aid: ${aid}`,
  ];
  if (dev.precopyInitial > 0 || dev.precopyDirtyRate > 0 || dev.stopCopy > 0) {
    const sent = s.roundsDetail.reduce((a, r) => a + r.deviceBytes, 0);
    lines.push(`  device state:    ${formatBytes(sent)} sent (initial ${formatBytes(dev.precopyInitial)}, stop-copy ${formatBytes(dev.stopCopy)})`);
  }
  return lines;
}

function mib(bytesPerS: number): string {
  const v = bytesPerS / 2 ** 20;
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}
