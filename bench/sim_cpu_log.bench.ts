// The simulator's guest CPU side: one round's share of guest page writes through KVM vCPUs and
// the harvest of KVM's dirty log, in each --cpu-log mode, against what it replaced (the workload's
// pages set straight into a bitmap), measured in the same run. A 16 GiB guest (1 GiB quick).
import { createEngine } from '../src/index.js';
import type { Engine } from '../src/index.js';
import { DirtyBitmap } from '../src/core/dirty_bitmap.js';
import { KvmGuest, type CpuLogMode } from '../src/sim/cpu_log.js';
import { GuestLayout } from '../src/sim/guest_layout.js';
import { Prng } from '../src/sim/prng.js';
import type { BenchGroup } from './harness.js';

const GiB = 2 ** 30;

async function storesAndSync(quick: boolean): Promise<BenchGroup> {
  const memory = quick ? GiB : 16 * GiB;
  const n = 65536; // half a second of the default 512 MiB/s
  const layout = new GuestLayout(memory, 3 * GiB);
  const pages = new Uint32Array(n);
  new Prng(1).fillBelow(pages, 0, n, layout.ramPages);
  layout.toGpaPages(pages, n);
  const runs = new Map<string, () => void>();
  const engines: Engine[] = [];
  const heap: string[] = [];
  return {
    name: `sim: ${n} guest page writes and a harvest, ${memory / GiB} GiB guest, 4 vCPUs`,
    baseline: 'bitmap setBatch (the old CPU log)',
    target: 'informative: the cost of real KVM calls per page write',
    async setup() {
      const base = await createEngine();
      engines.push(base);
      const log = DirtyBitmap.create(base.core, layout.gpaPages);
      runs.set('bitmap setBatch (the old CPU log)', () => { log.setBatch(pages); log.clear(); });
      for (const mode of ['manual', 'bitmap', 'ring'] as CpuLogMode[]) {
        const engine = await createEngine();
        engines.push(engine);
        const proc = engine.createProcess();
        const g = new KvmGuest(proc, engine.core, layout, proc.mmap(BigInt(memory)), { mode, vcpus: 4, dirtyRingSize: 4096, clearBitmapShift: 18 });
        const into = DirtyBitmap.create(engine.core, layout.gpaPages);
        g.startLogging(into);
        runs.set(`KVM --cpu-log ${mode}`, () => { g.store(pages, 0, n); g.sync(into); into.clear(); });
      }
    },
    cases: ['bitmap setBatch (the old CPU log)', 'KVM --cpu-log manual', 'KVM --cpu-log bitmap', 'KVM --cpu-log ring'].map((name) => ({
      name, fn: () => runs.get(name)!(), units: n, unit: 'writes',
    })),
    notes() {
      engines.forEach((e, i) => heap.push(`heap after the runs, engine ${i}: ${(e.memoryInUse() / 2 ** 20).toFixed(2)} MiB`));
      return heap;
    },
  };
}

/** The simulator's CPU-log group, registered with bench/run.ts like every bench module. */
export async function groups(quick: boolean): Promise<BenchGroup[]> {
  return [await storesAndSync(quick)];
}
