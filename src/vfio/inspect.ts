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
  const x = e.core.x;
  const armed = x.heap_fail_pending();
  x.heap_fail_nth(0);
  try {
    return take(e, bitmaps);
  } finally {
    x.heap_fail_nth(armed);
  }
}

function take(e: Engine, bitmaps: boolean): EngineSnapshot {
  const core = e.core;
  const x = core.x;
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
          const pins: [bigint, number][] = [];
          if (d.pins) {
            const n = x.pins_size(d.pins);
            const buf = x.heap_alloc(Math.max(16, n * 16));
            if (buf < 0) throw new Error('inspect: out of Wasm memory');
            const got = x.pins_collect(d.pins, buf, n);
            const v = new DataView(core.u8().buffer, buf, got * 16);
            for (let i = 0; i < got; i++) pins.push([v.getBigUint64(i * 16, true), v.getUint32(i * 16 + 8, true)]);
            x.heap_free(buf);
          }
          let bitmap: string | null = null;
          if (d.bitmap && bitmaps) {
            const nbits = x.bitmap_nbits(d.bitmap) >>> 0;
            const bytes = Math.ceil(nbits / 64) * 8;
            const at = x.bitmap_words(d.bitmap);
            bitmap = Buffer.from(core.u8().subarray(at, at + bytes)).toString('hex');
          }
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
