// Symbolic operations on any engine with the public surface (the Wasm engine or the reference
// model), and the world that interprets them: fds, memory regions and devices are named by
// handles, so one sequence replays on two engines, and a sequence with ops removed still runs
// (a missing handle becomes fd -1, a missing region an unmapped address).
import { dirtyArg, mapArg, unmapArg } from './structs.js';
import {
  VFIO_GROUP_GET_DEVICE_FD, VFIO_GROUP_GET_STATUS, VFIO_GROUP_SET_CONTAINER, VFIO_IOMMU_DIRTY_PAGES,
  VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, hexOf, wr32,
} from './uapi.js';

// ---- the engine surface the ops need ----------------------------------------------------------

export interface AnyDevice {
  readonly name: string;
  registerDmaUnmap(op: (iova: bigint, size: bigint) => void): void;
  pinPages(iova: bigint, npage: number, prot: number): number;
  unpinPages(iova: bigint, npage: number): void;
  dmaRw(iova: bigint, data: Uint8Array, write: boolean): number;
}
export interface AnyProc {
  mmap(length: bigint | number): bigint;
  read(addr: bigint, length: number): Uint8Array;
  write(addr: bigint, bytes: Uint8Array): void;
  readonly lockedVm: bigint;
  open(path: string): number;
  ioctl(fd: number, request: number, arg?: number | bigint | string | Uint8Array): number;
  close(fd: number): number;
}
export interface AnyGroup {
  readonly id: number;
  readonly devices: readonly AnyDevice[];
}
export interface GroupSpec {
  kind: 'iommu' | 'emulated';
  devices: string[];
  viable?: boolean;
  pgsizeBitmap?: bigint;
  aperture?: [bigint, bigint];
  reserved?: [bigint, bigint][];
}
export interface AnyEngine {
  createGroup(o: GroupSpec): AnyGroup;
  createProcess(o?: { memlockLimit?: bigint; capIpcLock?: boolean }): AnyProc;
  inspect(): unknown;
}

// ---- operations --------------------------------------------------------------------------------

/** A user address: an offset into a region made by an `mmap` op, or a raw address. */
export type Addr = { region: number; off: bigint } | { raw: bigint };

/** A user bitmap argument: vfio_bitmap fields, the byte pre-filled over `span` bytes at data. */
export interface Bm {
  pgsize: bigint;
  bsize: bigint;
  data: Addr;
  fill: number;
  /** Bytes at data compared after the call. */
  span: number;
}

export type Op =
  | { t: 'mmap'; p: number; len: bigint; out: number }
  | { t: 'open'; p: number; path: 'container' | 'bogus' | number; out: number }
  | { t: 'close'; p: number; h: number; unpinFirst?: boolean }
  | { t: 'ioctl'; p: number; h: number; req: number; arg?: number }
  | { t: 'setContainer'; p: number; h: number; c: number }
  | { t: 'deviceFd'; p: number; h: number; name: string; out: number }
  | { t: 'argsz'; p: number; h: number; req: number; argsz: number; len: number }
  | { t: 'map'; p: number; h: number; flags: number; iova: bigint; size: bigint; vaddr: Addr; argsz?: number; len?: number }
  | { t: 'unmap'; p: number; h: number; flags: number; iova: bigint; size: bigint; bm?: Bm; argsz?: number }
  | { t: 'dirty'; p: number; h: number; flags: number; argsz?: number; iova?: bigint; size?: bigint; bm?: Bm }
  | { t: 'register'; g: number; d: number; mode: 'unpin' | 'ignore' }
  | { t: 'pin'; g: number; d: number; iova: bigint; n: number; prot: number }
  | { t: 'unpin'; g: number; d: number; iova: bigint; n: number }
  | { t: 'rw'; g: number; d: number; iova: bigint; len: number; write: boolean; fill: number };

/** What one op did, in comparable form. */
export interface StepRecord {
  ret: number | string;
  /** The ioctl argument buffer after the call (hex). */
  buf?: string;
  /** The user bitmap bytes after the call (hex), or 'unmapped'. */
  mem?: string;
  /** The dmaRw buffer after a read (hex). */
  data?: string;
  /** dma_unmap notifications during the op: "device iova size", sorted. */
  calls: string[];
  lockedVm: string[];
}

export interface Setup {
  profile: 'linux-6.18' | 'linux-6.6';
  dmaEntryLimit: number;
  procs: { memlockLimit?: bigint; capIpcLock?: boolean }[];
  groups: GroupSpec[];
}

interface Driver {
  mode: 'unpin' | 'ignore' | null;
  /** Pins this driver holds: page iova -> count. */
  books: Map<bigint, number>;
}

/** One engine with the sequence's processes and groups, interpreting ops. */
export class World {
  readonly engine: AnyEngine;
  readonly procs: AnyProc[];
  readonly groups: AnyGroup[];
  /** fd handles: handle -> fd (negative when the open failed). */
  readonly handles = new Map<number, number>();
  /** Device fd handles: handle -> [group index, device index]. */
  readonly deviceOf = new Map<number, [number, number]>();
  /** Regions by id: [process, base address]. */
  readonly regions = new Map<number, [number, bigint]>();
  readonly drivers = new Map<string, Driver>();
  private calls: string[] = [];

  constructor(engine: AnyEngine, s: Setup) {
    this.engine = engine;
    this.procs = s.procs.map((p) => engine.createProcess(p));
    this.groups = s.groups.map((g) => engine.createGroup(g));
  }

  fd(h: number): number {
    return this.handles.get(h) ?? -1;
  }

  addr(a: Addr): bigint {
    if ('raw' in a) return a.raw;
    const r = this.regions.get(a.region);
    return r ? r[1] + a.off : 0x1000n;
  }

  driver(g: number, d: number): Driver {
    const key = `${g}:${d}`;
    let v = this.drivers.get(key);
    if (!v) {
      v = { mode: null, books: new Map() };
      this.drivers.set(key, v);
    }
    return v;
  }

  device(g: number, d: number): AnyDevice {
    return this.groups[g].devices[d];
  }

  /** The dma_unmap op a driver registers: records the call; mode 'unpin' releases its pins in range. */
  private onDmaUnmap(g: number, d: number, iova: bigint, size: bigint): void {
    const dev = this.device(g, d);
    this.calls.push(`${dev.name} ${iova.toString(16)} ${size.toString(16)}`);
    const drv = this.driver(g, d);
    if (drv.mode !== 'unpin') return;
    for (const [page, n] of [...drv.books]) {
      if (page < iova || page >= iova + size) continue;
      for (let i = 0; i < n; i++) this.unpin(g, d, page, 1);
    }
  }

  private unpin(g: number, d: number, iova: bigint, n: number): void {
    this.device(g, d).unpinPages(iova, n);
    if (n <= 0 || n > 512) return;
    const books = this.driver(g, d).books;
    for (let i = 0; i < n; i++) {
      const a = iova + BigInt(i) * 4096n;
      const c = books.get(a);
      if (c === undefined) continue;
      if (c > 1) books.set(a, c - 1);
      else books.delete(a);
    }
  }

  private prefill(p: AnyProc, bm: Bm | undefined): void {
    if (!bm || bm.span <= 0) return;
    try {
      p.write(this.addr(bm.data), new Uint8Array(bm.span).fill(bm.fill));
    } catch {
      // unmapped: the op is about a fault
    }
  }

  private readBack(p: AnyProc, bm: Bm | undefined): string | undefined {
    if (!bm || bm.span <= 0) return undefined;
    try {
      return hexOf(p.read(this.addr(bm.data), bm.span));
    } catch {
      return 'unmapped';
    }
  }

  /** Runs one op; never throws (a throw is recorded as its class name). */
  apply(op: Op): StepRecord {
    this.calls = [];
    const rec: StepRecord = { ret: 0, calls: this.calls, lockedVm: [] };
    try {
      this.run(op, rec);
    } catch (e) {
      rec.ret = `throw ${(e as Error).name}`;
    }
    rec.lockedVm = this.procs.map((p) => p.lockedVm.toString());
    // The rules fix no order among the devices notified for one dma: compare them as a set
    rec.calls.sort();
    return rec;
  }

  private run(op: Op, rec: StepRecord): void {
    if (op.t === 'register') {
      this.driver(op.g, op.d).mode = op.mode;
      this.device(op.g, op.d).registerDmaUnmap((iova, size) => this.onDmaUnmap(op.g, op.d, iova, size));
      return;
    }
    if (op.t === 'pin') {
      const ret = this.device(op.g, op.d).pinPages(op.iova, op.n, op.prot);
      rec.ret = ret;
      if (ret > 0) {
        const books = this.driver(op.g, op.d).books;
        for (let i = 0; i < op.n; i++) {
          const a = op.iova + BigInt(i) * 4096n;
          books.set(a, (books.get(a) ?? 0) + 1);
        }
      }
      return;
    }
    if (op.t === 'unpin') {
      this.unpin(op.g, op.d, op.iova, op.n);
      return;
    }
    if (op.t === 'rw') {
      const data = new Uint8Array(op.len);
      for (let i = 0; i < op.len; i++) data[i] = (op.fill + i * 7) & 0xff;
      rec.ret = this.device(op.g, op.d).dmaRw(op.iova, data, op.write);
      if (!op.write) rec.data = hexOf(data);
      return;
    }
    const p = this.procs[op.p];
    switch (op.t) {
      case 'mmap': {
        const base = p.mmap(op.len);
        this.regions.set(op.out, [op.p, base]);
        rec.ret = 0;
        return;
      }
      case 'open': {
        const path = op.path === 'container' ? '/dev/vfio/vfio' : op.path === 'bogus' ? '/dev/vfio/999' : `/dev/vfio/${this.groups[op.path].id}`;
        rec.ret = p.open(path);
        this.handles.set(op.out, rec.ret);
        return;
      }
      case 'close': {
        const dev = this.deviceOf.get(op.h);
        if (dev && op.unpinFirst) {
          for (const [page, n] of [...this.driver(dev[0], dev[1]).books]) {
            for (let i = 0; i < n; i++) this.unpin(dev[0], dev[1], page, 1);
          }
        }
        rec.ret = p.close(this.fd(op.h));
        return;
      }
      case 'ioctl':
        rec.ret = p.ioctl(this.fd(op.h), op.req, op.arg);
        return;
      case 'setContainer':
        rec.ret = p.ioctl(this.fd(op.h), VFIO_GROUP_SET_CONTAINER, this.fd(op.c));
        return;
      case 'deviceFd': {
        rec.ret = p.ioctl(this.fd(op.h), VFIO_GROUP_GET_DEVICE_FD, op.name);
        this.handles.set(op.out, rec.ret);
        const gi = this.groups.findIndex((g) => g.devices.some((d) => d.name === op.name));
        if (gi >= 0) this.deviceOf.set(op.out, [gi, this.groups[gi].devices.findIndex((d) => d.name === op.name)]);
        return;
      }
      case 'argsz': {
        const b = new Uint8Array(op.len).fill(0xee);
        if (op.len >= 4) wr32(b, 0, op.argsz);
        rec.ret = p.ioctl(this.fd(op.h), op.req === VFIO_GROUP_GET_STATUS ? op.req : VFIO_IOMMU_GET_INFO, b);
        rec.buf = hexOf(b);
        return;
      }
      case 'map': {
        const b = mapArg(op.flags, this.addr(op.vaddr), op.iova, op.size, op.argsz, op.len);
        rec.ret = p.ioctl(this.fd(op.h), VFIO_IOMMU_MAP_DMA, b);
        rec.buf = hexOf(b);
        return;
      }
      case 'unmap': {
        this.prefill(p, op.bm);
        const bm = op.bm && { pgsize: op.bm.pgsize, size: op.bm.bsize, data: this.addr(op.bm.data) };
        const b = unmapArg(op.flags, op.iova, op.size, bm, op.argsz);
        rec.ret = p.ioctl(this.fd(op.h), VFIO_IOMMU_UNMAP_DMA, b);
        rec.buf = hexOf(b);
        rec.mem = this.readBack(p, op.bm);
        return;
      }
      case 'dirty': {
        this.prefill(p, op.bm);
        const range = op.bm && {
          iova: op.iova ?? 0n, size: op.size ?? 0n, pgsize: op.bm.pgsize, bsize: op.bm.bsize, data: this.addr(op.bm.data),
        };
        const b = dirtyArg(op.flags, range, op.argsz);
        rec.ret = p.ioctl(this.fd(op.h), VFIO_IOMMU_DIRTY_PAGES, b);
        rec.buf = hexOf(b);
        rec.mem = this.readBack(p, op.bm);
        return;
      }
    }
  }
}

// ---- comparison --------------------------------------------------------------------------------

/** inspect() without heapUsed, as a JSON string with bigints as hex. */
export function canonicalState(e: AnyEngine): string {
  const { heapUsed: _h, ...rest } = e.inspect() as Record<string, unknown>;
  return stringify(rest);
}

/** JSON with bigints written as "0x..n". */
export function stringify(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `0x${x.toString(16)}n` : x));
}

/** JSON with "0x..n" strings read back as bigints (the inverse of stringify). */
export function parse<T>(s: string): T {
  return JSON.parse(s, (_k, x) => (typeof x === 'string' && /^0x[0-9a-f]+n$/.test(x) ? BigInt(x.slice(0, -1)) : x)) as T;
}

/** The first path where two JSON-able values differ, with both sides; null when equal. */
export function firstDifference(a: unknown, b: unknown, path = '$'): string | null {
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) {
    return stringify(a) === stringify(b) ? null : `${path}: ${stringify(a)} != ${stringify(b)}`;
  }
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) {
    const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`);
    if (d) return d;
  }
  return null;
}
