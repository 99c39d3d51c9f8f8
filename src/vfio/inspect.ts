// engine.inspect(): the whole model as plain data, deterministic, for tests and debugging.
import type { Engine } from '../engine.js';

export interface DmaSnapshot {
  iova: bigint;
  size: bigint;
  vaddr: bigint;
  prot: number;
  iommuMapped: boolean;
  vaddrInvalid: boolean;
  lockCap: boolean;
  /** [page offset in PAGE_SIZE units, refcount], ascending. */
  pins: [bigint, number][];
  /** The dma's dirty bitmap as hex of its little-endian words (byte 0 first), or null. */
  bitmap: string | null;
}

export interface ContainerSnapshot {
  fd: number;
  iommu: null | 'type1' | 'type1v2';
  tracking: boolean;
  dmaAvail: number;
  nonPinnedGroups: number;
  vaddrInvalidCount: number;
  groups: number[];
  dmas: DmaSnapshot[];
}

export interface EngineSnapshot {
  containers: ContainerSnapshot[];
  processes: { lockedVm: bigint }[];
  heapUsed: number;
}

/**
 * The engine's state. Its scratch allocations leave an armed fail-the-Nth switch as it was, so a
 * test can look at the state between arming the switch and the call it means to fail.
 */
export function snapshot(e: Engine, bitmaps: boolean): EngineSnapshot {
  return e.core.unarmed(() => take(e, bitmaps));
}

function take(e: Engine, bitmaps: boolean): EngineSnapshot {
  const core = e.core;
  const containers = [...e.containers]
    .sort((a, b) => a.seq - b.seq)
    .map((c): ContainerSnapshot => {
      const t = c.iommu;
      return {
        fd: c.firstFd,
        iommu: t ? (t.v2 ? 'type1v2' : 'type1') : null,
        tracking: t?.tracking ?? false,
        dmaAvail: t?.dmaAvail ?? e.dmaEntryLimit,
        nonPinnedGroups: t?.nonPinnedGroups ?? 0,
        vaddrInvalidCount: t?.vaddrInvalidCount ?? 0,
        groups: c.groups.map((g) => g.id),
        dmas: (t?.all() ?? []).map((d) => {
          const pins = (d.pins?.entries() ?? []).map((p): [bigint, number] => [p.page, p.count]);
          const bitmap = d.bitmap && bitmaps ? Buffer.from(d.bitmap.toBytes()).toString('hex') : null;
          return {
            iova: d.iova,
            size: d.size,
            vaddr: d.vaddr,
            prot: d.prot,
            iommuMapped: d.iommuMapped,
            vaddrInvalid: d.vaddrInvalid,
            lockCap: d.lockCap,
            pins,
            bitmap,
          };
        }),
      };
    });
  return {
    containers,
    processes: e.processes.map((p) => ({ lockedVm: p.lockedVm })),
    heapUsed: core.heapUsed(),
  };
}
