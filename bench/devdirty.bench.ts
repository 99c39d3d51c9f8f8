// Device DMA logging REPORT and iommufd GET_DIRTY_BITMAP over 1 TiB at 1 % dirty, through the
// ioctl surface, against the memory-copy bound of their 32 MiB bitmaps measured in the same run.
// A report clears what it reads, so each call first restores the 1 % log from a saved copy (a
// memcpy inside linear memory, measured on its own): the report's cost is the difference.
import { createEngine, uapi } from '../src/index.js';
import type { Engine, Process } from '../src/index.js';
import type { UnitLog } from '../src/core/unit_log.js';
import type { BenchGroup, GroupResult } from './harness.js';

const PAGE = 4096n;
// The mapping's IOVA: 1 TiB up, clear of the MSI window the group reserves.
const BASE = 1n << 40n;

function must(r: number, what: string): number {
  if (r < 0) throw new Error(`${what} failed: ${r}`);
  return r;
}

function le(len: number, fields: [number, number | bigint][]): Uint8Array {
  const b = new Uint8Array(len);
  const v = new DataView(b.buffer);
  for (const [off, val] of fields) {
    if (typeof val === 'bigint') v.setBigUint64(off, val, true);
    else v.setUint32(off, val, true);
  }
  return b;
}

/** Marks `pct` % of the units of the log's single bitmap at random (seeded), in one core call. */
function dirty(engine: Engine, log: UnitLog, nbits: number, pct: number): void {
  const x = engine.core.x;
  const n = Math.floor((nbits * pct) / 100);
  const pages = new Uint32Array(n);
  let s = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    pages[i] = (s >>> 0) % nbits;
  }
  const buf = must(x.heap_alloc(n * 4), 'alloc');
  engine.core.u32().set(pages, buf >>> 2);
  must(x.bitmap_set_batch(log.handles[0], buf, n), 'set_batch');
  x.heap_free(buf);
}

interface Rig {
  engine: Engine;
  log: UnitLog;
  /** Restores the 1 % log from the saved copy. */
  restore: () => void;
  call: (noClear: boolean) => void;
}

/** A saved copy of the log's words and the restore of it, both in linear memory. */
function saver(engine: Engine, log: UnitLog, bytes: number): () => void {
  const x = engine.core.x;
  const words = x.bitmap_words(log.handles[0]);
  const saved = must(x.heap_alloc(bytes), 'alloc');
  engine.core.u8().copyWithin(saved, words, words + bytes);
  return () => void engine.core.u8().copyWithin(x.bitmap_words(log.handles[0]), saved, saved + bytes);
}

async function reportRig(size: bigint): Promise<Rig> {
  const engine = await createEngine();
  const g = engine.createGroup({ kind: 'iommu', devices: [{ name: 'd', dmaLogging: true }] });
  const proc: Process = engine.createProcess();
  const c = proc.open('/dev/vfio/vfio');
  const gfd = proc.open(`/dev/vfio/${g.id}`);
  must(proc.ioctl(gfd, uapi.VFIO_GROUP_SET_CONTAINER, c), 'SET_CONTAINER');
  must(proc.ioctl(c, uapi.VFIO_SET_IOMMU, 3), 'SET_IOMMU');
  must(proc.ioctl(c, uapi.VFIO_IOMMU_MAP_DMA, le(32, [[0, 32], [4, 3], [8, proc.mmap(size)], [16, BASE], [24, size]])), 'MAP');
  const D = must(proc.ioctl(gfd, uapi.VFIO_GROUP_GET_DEVICE_FD, 'd'), 'GET_DEVICE_FD');
  const ranges = proc.mmap(16);
  proc.write(ranges, le(16, [[0, BASE], [8, size]]));
  must(proc.ioctl(D, uapi.VFIO_DEVICE_FEATURE, le(32, [[0, 32], [4, 0x00020006], [8, PAGE], [16, 1], [24, ranges]])), 'START');
  const log = g.devices[0].state.log!.units;
  const nbits = Number(size / PAGE);
  dirty(engine, log, nbits, 1);
  const bytes = nbits / 8;
  const data = proc.mmap(bytes);
  proc.write(data, new Uint8Array(bytes));
  const rep = le(40, [[0, 40], [4, 0x00010008], [8, BASE], [16, size], [24, PAGE], [32, data]]);
  return { engine, log, restore: saver(engine, log, bytes), call: () => void must(proc.ioctl(D, uapi.VFIO_DEVICE_FEATURE, rep), 'REPORT') };
}

async function getRig(size: bigint): Promise<Rig> {
  const engine = await createEngine();
  const g = engine.createGroup({ kind: 'iommu', iommuDirtyTracking: true });
  const proc: Process = engine.createProcess();
  const I = proc.open('/dev/iommu');
  must(proc.ioctl(I, uapi.IOMMU_IOAS_ALLOC, le(12, [[0, 12]])), 'IOAS_ALLOC');
  const C = proc.open(g.devices[0].cdevPath!);
  must(proc.ioctl(C, uapi.VFIO_DEVICE_BIND_IOMMUFD, le(16, [[0, 16], [8, I]])), 'BIND');
  must(proc.ioctl(I, uapi.IOMMU_HWPT_ALLOC, le(48, [[0, 48], [4, 2], [8, 2], [12, 1]])), 'HWPT_ALLOC');
  must(proc.ioctl(C, uapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT, le(12, [[0, 12], [8, 3]])), 'ATTACH');
  must(proc.ioctl(I, uapi.IOMMU_IOAS_MAP, le(40, [[0, 40], [4, 7], [8, 1], [16, proc.mmap(size)], [24, size], [32, BASE]])), 'MAP');
  must(proc.ioctl(I, uapi.IOMMU_HWPT_SET_DIRTY_TRACKING, le(16, [[0, 16], [4, 1], [8, 3]])), 'ENABLE');
  const h = [...(proc.fds.get(I) as unknown as { ctx: { objects: Map<number, { logs?: Map<unknown, UnitLog> }> } }).ctx.objects.values()]
    .find((o) => o.logs)!;
  const log = [...h.logs!.values()][0];
  const nbits = Number(size / PAGE);
  dirty(engine, log, nbits, 1);
  const bytes = nbits / 8;
  const data = proc.mmap(bytes);
  proc.write(data, new Uint8Array(bytes));
  const get = (nc: boolean) => le(48, [[0, 48], [4, 3], [8, nc ? 1 : 0], [16, BASE], [24, size], [32, PAGE], [40, data]]);
  const plain = get(false);
  const noClear = get(true);
  return {
    engine, log, restore: saver(engine, log, bytes),
    call: (nc) => void must(proc.ioctl(I, uapi.IOMMU_HWPT_GET_DIRTY_BITMAP, nc ? noClear : plain), 'GET'),
  };
}

/** (restore + call − restore) / memcpy of the same bytes. */
const netRatio = (r: GroupResult, withRestore: number): number =>
  (r.cases[withRestore].mean - r.cases[1].mean) / r.cases[0].mean;

function group(name: string, quick: boolean, make: (size: bigint) => Promise<Rig>, noClear: boolean): BenchGroup {
  const size = quick ? 1n << 30n : 1n << 40n;
  const bytes = Number(size / PAGE / 8n);
  const src = Buffer.alloc(bytes, 0x5a);
  const dst = Buffer.alloc(bytes);
  let rig: Rig | null = null;
  const cases = [
    { name: 'Buffer.copy (memcpy bound)', fn: () => void src.copy(dst), units: bytes, unit: 'bytes' },
    { name: 'restore the 1 % log (memcpy in Wasm)', fn: () => rig!.restore(), units: bytes, unit: 'bytes' },
    { name: `restore + ${name}`, fn: () => { rig!.restore(); rig!.call(false); }, units: bytes, unit: 'bytes' },
  ];
  if (noClear) cases.push({ name: `${name} NO_CLEAR`, fn: () => rig!.call(true), units: bytes, unit: 'bytes' });
  return {
    name: `devdirty: ${name} of ${quick ? '1 GiB' : '1 TiB'} at 1 %`,
    baseline: 'Buffer.copy (memcpy bound)',
    target: noClear ? '<= 2x memcpy of the bitmap bytes; NO_CLEAR <= 1.5x' : '<= 2x memcpy of the bitmap bytes',
    async setup() {
      rig = await make(size);
    },
    cases,
    check: (r) => {
      const net = netRatio(r, 2);
      r.notes = [...(r.notes ?? []), `${name} alone (restore subtracted): ${net.toFixed(2)}x memcpy`];
      return net <= 2 && (!noClear || r.cases[3].ratio <= 1.5);
    },
  };
}

export function groups(quick: boolean): BenchGroup[] {
  return [
    group('DMA_LOGGING_REPORT', quick, reportRig, false),
    group('GET_DIRTY_BITMAP', quick, getRig, true),
  ];
}
