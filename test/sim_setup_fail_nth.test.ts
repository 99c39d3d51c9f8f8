// The simulator's VM set-up under memory pressure: for n = 1, 2, … the nth core allocation of
// `new MigrationVm` (and of the KvmGuest it builds) fails. Each failing set-up throws and leaves
// the engine as it found it: no process, fd, mapping, pin, VM, group, accelerator or heap byte
// beyond what it held before; the first n past the set-up's allocations builds the VM.
import { describe, expect, it } from 'vitest';
import { createEngine, type Engine } from '../src/index.js';
import { parseSimulateOptions } from '../src/cli/options.js';
import { KvmGuest, type CpuLogMode } from '../src/sim/cpu_log.js';
import { GuestLayout } from '../src/sim/guest_layout.js';
import { MigrationVm } from '../src/sim/migration_vm.js';
import type { SimEngine } from '../src/sim/sim_engine.js';

/** Everything the engine holds, as plain data. */
function held(e: Engine): unknown {
  return {
    model: e.inspect({ bitmaps: false }),
    processes: e.processes.length,
    groups: [...e.groups.keys()],
    heapLive: e.core.x.heap_live(),
    memory: e.memoryInUse(),
  };
}

/**
 * Fails allocation n = 1, 2, … of `make` (each on a fresh engine) until no failure lands; returns
 * how many failures made the set-up throw. A set-up may absorb a failure where a later step can
 * do without the memory; it is then built and disposed as usual.
 */
async function sweep(make: (engine: Engine) => { dispose(): void }): Promise<number> {
  let threw = 0;
  for (let n = 1; n < 5000; n++) {
    const engine = await createEngine();
    const before = held(engine);
    engine.failNthAllocation(n);
    let made: { dispose(): void } | null = null;
    let error: unknown = null;
    try {
      made = make(engine);
    } catch (e) {
      error = e;
    }
    const landed = engine.core.x.heap_fail_pending() === 0;
    engine.failNthAllocation(0);
    if (made) {
      made.dispose();
      if (!landed) return threw;
      continue;
    }
    threw++;
    const message = String((error as Error)?.message ?? error);
    expect(message, `n=${n}`).toMatch(/ENOMEM|out of (host )?memory|errno 12|failed: -12$/i);
    expect(held(engine), `n=${n}: ${message}`).toEqual(before);
    engine.dispose();
  }
  throw new Error('the set-up never succeeded');
}

const variants: [string, string[]][] = [
  ['vGPU with its page-table shadow, a pinning passthrough device, type1, manual CPU log, an accelerator',
    ['--vgpu', '--gpu-pt-pages', '4', '--passthrough', 'pinning', '--cpu-log', 'manual', '--accelerator']],
  ['device DMA logging, dirty rings', ['--tracking', 'device', '--cpu-log', 'ring', '--vcpus', '2', '--dirty-ring-size', '256']],
  ['iommufd dirty tracking, fetch-and-clear CPU log', ['--tracking', 'iommufd', '--cpu-log', 'bitmap']],
];

describe('new MigrationVm under memory pressure releases what it made', () => {
  for (const [name, argv] of variants) {
    it(name, async () => {
      const config = parseSimulateOptions(['--memory', '128MiB', '--low-memory', '64MiB', ...argv]).config;
      const failed = await sweep((engine) => new MigrationVm(engine as unknown as SimEngine, config));
      expect(failed).toBeGreaterThan(10);
    });
  }
});

describe('new KvmGuest under memory pressure releases what it made', () => {
  for (const mode of ['bitmap', 'manual'] as CpuLogMode[]) {
    it(mode, async () => {
      const engine = await createEngine();
      const proc = engine.createProcess();
      const layout = new GuestLayout(8 << 20, 4 << 20);
      const base = proc.mmap(BigInt(layout.ramBytes));
      const opts = { mode, vcpus: 3, dirtyRingSize: 256, clearBitmapShift: 6 };
      const failed = sweepKvm(engine, () => new KvmGuest(proc, engine.core, layout, base, opts));
      expect(failed).toBeGreaterThan(3);
    });
  }

  // A ring mapping cannot be unmapped: the harvester makes its core buffers first, so only a
  // failure while mapping the rings leaves the VM to the mappings made until the process exits
  // (no fd stays open); every other failure leaves nothing.
  it('ring: a failure before the rings are mapped leaves no VM behind; after, no fd', async () => {
    const engine = await createEngine();
    const proc = engine.createProcess();
    const layout = new GuestLayout(8 << 20, 4 << 20);
    const base = proc.mmap(BigInt(layout.ramBytes));
    const opts = { mode: 'ring' as const, vcpus: 2, dirtyRingSize: 256, clearBitmapShift: 6 };
    const failed = sweepKvm(engine, () => new KvmGuest(proc, engine.core, layout, base, opts), /^mmap\(dirty ring\)/);
    expect(failed).toBeGreaterThan(3);
  });
});

const proc0 = (e: Engine) => e.processes[0];

/** The KVM side of the model (VMs, the process's fds) and the core heap, for a KvmGuest sweep. */
function sweepKvm(engine: Engine, make: () => KvmGuest, afterRings?: RegExp): number {
  const state = () => ({ vms: engine.inspect({ bitmaps: false }).kvm, fds: [...engine.processes[0].fds.keys()], heapLive: engine.core.x.heap_live() });
  const before = state();
  for (let n = 1; n < 1000; n++) {
    engine.failNthAllocation(n);
    let g: KvmGuest | null = null;
    let error: unknown = null;
    try {
      g = make();
    } catch (e) {
      error = e;
    }
    engine.failNthAllocation(0);
    if (g) {
      g.dispose();
      return n - 1;
    }
    expect(String((error as Error)?.message ?? error), `n=${n}`).toMatch(/ENOMEM|out of (host )?memory|errno 12|failed: -12$/i);
    const message = (error as Error).message;
    if (afterRings?.test(message)) {
      expect(state().fds, `n=${n}: ${message}`).toEqual(before.fds);
      expect(state().vms, `n=${n}: ${message}`).toHaveLength(before.vms.length + 1);
      proc0(engine).exit(); // the rings go with the process
      return n;
    }
    expect(state(), `n=${n}: ${message}`).toEqual(before);
  }
  throw new Error('the guest was never built');
}
