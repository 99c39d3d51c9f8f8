// Setups and notation of the device-dirty acceptance vectors: setup L (type1 + a device with a
// tracker), setup F (iommufd with a dirty-capable HWPT), and builders of the VFIO device and
// iommufd structs as small helpers over the ioctl surface.
import { createEngine, uapi, type Engine, type Group, type Process, type VfioDevice } from '../../src/index.js';
import type { DeviceSpec } from '../../src/vfio/device_state.js';

export const P = (n: number | bigint): bigint => BigInt(n) * 0x1000n;
export const U64_MAX = (1n << 64n) - 1n;

export function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
}
/** `n × xx` as hex. */
export function rep(byte: number, n: number): string {
  return hex(new Uint8Array(n).fill(byte));
}
export function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** A struct buffer of `len` bytes with u32/u64 fields at offsets. */
export function struct(len: number, fields: [number, number | bigint, (4 | 8 | 1)?][]): Uint8Array {
  const b = new Uint8Array(len);
  const v = dv(b);
  for (const [off, val, w] of fields) {
    if (w === 1) v.setUint8(off, Number(val));
    else if (w === 8 || typeof val === 'bigint') v.setBigUint64(off, BigInt.asUintN(64, BigInt(val)), true);
    else v.setUint32(off, Number(val) >>> 0, true);
  }
  return b;
}

export interface Bitmap {
  ret: number;
  bytes: Uint8Array;
  hex: string;
}

/** Writes a user bitmap of n bytes filled with `fill`, or uses `at`; returns its address. */
export function userBuffer(proc: Process, n: number, fill = 0): bigint {
  const a = proc.mmap(Math.max(n, 8));
  proc.write(a, new Uint8Array(n).fill(fill));
  return a;
}

// ---- setup L ----------------------------------------------------------------------------------

export interface SetupL {
  engine: Engine;
  g: Group;
  dev: VfioDevice;
  proc: Process;
  container: number;
  groupFd: number;
  D: number;
  FEAT(flags: number, argsz: number, len?: number): number;
  START(p?: bigint, ranges?: [bigint, bigint][], o?: { argsz?: number; n?: number; ptr?: bigint }): { ret: number; buf: Uint8Array };
  REP(iova?: bigint, len?: bigint, p?: bigint, n?: number, o?: { fill?: number; data?: bigint; fd?: number }): Bitmap;
  W(a: bigint, n?: number): number;
}

export interface SetupLOptions {
  device?: DeviceSpec;
  map?: bigint;
}

/** Setup L: an IOMMU group whose device has a tracker, in a TYPE1v2 container, MAP(0, 16 MiB). */
export async function setupL(o: SetupLOptions = {}): Promise<SetupL> {
  const engine = await createEngine();
  const g = engine.createGroup({ kind: 'iommu', devices: [o.device ?? { name: 'd0', dmaLogging: true }] });
  const dev = g.devices[0];
  const proc = engine.createProcess();
  const container = proc.open('/dev/vfio/vfio');
  const groupFd = proc.open(`/dev/vfio/${g.id}`);
  if (proc.ioctl(groupFd, uapi.VFIO_GROUP_SET_CONTAINER, container) !== 0) throw new Error('SET_CONTAINER');
  if (proc.ioctl(container, uapi.VFIO_SET_IOMMU, 3) !== 0) throw new Error('SET_IOMMU');
  const size = o.map ?? 0x1000000n;
  const vaddr = proc.mmap(size);
  const m = struct(32, [[0, 32], [4, 3], [8, vaddr, 8], [16, 0n, 8], [24, size, 8]]);
  if (proc.ioctl(container, uapi.VFIO_IOMMU_MAP_DMA, m) !== 0) throw new Error('MAP');
  const D = proc.ioctl(groupFd, uapi.VFIO_GROUP_GET_DEVICE_FD, dev.name);
  const s: SetupL = {
    engine, g, dev, proc, container, groupFd, D,
    FEAT(flags, argsz, len) {
      const b = new Uint8Array(len ?? Math.max(argsz, 8));
      if (b.length >= 8) {
        dv(b).setUint32(0, argsz, true);
        dv(b).setUint32(4, flags, true);
      }
      return proc.ioctl(s.D, uapi.VFIO_DEVICE_FEATURE, b);
    },
    START(p = 0x1000n, ranges = [[0n, 0x1000000n]], so = {}) {
      const ptr = so.ptr ?? (() => {
        const a = proc.mmap(Math.max(16 * ranges.length, 16));
        const r = new Uint8Array(16 * ranges.length);
        ranges.forEach(([i, l], k) => {
          dv(r).setBigUint64(16 * k, BigInt.asUintN(64, i), true);
          dv(r).setBigUint64(16 * k + 8, BigInt.asUintN(64, l), true);
        });
        if (r.length) proc.write(a, r);
        return a;
      })();
      const argsz = so.argsz ?? 32;
      const buf = struct(Math.max(argsz, 32), [[0, argsz], [4, 0x00020006], [8, p, 8], [16, so.n ?? ranges.length], [24, ptr, 8]]);
      return { ret: proc.ioctl(s.D, uapi.VFIO_DEVICE_FEATURE, buf), buf };
    },
    REP(iova = 0n, len = P(0x40), p = 0x1000n, n = 8, ro = {}) {
      const data = ro.data ?? userBuffer(proc, n, ro.fill ?? 0);
      const buf = struct(40, [[0, 40], [4, 0x00010008], [8, iova, 8], [16, len, 8], [24, p, 8], [32, data, 8]]);
      const ret = proc.ioctl(ro.fd ?? s.D, uapi.VFIO_DEVICE_FEATURE, buf);
      const bytes = ro.data !== undefined && data >= 0x7ffffffff000n ? new Uint8Array(0) : safeRead(proc, data, n);
      return { ret, bytes, hex: hex(bytes) };
    },
    W(a, n = 1) {
      return dev.dmaWrite(a, new Uint8Array(n));
    },
  };
  return s;
}

function safeRead(proc: Process, a: bigint, n: number): Uint8Array {
  try {
    return proc.read(a, n);
  } catch {
    return new Uint8Array(0);
  }
}

// ---- iommufd ----------------------------------------------------------------------------------

/** iommufd calls by name on one process; each returns the ioctl result and the buffer. */
export class Iommufd {
  constructor(readonly proc: Process, readonly fd: number) {}

  call(req: number, b: Uint8Array): number {
    return this.proc.ioctl(this.fd, req, b);
  }
  ioasAlloc(): number {
    const b = struct(12, [[0, 12]]);
    const r = this.call(uapi.IOMMU_IOAS_ALLOC, b);
    return r < 0 ? r : dv(b).getUint32(8, true);
  }
  map(ioas: number, iova: bigint, length: bigint, userVa: bigint, flags = 7): { ret: number; iova: bigint } {
    const b = struct(40, [[0, 40], [4, flags], [8, ioas], [16, userVa, 8], [24, length, 8], [32, iova, 8]]);
    const ret = this.call(uapi.IOMMU_IOAS_MAP, b);
    return { ret, iova: dv(b).getBigUint64(32, true) };
  }
  unmap(ioas: number, iova: bigint, length: bigint): { ret: number; length: bigint } {
    const b = struct(24, [[0, 24], [4, ioas], [8, iova, 8], [16, length, 8]]);
    const ret = this.call(uapi.IOMMU_IOAS_UNMAP, b);
    return { ret, length: dv(b).getBigUint64(16, true) };
  }
  hwptAlloc(flags: number, dev: number, pt: number): number {
    const b = struct(48, [[0, 48], [4, flags], [8, dev], [12, pt]]);
    const r = this.call(uapi.IOMMU_HWPT_ALLOC, b);
    return r < 0 ? r : dv(b).getUint32(16, true);
  }
  setDirty(hwpt: number, flags = 1): number {
    return this.call(uapi.IOMMU_HWPT_SET_DIRTY_TRACKING, struct(16, [[0, 16], [4, flags], [8, hwpt]]));
  }
  destroy(id: number): number {
    return this.call(uapi.IOMMU_DESTROY, struct(8, [[0, 8], [4, id]]));
  }
  /** GET_DIRTY_BITMAP into a fresh buffer of 8·⌈nbits/64⌉ bytes filled with `fill` (or `data`). */
  get(hwpt: number, iova: bigint, length: bigint, p: bigint, o: { noClear?: boolean; fill?: number; n?: number; data?: bigint } = {}): Bitmap {
    const nbits = length === 0n || p === 0n ? 0n : (length + p - 1n) / p;
    const n = o.n ?? Number(((nbits + 63n) / 64n) * 8n);
    const data = o.data ?? userBuffer(this.proc, n, o.fill ?? 0);
    const b = struct(48, [[0, 48], [4, hwpt], [8, o.noClear ? 1 : 0], [16, iova, 8], [24, length, 8], [32, p, 8], [40, data, 8]]);
    const ret = this.call(uapi.IOMMU_HWPT_GET_DIRTY_BITMAP, b);
    const bytes = n > 0 ? safeRead(this.proc, data, n) : new Uint8Array(0);
    return { ret, bytes, hex: hex(bytes) };
  }
}

/** BIND (argsz 16) of cdev fd `c` to iommufd fd `i`: the devid or -errno. */
export function bind(proc: Process, c: number, i: number, argsz = 16): number {
  const b = struct(Math.max(argsz, 16), [[0, argsz], [8, i]]);
  const r = proc.ioctl(c, uapi.VFIO_DEVICE_BIND_IOMMUFD, b);
  return r < 0 ? r : dv(b).getUint32(12, true);
}
/** ATTACH (argsz 12): the pt id written back, or -errno. */
export function attach(proc: Process, c: number, pt: number, flags = 0): number {
  const b = struct(12, [[0, 12], [4, flags], [8, pt]]);
  const r = proc.ioctl(c, uapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT, b);
  return r < 0 ? r : dv(b).getUint32(8, true);
}
/** DETACH (argsz 8). */
export function detach(proc: Process, c: number, flags = 0): number {
  return proc.ioctl(c, uapi.VFIO_DEVICE_DETACH_IOMMUFD_PT, struct(8, [[0, 8], [4, flags]]));
}

export interface SetupF {
  engine: Engine;
  g: Group;
  dev: VfioDevice;
  proc: Process;
  I: number;
  C: number;
  fd: Iommufd;
  V: bigint;
  /** `D(a)`: a 1-byte device write. */
  D(a: bigint): number;
  GET(iova: bigint, length: bigint, p: bigint, o?: { noClear?: boolean; fill?: number; n?: number; data?: bigint }): Bitmap;
  ENABLE(): number;
}

/** Setup F (`huge`: hugeIoptes and a 2 MiB-aligned map instead). */
export async function setupF(o: { huge?: boolean; map?: boolean } = {}): Promise<SetupF> {
  const engine = await createEngine();
  const g = engine.createGroup({ kind: 'iommu', iommuDirtyTracking: true, hugeIoptes: o.huge ?? false });
  const dev = g.devices[0];
  const proc = engine.createProcess();
  const I = proc.open('/dev/iommu');
  const fd = new Iommufd(proc, I);
  if (fd.ioasAlloc() !== 1) throw new Error('IOAS_ALLOC');
  const C = proc.open(dev.cdevPath!);
  if (bind(proc, C, I) !== 2) throw new Error('BIND');
  if (fd.hwptAlloc(2, 2, 1) !== 3) throw new Error('HWPT_ALLOC');
  if (attach(proc, C, 3) !== 3) throw new Error('ATTACH');
  let V: bigint;
  if (o.huge) {
    const raw = proc.mmap(0x800000n);
    V = (raw + 0x1fffffn) & ~0x1fffffn;
    if (fd.map(1, 0x1000000n, 0x400000n, V).ret !== 0) throw new Error('MAP');
  } else {
    V = proc.mmap(0x80000n);
    if (o.map !== false && fd.map(1, 0x100000n, 0x80000n, V).ret !== 0) throw new Error('MAP');
  }
  return {
    engine, g, dev, proc, I, C, fd, V,
    D: (a) => dev.dmaWrite(a, new Uint8Array(1)),
    GET: (iova, length, p, go = {}) => fd.get(3, iova, length, p, go),
    ENABLE: () => fd.setDirty(3, 1),
  };
}
