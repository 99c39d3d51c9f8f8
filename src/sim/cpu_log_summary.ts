// The summary's account of the guest CPU's dirty log (--cpu-log): its mode, each harvest's
// figures and their sums, what the vGPU's write-tracking notifier saw, and the one wording of
// these figures that the text summary and the HTML report both show.
import type { SimConfig } from './config.js';
import { emptySync, type CpuLogMode, type CpuLogSync } from './cpu_log.js';
import type { MigrationVm } from './migration_vm.js';
import type { CpuLogSummary, ShadowSummary } from './summary.js';

/** The CPU log's part of the summary of a run on `vm` whose harvests gave `syncs`. */
export function cpuLogSummary(vm: MigrationVm, syncs: readonly CpuLogSync[]): CpuLogSummary {
  const total = emptySync();
  for (const r of syncs) for (const k of Object.keys(total) as (keyof CpuLogSync)[]) total[k] += r[k];
  return { mode: vm.kvm.options.mode, vcpus: vm.kvm.options.vcpus, stores: vm.kvm.stores, rounds: [...syncs], total, shadow: vm.shadow?.summary() ?? null };
}

/** The KVM calls of one sync (or of all), in words: `2 GET, 16 CLEAR`. */
export function describeCalls(mode: CpuLogMode, s: CpuLogSync): string {
  if (mode === 'ring') return `${s.reaped} entries reaped, ${s.fullEvents} ring-full exits, ${s.resets} resets`;
  return `${s.getCalls} GET${mode === 'manual' ? `, ${s.clearCalls} CLEAR` : ''}`;
}

/** One harvest's CPU-log figures: `12345 pages (2 GET, 16 CLEAR)`. */
export function describeSync(mode: CpuLogMode, s: CpuLogSync): string {
  return `${s.pages} pages (${describeCalls(mode, s)})`;
}

/** The CPU log of a run in one line: the mode, the vCPUs, the stores and the harvests' sums. */
export function describeCpuLog(c: CpuLogSummary, config: SimConfig): string {
  const how = c.mode === 'bitmap' ? 'bitmap (KVM_GET_DIRTY_LOG, fetch-and-clear)'
    : c.mode === 'manual' ? `manual protect (KVM_GET_DIRTY_LOG, then KVM_CLEAR_DIRTY_LOG in chunks of 2^${config.clearBitmapShift} pages)`
    : `dirty ring (${config.dirtyRingSize} entries per vCPU)`;
  return `${how}, ${c.vcpus} vCPU${c.vcpus === 1 ? '' : 's'}, ${c.stores} guest stores; ${c.total.pages} pages over ${c.rounds.length} harvests: ${describeCalls(c.mode, c.total)}`;
}

/** The vGPU's shadowing in one line. */
export function describeShadow(s: ShadowSummary): string {
  return `${s.trackedPages} write-tracked GPU page-table pages: ${s.guestStores} guest stores to them, ${s.trackedWrites} seen by the vGPU's notifier, ` +
    `${s.shadowUpdates} shadow entries updated`;
}
