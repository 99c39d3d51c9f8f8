// The setups of the type1 acceptance vectors, built only through public calls, and their notation
// as helpers:
//   E  one emulated group M (one device with a dma_unmap op); no IOMMU domain.
//   I  one IOMMU-backed group G (pgsize_bitmap 0x40201000, aperture [0, 2^48-1], MSI reserved).
//   X  G and M in one container (G attached first).
// All TYPE1v2 unless `v1`. Every device fd is opened and every device registers a dma_unmap op
// (unless `register: false`), so G's device may pin in X.
// MAP(iova, size[, flags]) uses READ|WRITE and fresh user memory from proc.mmap;
// PIN(dev, iova, n[, prot]) uses READ; GET/UMB use bitmap.pgsize 0x1000 and a zero-filled user
// bitmap unless `fill` says otherwise; RW(dev, iova, len, write) is dmaRw.
import { expect } from 'vitest';
import { uapi } from '../../src/uapi.js';
import { makeEngine, type Engine, type EngineOptions, type Group, type Proc, type Snapshot, type VfioDevice } from './engine.js';
import { dirtyBitmap, dirtyBitmapGet, dmaMap, dmaUnmap, groupStatus, hex, iommuInfo, parseDmaUnmap, parseInfo, u32, type InfoFields } from './uapi_structs.js';

/** `P(n)`: the IOVA n * 0x1000. */
export const P = (n: number | bigint): bigint => BigInt(n) * 0x1000n;
export const RW_FLAGS = uapi.VFIO_DMA_MAP_FLAG_READ | uapi.VFIO_DMA_MAP_FLAG_WRITE;
export const TWO64 = 1n << 64n;

export type SetupKind = 'E' | 'I' | 'X' | 'none';

export interface SetupOptions extends EngineOptions {
  /** SET_IOMMU(VFIO_TYPE1_IOMMU) instead of TYPE1v2. */
  v1?: boolean;
  memlockLimit?: bigint;
  capIpcLock?: boolean;
  /** Register a dma_unmap op on every device (default true). */
  register?: boolean;
  /** Open a device fd for every device (default true). */
  openDevices?: boolean;
  /** Extra options for G. */
  g?: { pgsizeBitmap?: bigint; aperture?: [bigint, bigint]; reserved?: [bigint, bigint][]; devices?: string[] };
  /** Extra options for M. */
  m?: { devices?: string[] };
}

export interface UnmapCall {
  dev: string;
  iova: bigint;
  size: bigint;
}

export interface GetOptions {
  /** Byte every bitmap byte holds before the call (default 0). */
  fill?: number;
  /** bitmap.pgsize (default 0x1000). */
  pgsize?: bigint;
  /** bitmap.data: a user address (default fresh memory from proc.mmap). */
  data?: bigint;
  /** bitmap.size (default nbytes). */
  bsize?: bigint;
}

export interface BitmapResult {
  ret: number;
  /** The nbytes at bitmap.data after the call. */
  bytes: Uint8Array;
  /** `bytes` as hex pairs, byte 0 first, space separated. */
  hex: string;
  /** The ioctl buffer after the call. */
  buf: Uint8Array;
}

/** Nonzero ret -> a setup failure that names the step. */
export function must(ret: number, what: string): number {
  if (ret < 0) throw new Error(`setup step ${what} failed: ${ret}`);
  return ret;
}

/** inspect() without heapUsed: the model's state, for "nothing changed" checks. */
export function state(engine: Engine): Omit<Snapshot, 'heapUsed'> {
  const { heapUsed: _h, ...rest } = engine.inspect();
  return rest;
}

export class Setup {
  readonly engine: Engine;
  readonly proc: Proc;
  /** The container fd. */
  cfd = -1;
  /** Groups by setup name ('G', 'M'). */
  readonly groups: Record<string, Group> = {};
  /** Group fds by setup name. */
  readonly gfds: Record<string, number> = {};
  /** First device of each group, by setup name. */
  readonly dev: Record<string, VfioDevice> = {};
  /** Device fds by device name. */
  readonly devFds: Record<string, number> = {};
  /** Every dma_unmap notification, in order. */
  readonly unmapCalls: UnmapCall[] = [];
  /** The default driver unpins all it pinned inside a notified range; false: it does nothing. */
  driverUnpins = true;
  /** Pins the helper made, per device name: iova -> count (a well-behaved driver's books). */
  readonly pinned = new Map<string, Map<bigint, number>>();
  /** vaddr of each MAP by iova. */
  readonly vaddrOf = new Map<bigint, bigint>();

  constructor(engine: Engine, proc: Proc) {
    this.engine = engine;
    this.proc = proc;
  }

  // ---- building ---------------------------------------------------------------------------------

  /** Creates a group ('G' iommu or 'M' emulated) without attaching it. */
  createGroup(name: string, kind: 'iommu' | 'emulated', extra: object = {}): Group {
    const g = this.engine.createGroup({ kind, ...extra });
    this.groups[name] = g;
    this.dev[name] = g.devices[0];
    return g;
  }

  /** Opens the group, checks GET_STATUS says viable, SET_CONTAINER. Returns the SET_CONTAINER ret. */
  attach(name: string): number {
    const g = this.groups[name];
    const gfd = this.gfds[name] ?? must(this.proc.open(`/dev/vfio/${g.id}`), `open group ${name}`);
    this.gfds[name] = gfd;
    const st = groupStatus();
    must(this.proc.ioctl(gfd, uapi.VFIO_GROUP_GET_STATUS, st), `GET_STATUS ${name}`);
    expect(u32(st, 4) & uapi.VFIO_GROUP_FLAGS_VIABLE).toBe(uapi.VFIO_GROUP_FLAGS_VIABLE);
    return this.proc.ioctl(gfd, uapi.VFIO_GROUP_SET_CONTAINER, this.cfd);
  }

  /** Registers the recording dma_unmap op on every device of the group. */
  register(name: string): void {
    for (const d of this.groups[name].devices) d.registerDmaUnmap((iova, size) => this.onDmaUnmap(d, iova, size));
  }

  /** Opens a device fd for every device of the group. */
  openDevices(name: string): void {
    for (const d of this.groups[name].devices) {
      this.devFds[d.name] = must(this.proc.ioctl(this.gfds[name], uapi.VFIO_GROUP_GET_DEVICE_FD, d.name), `GET_DEVICE_FD ${d.name}`);
    }
  }

  /** The recording op: logs the call and, when `driverUnpins`, unpins what it pinned in range. */
  onDmaUnmap(d: VfioDevice, iova: bigint, size: bigint): void {
    this.unmapCalls.push({ dev: d.name, iova, size });
    if (!this.driverUnpins) return;
    const book = this.pinned.get(d.name);
    if (!book) return;
    for (const [page, count] of [...book]) {
      if (page < iova || page >= iova + size) continue;
      for (let i = 0; i < count; i++) this.UNPIN(d, page, 1);
    }
  }

  // ---- the §7 notation ----------------------------------------------------------------------------

  private device(d: VfioDevice | string): VfioDevice {
    return typeof d === 'string' ? this.dev[d] : d;
  }

  /** MAP_DMA; vaddr defaults to fresh user memory of `size` bytes. */
  MAP(iova: bigint, size: bigint, flags: number = RW_FLAGS, vaddr?: bigint): number {
    const va = vaddr ?? this.proc.mmap(size > 0n ? size : 0x1000n);
    const ret = this.proc.ioctl(this.cfd, uapi.VFIO_IOMMU_MAP_DMA, dmaMap({ flags, vaddr: va, iova, size }));
    if (ret === 0 && !(flags & uapi.VFIO_DMA_MAP_FLAG_VADDR)) this.vaddrOf.set(iova, va);
    return ret;
  }

  /** UNMAP_DMA; returns ret, the written-back size and the buffer. */
  UNMAP(iova: bigint, size: bigint, flags = 0): { ret: number; size: bigint; buf: Uint8Array } {
    const buf = dmaUnmap({ flags, iova, size });
    const ret = this.proc.ioctl(this.cfd, uapi.VFIO_IOMMU_UNMAP_DMA, buf);
    return { ret, size: parseDmaUnmap(buf).size, buf };
  }

  /** pinPages; records successful pins in the driver's books. */
  PIN(d: VfioDevice | string, iova: bigint, n: number, prot: number = uapi.IOMMU_READ): number {
    const dev = this.device(d);
    const ret = dev.pinPages(iova, n, prot);
    if (ret > 0) {
      const book = this.pinned.get(dev.name) ?? new Map<bigint, number>();
      this.pinned.set(dev.name, book);
      for (let i = 0; i < n; i++) book.set(iova + P(i), (book.get(iova + P(i)) ?? 0) + 1);
    }
    return ret;
  }

  /** unpinPages; updates the driver's books for pages it holds. */
  UNPIN(d: VfioDevice | string, iova: bigint, n: number): void {
    const dev = this.device(d);
    dev.unpinPages(iova, n);
    const book = this.pinned.get(dev.name);
    if (!book || n <= 0 || n > uapi.VFIO_PIN_PAGES_MAX_ENTRIES) return;
    for (let i = 0; i < n; i++) {
      const c = book.get(iova + P(i));
      if (c === undefined) continue;
      if (c > 1) book.set(iova + P(i), c - 1);
      else book.delete(iova + P(i));
    }
  }

  /** dmaRw of `len` bytes (or of `data`); returns ret and the data buffer. */
  RW(d: VfioDevice | string, iova: bigint, len: number, write: boolean, data?: Uint8Array): { ret: number; data: Uint8Array } {
    const buf = data ?? new Uint8Array(len).fill(write ? 0xcd : 0);
    return { ret: this.device(d).dmaRw(iova, buf, write), data: buf };
  }

  /** DIRTY_PAGES with bare flags (START, STOP, or anything for framing tests). */
  dirty(flags: number, argsz?: number): number {
    return this.proc.ioctl(this.cfd, uapi.VFIO_IOMMU_DIRTY_PAGES, dirtyBitmap({ flags, argsz }));
  }
  START(): number {
    return this.dirty(uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START);
  }
  STOP(): number {
    return this.dirty(uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP);
  }

  /** User memory for a bitmap of nbytes, filled with `fill`. */
  userBitmap(nbytes: number, fill = 0): bigint {
    const data = this.proc.mmap(Math.max(nbytes, 1));
    if (fill !== 0 && nbytes > 0) this.proc.write(data, new Uint8Array(nbytes).fill(fill));
    return data;
  }

  /** The nbytes at data, or nothing when that memory is not readable (fault tests). */
  private readBitmap(data: bigint, nbytes: number): Uint8Array {
    if (nbytes <= 0) return new Uint8Array(0);
    try {
      return this.proc.read(data, nbytes);
    } catch {
      return new Uint8Array(0);
    }
  }

  /** GET_BITMAP of [iova, iova+size) into an nbytes user bitmap. */
  GET(iova: bigint, size: bigint, nbytes: number, o: GetOptions = {}): BitmapResult {
    const data = o.data ?? this.userBitmap(nbytes, o.fill ?? 0);
    if (o.data !== undefined && o.fill !== undefined) this.proc.write(data, new Uint8Array(nbytes).fill(o.fill));
    const buf = dirtyBitmapGet({ iova, size, bitmap: { pgsize: o.pgsize ?? 0x1000n, size: o.bsize ?? BigInt(nbytes), data } });
    const ret = this.proc.ioctl(this.cfd, uapi.VFIO_IOMMU_DIRTY_PAGES, buf);
    const out = this.readBitmap(data, nbytes);
    return { ret, bytes: out, hex: hex(out), buf };
  }

  /** UNMAP with GET_DIRTY_BITMAP into an nbytes user bitmap. */
  UMB(iova: bigint, size: bigint, nbytes: number, o: GetOptions = {}): BitmapResult & { size: bigint } {
    const data = o.data ?? this.userBitmap(nbytes, o.fill ?? 0);
    if (o.data !== undefined && o.fill !== undefined) this.proc.write(data, new Uint8Array(nbytes).fill(o.fill));
    const buf = dmaUnmap({
      flags: uapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
      iova,
      size,
      bitmap: { pgsize: o.pgsize ?? 0x1000n, size: o.bsize ?? BigInt(nbytes), data },
    });
    const ret = this.proc.ioctl(this.cfd, uapi.VFIO_IOMMU_UNMAP_DMA, buf);
    const out = this.readBitmap(data, nbytes);
    return { ret, bytes: out, hex: hex(out), buf, size: parseDmaUnmap(buf).size };
  }

  /** GET_INFO with `argsz`; the buffer is argsz bytes long unless `length` says otherwise. */
  info(argsz = 256, o: { length?: number; fill?: number } = {}): { ret: number; buf: Uint8Array; info: InfoFields } {
    const buf = iommuInfo(argsz, o);
    const ret = this.proc.ioctl(this.cfd, uapi.VFIO_IOMMU_GET_INFO, buf);
    // cap_offset is copied back only when argsz reaches it (min(argsz, 24) bytes, docs/conformance.md §3.5).
    return { ret, buf, info: parseInfo(buf, ret === 0 && argsz >= 20) };
  }

  /** CHECK_EXTENSION(n) on the container. */
  ext(n: number): number {
    return this.proc.ioctl(this.cfd, uapi.VFIO_CHECK_EXTENSION, n);
  }

  // ---- reading the model ---------------------------------------------------------------------------

  /** inspect() without heapUsed. */
  state(): Omit<Snapshot, 'heapUsed'> {
    return state(this.engine);
  }

  /** The container's snapshot (the one whose fd is cfd). */
  container() {
    const c = this.engine.inspect().containers.find((x) => x.fd === this.cfd);
    if (!c) throw new Error(`container fd ${this.cfd} not in inspect()`);
    return c;
  }

  /** The dmas as [iova, size] pairs, ascending. */
  dmas(): [bigint, bigint][] {
    return this.container().dmas.map((d) => [d.iova, d.size]);
  }

  /** Pin refcounts of the dma at `dmaIova`, keyed by the pinned page's IOVA (hex). */
  refs(dmaIova: bigint): Record<string, number> {
    const d = this.container().dmas.find((x) => x.iova === dmaIova);
    if (!d) throw new Error(`no dma at 0x${dmaIova.toString(16)}`);
    const out: Record<string, number> = {};
    // inspect() keys pins by the page's index from the dma's iova (the pin table's key).
    for (const [page, count] of d.pins) out[`0x${(d.iova + P(page)).toString(16)}`] = count;
    return out;
  }
}

/** Builds setup E, I, X (or 'none': an engine, a process and an open container only). */
export async function setup(kind: SetupKind, o: SetupOptions = {}): Promise<Setup> {
  const engine = await makeEngine({ profile: o.profile, dmaEntryLimit: o.dmaEntryLimit, memoryLimit: o.memoryLimit, flavour: o.flavour });
  const proc = engine.createProcess({ memlockLimit: o.memlockLimit, capIpcLock: o.capIpcLock });
  const s = new Setup(engine, proc);
  s.cfd = must(proc.open('/dev/vfio/vfio'), 'open container');
  if (kind === 'none') return s;
  const names: string[] = [];
  if (kind === 'I' || kind === 'X') {
    s.createGroup('G', 'iommu', { devices: ['0000:65:00.0'], ...o.g });
    names.push('G');
  }
  if (kind === 'E' || kind === 'X') {
    s.createGroup('M', 'emulated', { devices: ['mdev-m0'], ...o.m });
    names.push('M');
  }
  for (const n of names) must(s.attach(n), `SET_CONTAINER ${n}`);
  must(proc.ioctl(s.cfd, uapi.VFIO_SET_IOMMU, o.v1 ? uapi.VFIO_TYPE1_IOMMU : uapi.VFIO_TYPE1v2_IOMMU), 'SET_IOMMU');
  for (const n of names) {
    if (o.register !== false) s.register(n);
    if (o.openDevices !== false) s.openDevices(n);
  }
  return s;
}

/** An address below the user-space top that proc has not mapped (probed with proc.read). */
export function unmappedAddr(proc: Proc): bigint {
  for (const a of [0x7fff_0000_0000n, 0x6000_0000_0000n, 0x5000_0000_0000n, 0x1000_0000n]) {
    try {
      proc.read(a, 1);
    } catch {
      return a;
    }
  }
  throw new Error('no unmapped user address found');
}

/**
 * A mapped page whose following page is unmapped: returns the address of the last 8 bytes of the
 * mapped page, so a 16-byte write there faults on its second word.
 */
export function lastWordBeforeHole(proc: Proc): bigint {
  for (let i = 0; i < 8; i++) {
    const base = proc.mmap(0x1000);
    try {
      proc.read(base + 0x1000n, 1);
    } catch {
      return base + 0x1000n - 8n;
    }
  }
  throw new Error('proc.mmap never leaves a hole after a page');
}

/**
 * Runs `fn`, expects it to return -err, and expects the whole model (inspect() without heapUsed)
 * to be exactly as before: every failed call leaves state exactly as it was.
 */
export function failsCleanly(s: Setup, err: number, fn: () => number): void {
  const before = s.state();
  expect(fn()).toBe(-err);
  expect(s.state()).toEqual(before);
}
