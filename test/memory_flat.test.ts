// A process per test case: create, map, write, pin, exit, 100,000 times. The heap must come back to
// its start value exactly and the Wasm memory must stop growing after the first cycles.
import { describe, expect, it } from 'vitest';
import { createEngine, uapi, type Engine, type Group } from '../src/index.js';

const MiB = 1n << 20n;
const CYCLES = 100_000;

/** One embedder test case: a process maps 1 MiB through a new container, writes, pins, exits. */
function cycle(e: Engine, g: Group, byte: number): void {
  const p = e.createProcess();
  const c = e.openContainer(p);
  c.attach(g);
  c.setIommu();
  const va = p.mmap(MiB);
  c.map({ iova: 0n, size: MiB, vaddr: va });
  p.write(va + 4096n, new Uint8Array([byte]));
  c.openDevice(g);
  if (g.devices[0].pinPages(0n, 2, uapi.IOMMU_READ) !== 2) throw new Error('pin failed');
  // An IOMMU group charges the whole mapping; an emulated one only the pinned pages.
  const charged = g.kind === 'iommu' ? 256n : 2n;
  if (p.lockedVm !== charged) throw new Error(`lockedVm ${p.lockedVm}`);
  p.exit();
}

describe('memory over process lifetimes', () => {
  it(`is flat over ${CYCLES} create / map / write / pin / exit cycles`, async () => {
    const e = await createEngine();
    const g = e.createGroup();
    g.devices[0].registerDmaUnmap(() => {});
    const start = e.memoryInUse();
    cycle(e, g, 0);
    expect(e.memoryInUse()).toBe(start);
    const bytes = e.core.memory.buffer.byteLength;
    for (let i = 1; i < CYCLES; i++) cycle(e, g, i & 0xff);
    expect(e.memoryInUse()).toBe(start);
    expect(e.core.memory.buffer.byteLength).toBe(bytes);
    expect([e.processes.length, e.containers.size, g.file]).toEqual([0, 0, null]);
  }, 30_000);

  it('is flat over groups created and removed, and engines created and disposed', async () => {
    const e = await createEngine();
    const start = e.memoryInUse();
    for (let i = 0; i < 1000; i++) {
      const g = e.createGroup({ kind: i & 1 ? 'emulated' : 'iommu' });
      g.devices[0].registerDmaUnmap(() => {});
      cycle(e, g, i);
      expect(g.remove()).toBe(0);
    }
    expect([e.memoryInUse(), e.groups.size]).toEqual([start, 0]);
    for (let i = 0; i < 20; i++) {
      const d = await createEngine();
      const g = d.createGroup();
      g.devices[0].registerDmaUnmap(() => {});
      cycle(d, g, i);
      d.createProcess().mmap(MiB);
      d.dispose();
    }
  });
});
