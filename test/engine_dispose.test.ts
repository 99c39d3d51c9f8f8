// group.remove() and engine.dispose(): what each returns and what is left afterwards.
import { describe, expect, it } from 'vitest';
import { createEngine, errno, OutOfMemoryError, uapi } from '../src/index.js';

import { MiB, mixed } from './helpers/lifecycle.js';

describe('group.remove', () => {
  it('refuses with EBUSY while the group fd is open, and changes nothing', async () => {
    const e = await createEngine();
    const g = e.createGroup();
    const p = e.createProcess();
    const fd = p.open(`/dev/vfio/${g.id}`);
    expect(g.remove()).toBe(-errno.EBUSY);
    expect([g.removed, e.groups.get(g.id)]).toEqual([false, g]);
    expect(p.close(fd)).toBe(0);
    expect(g.remove()).toBe(0);
  });

  it('refuses with EBUSY while a device fd holds the group file after its fd closed', async () => {
    const e = await createEngine();
    const g = e.createGroup();
    const p = e.createProcess();
    const c = e.openContainer(p);
    c.attach(g);
    c.setIommu();
    const dev = c.openDevice(g);
    expect(p.close(c.fd + 1)).toBe(0); // the group fd
    expect(g.remove()).toBe(-errno.EBUSY);
    expect(p.close(dev)).toBe(0);
    expect(g.remove()).toBe(0);
    expect(e.containers.size).toBe(1); // the container fd is still open; it has no group
  });

  it('makes the path ENOENT, is forgotten, never reuses the number, and answers 0 again', async () => {
    const e = await createEngine();
    const g1 = e.createGroup();
    const g2 = e.createGroup();
    expect(g1.remove()).toBe(0);
    expect([g1.removed, g1.isDisposed, g2.removed]).toEqual([true, true, false]);
    expect(e.groups.has(g1.id)).toBe(false);
    expect([...e.groups.keys()]).toEqual([g2.id]);
    expect(e.createProcess().open(`/dev/vfio/${g1.id}`)).toBe(-errno.ENOENT);
    expect(e.createGroup().id).toBe(3);
    expect(g1.remove()).toBe(0);
    expect(g1.devices[0].pinPages(0n, 1, uapi.IOMMU_READ)).toBe(-errno.EINVAL);
  });

  it('can be removed after the process that held it exits', async () => {
    const e = await createEngine();
    const g = e.createGroup();
    const p = e.createProcess();
    e.openContainer(p).attach(g);
    expect(g.remove()).toBe(-errno.EBUSY);
    p.exit();
    expect(g.remove()).toBe(0);
  });
});

describe('createProcess under memory pressure', () => {
  it('fails with OutOfMemoryError at either allocation and leaves nothing behind', async () => {
    const e = await createEngine();
    const base = e.memoryInUse();
    for (const n of [1, 2]) {
      e.failNthAllocation(n);
      expect(() => e.createProcess()).toThrow(OutOfMemoryError);
      expect([e.memoryInUse(), e.processes.length]).toEqual([base, 0]);
    }
    e.failNthAllocation(0);
    expect(e.createProcess().exit()).toBe(0);
  });
});

describe('engine.dispose', () => {
  it('exits every process, removes every group, returns the heap, then throws on every call', async () => {
    const e = await createEngine();
    const g = e.createGroup();
    const m = e.createGroup({ kind: 'emulated' });
    const p = e.createProcess();
    const c = e.openContainer(p);
    c.attach(g);
    c.setIommu();
    const va = p.mmap(MiB);
    p.write(va, new Uint8Array([1]));
    c.map({ iova: 0n, size: MiB, vaddr: va });
    c.dirty.start();
    const q = e.createProcess();
    q.open(`/dev/vfio/${m.id}`);
    const core = e.core;
    expect(e.isDisposed).toBe(false);
    e.dispose();
    expect(e.isDisposed).toBe(true);
    expect([p.exited, q.exited, g.removed, m.removed, p.lockedVm]).toEqual([true, true, true, true, 0n]);
    expect([e.processes.length, e.groups.size, e.containers.size]).toEqual([0, 0, 0]);
    const calls: [string, () => unknown][] = [
      ['createGroup', () => e.createGroup()],
      ['createProcess', () => e.createProcess()],
      ['openContainer', () => e.openContainer(p)],
      ['memoryInUse', () => e.memoryInUse()],
      ['failNthAllocation', () => e.failNthAllocation(1)],
      ['inspect', () => e.inspect()],
      ['core.memory', () => core.memory],
      ['core export', () => core.x.heap_used()],
      ['core view', () => core.u8()],
      ['pinPages', () => g.devices[0].pinPages(0n, 1, uapi.IOMMU_READ)],
      ['unpinPages', () => g.devices[0].unpinPages(0n, 1)],
      ['dmaRw', () => g.devices[0].dmaRw(0n, new Uint8Array(1), false)],
      ['registerDmaUnmap', () => g.devices[0].registerDmaUnmap(() => {})],
    ];
    for (const [name, f] of calls) expect(f, name).toThrow('engine disposed');
    expect(() => p.read(va, 1)).toThrow('read: the process has exited');
    expect(() => c.info()).toThrow();
    expect(g.remove()).toBe(0); // removed by the dispose
    e.dispose(); // idempotent
    expect(e.isDisposed).toBe(true);
  });

  it('returns every byte of the heap before the instance goes, allocating nothing', async () => {
    const e = await createEngine();
    const { base } = mixed(e);
    let seen: number[] = [];
    e.subsystems.push({ dispose: () => { seen = [e.memoryInUse(), e.core.x.heap_fail_pending()]; } });
    e.failNthAllocation(1);
    e.dispose();
    expect(seen).toEqual([base, 1]); // every byte back, and the armed failure never reached
  });

  it('runs each subsystem dispose once, after the processes and groups are gone', async () => {
    const e = await createEngine();
    const g = e.createGroup();
    const p = e.createProcess();
    p.open(`/dev/vfio/${g.id}`);
    const seen: [boolean, boolean][] = [];
    e.subsystems.push({ dispose: () => { seen.push([p.exited, g.removed]); } });
    e.dispose();
    e.dispose();
    expect(seen).toEqual([[true, true]]);
  });
});
