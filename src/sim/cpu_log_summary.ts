// The summary's account of the guest CPU's dirty log (--cpu-log): its mode, each harvest's
// figures and their sums, and what the vGPU's write-tracking notifier saw.
import { emptySync, type CpuLogSync } from './cpu_log.js';
import type { MigrationVm } from './migration_vm.js';
import type { CpuLogSummary } from './summary.js';

/** The CPU log's part of the summary of a run on `vm` whose harvests gave `syncs`. */
export function cpuLogSummary(vm: MigrationVm, syncs: readonly CpuLogSync[]): CpuLogSummary {
  const total = emptySync();
  for (const r of syncs) for (const k of Object.keys(total) as (keyof CpuLogSync)[]) total[k] += r[k];
  return { mode: vm.kvm.options.mode, vcpus: vm.kvm.options.vcpus, stores: vm.kvm.stores, rounds: [...syncs], total, shadow: null };
}
