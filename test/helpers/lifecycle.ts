// Worlds for the lifecycle tests (exit, remove, dispose): built only through the public surface.
import { expect } from 'vitest';
import { uapi, type Engine, type Group } from '../../src/index.js';

export const MiB = 1n << 20n;

/** A process with one container, group `g` set to it, type1v2, 1 MiB mapped and one device open. */
export function world(e: Engine, g: Group, o: { memlockLimit?: bigint } = {}) {
  const p = e.createProcess(o);
  const c = e.openContainer(p);
  c.attach(g);
  c.setIommu();
  const va = p.mmap(MiB);
  p.write(va, new Uint8Array([7]));
  c.map({ iova: 0n, size: MiB, vaddr: va });
  const dev = c.openDevice(g);
  return { p, c, va, dev };
}

/**
 * An IOMMU group G and an emulated group M in one container of one process, every device open
 * with a dma_unmap op, dirty tracking on and two pages of M pinned; `base` is the heap before.
 */
export function mixed(e: Engine) {
  const g = e.createGroup();
  const m = e.createGroup({ kind: 'emulated' });
  for (const d of [...g.devices, ...m.devices]) d.registerDmaUnmap(() => {});
  const base = e.memoryInUse();
  const w = world(e, g);
  w.c.attach(m);
  w.c.openDevice(m);
  w.c.dirty.start();
  expect(m.devices[0].pinPages(0n, 2, uapi.IOMMU_READ)).toBe(2);
  expect(w.p.lockedVm).toBe(256n);
  return { ...w, g, m, base };
}
