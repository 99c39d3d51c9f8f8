// The vGPU's shadow of a guest GPU page table through KVM write tracking: the VMM links the vGPU's
// group to the VM before opening it (dev.kvm), the vGPU write-protects the table, and every guest
// store to the table's pages reaches its notifier: counted independently of the engine, in every
// dirty-log mode, and the shadow holds what guest memory holds.
import { describe, expect, it } from 'vitest';
import { createEngine } from '../src/index.js';
import { defaultConfig } from '../src/cli/options.js';
import type { SimConfig } from '../src/sim/config.js';
import { MigrationVm } from '../src/sim/migration_vm.js';
import type { SimEngine } from '../src/sim/sim_engine.js';
import { simulate } from '../src/sim/simulator.js';

const MiB = 2 ** 20;

function config(o: Partial<SimConfig> = {}): SimConfig {
  return {
    ...defaultConfig(), memory: 64 * MiB, vgpuRegion: 32 * MiB, vgpuPinned: 2 * MiB, vgpuDmaRate: MiB, vgpuChurn: MiB,
    workload: 'uniform', dirtyRate: 16 * MiB, bandwidth: 64 * MiB, downtimeLimit: 0.1, gpuPtPages: 64, gpuPtRate: 500, ...o,
  };
}

describe('vGPU GPU page-table shadowing', () => {
  for (const mode of ['bitmap', 'manual', 'ring'] as const) {
    it(`${mode}: the notifier sees exactly the guest's stores to the table, and the shadow matches guest memory`, async () => {
      const engine = await createEngine();
      const c = config({ cpuLog: mode, dirtyRingSize: 256 });
      const vm = new MigrationVm(engine as unknown as SimEngine, c);
      // An independent count of the stores to the table: every guest page the workload writes,
      // and every entry the driver writes, seen before they reach the vCPUs.
      const first = 64 * MiB / 4096 - 64;
      let independent = 0;
      const store = vm.kvm.store.bind(vm.kvm);
      vm.kvm.store = (pages, f, n) => {
        for (let i = 0; i < n; i++) {
          const p = pages ? pages[i] : f + i;
          if (p >= first && p < first + 64) independent++;
        }
        store(pages, f, n);
      };
      const values = vm.kvm.storeValues.bind(vm.kvm);
      vm.kvm.storeValues = (gpas, data) => {
        for (const g of gpas) if (g >= BigInt(first * 4096) && g < BigInt((first + 64) * 4096)) independent++;
        values(gpas, data);
      };
      vm.start();
      vm.run(0, 2);
      vm.harvest().report.dispose();
      const s = vm.shadow!.summary();
      expect(s.trackedPages).toBe(64);
      expect(s.trackedWrites).toBe(independent);
      expect(s.guestStores).toBe(independent);
      expect(s.trackedWrites).toBeGreaterThan(1000);
      // Each store is one 8-byte entry: one shadow update; the shadow equals guest memory.
      expect(s.shadowUpdates).toBe(s.trackedWrites);
      const dev = vm.shadow!;
      const kvm = (dev as unknown as { kvm: { gfnToHva(g: bigint): bigint; proc: { read(a: bigint, n: number): Uint8Array } } }).kvm;
      const bytes = kvm.proc.read(kvm.gfnToHva(BigInt(first)), 64 * 4096);
      expect(new BigUint64Array(bytes.buffer)).toEqual(dev.shadow);
      vm.dispose();
    });
  }

  it('reports the tracked writes in the summary', async () => {
    const engine = await createEngine();
    const s = simulate(engine, config()).summary;
    expect(s.cpuLog.shadow).toEqual({ trackedPages: 64, guestStores: 493, trackedWrites: 493, shadowUpdates: 493 });
  });

  it('can fail: a node that filters out a page misses its stores', async () => {
    const engine = await createEngine();
    const vm = new MigrationVm(engine as unknown as SimEngine, config());
    const shadow = vm.shadow!;
    const tw = shadow.trackWrite.bind(shadow);
    shadow.trackWrite = (gpa, data, bytes) => { if (gpa % 8192n < 4096n) tw(gpa, data, bytes); };
    vm.start();
    vm.run(0, 1);
    const s = shadow.summary();
    expect(s.trackedWrites).toBeLessThan(s.guestStores);
    vm.dispose();
  });

  it('without a vGPU, or with --gpu-pt-pages 0, there is no shadow', async () => {
    expect(simulate(await createEngine(), config({ vgpu: false })).summary.cpuLog.shadow).toBeNull();
    expect(simulate(await createEngine(), config({ gpuPtPages: 0 })).summary.cpuLog.shadow).toBeNull();
  });
});
