// The typed API over one container fd: what an application calls instead of building structs.
// It converts arguments and calls the same implementation as the ioctl path, which does every
// check once; failures become VfioError subclasses carrying errno, operation and range.
import { EBADF, EINVAL } from '../../assembly/constants.js';
import { DirtyBitmap } from '../core/dirty_bitmap.js';
import type { Core } from '../wasm.js';
import { vfioError, type ErrorRange } from '../errors.js';
import type { Container } from './container.js';
import { dirtyCollect, dirtyStart, dirtyStop, reportToBitmap } from './dirty.js';
import { dirtyPagesRefusal, dirtyReadGate, userBitmapRefusal } from './range_gate.js';
import {
  mapDma, MAP_FLAG_READ, MAP_FLAG_VADDR, MAP_FLAG_WRITE, rethrowCallbackErrors, unmapDma,
  UNMAP_FLAG_ALL, UNMAP_FLAG_GET_DIRTY_BITMAP, UNMAP_FLAG_VADDR,
} from './dma_map.js';
import { Group, VfioDevice } from './group.js';
import type { Process } from '../process.js';
import type { Engine } from '../engine.js';
import { ContainerFile, GroupFd } from './files.js';
import { uapi } from '../uapi.js';
import type { Type1 } from './type1.js';
import { isU64 } from '../u64.js';

const {
  VFIO_GROUP_GET_DEVICE_FD, VFIO_GROUP_SET_CONTAINER, VFIO_GROUP_UNSET_CONTAINER, VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU,
  DIRTY_BITMAP_SIZE_MAX,
} = uapi;

export interface MapRequest {
  iova: bigint;
  /** User address in the container's process (from proc.mmap). */
  vaddr: bigint;
  size: bigint;
  /** Device may read; default true. */
  read?: boolean;
  /** Device may write; default true. */
  write?: boolean;
}

export interface RangeRequest {
  iova: bigint;
  size: bigint;
}

export interface ContainerInfo {
  /** Supported IOMMU page sizes (iova_pgsizes). */
  pgsizes: bigint;
  /** Remaining DMA mappings (DMA_AVAIL). */
  dmaAvail: number;
  /** Valid IOVA ranges, inclusive; empty when there is no IOMMU domain. */
  iovaRanges: [bigint, bigint][];
  migration: { pgsizeBitmap: bigint; maxDirtyBitmapSize: bigint };
}

function u64(name: string, v: unknown): bigint {
  if (!isU64(v)) throw new TypeError(`${name} must be a bigint in [0, 2^64)`);
  return v;
}

/**
 * Throws TypeError unless `obj` is a `kind` (Group, VfioDevice, Process) of `engine`. An object of
 * another engine would otherwise be taken for the local one that has the same number.
 */
export function assertOwnedBy<T extends object>(
  engine: Engine, obj: unknown, kind: abstract new (...args: never[]) => T, what: string, op: string,
): asserts obj is T {
  const owner = obj instanceof VfioDevice ? obj.group.engine : (obj as { engine?: unknown } | null)?.engine;
  if (!(obj instanceof kind) || owner !== engine) {
    throw new TypeError(`${op}: not a ${what} of this engine`);
  }
}

/** The typed API of one container fd in one process. */
export class VfioContainer {
  readonly proc: Process;
  /** The container fd in `proc`. */
  readonly fd: number;
  /** Dirty tracking of this container. */
  readonly dirty: DirtyTracking;

  constructor(proc: Process, fd: number) {
    if (fd < 0) throw vfioError(fd, 'open /dev/vfio/vfio');
    this.proc = proc;
    this.fd = fd;
    this.dirty = new DirtyTracking(this);
  }

  /** The container model behind the fd; throws EBADF once closed. */
  get container(): Container {
    const e = this.proc.fds.get(this.fd);
    if (!(e instanceof ContainerFile)) throw vfioError(EBADF, 'container', undefined, 'fd is closed');
    return e.container;
  }

  /** The type1 driver; throws EINVAL before setIommu, as container ioctls do. */
  get iommu(): Type1 {
    const t = this.container.iommu;
    if (!t) throw vfioError(-EINVAL, 'container', undefined, 'no IOMMU driver set');
    return t;
  }

  /** The engine's Wasm core, where reports and bitmaps of this container live. */
  get core(): Core {
    return this.proc.engine.core;
  }

  /** The smallest IOMMU page size: the dirty-tracking granularity. */
  get pgsize(): bigint {
    return this.iommu.pgsize;
  }

  private groupFd(group: Group, op: string): number {
    assertOwnedBy(this.proc.engine, group, Group, 'group', op);
    for (const [fd, e] of this.proc.fds) if (e instanceof GroupFd && e.file.group === group) return fd;
    const fd = this.proc.open(`/dev/vfio/${group.id}`);
    if (fd < 0) throw vfioError(fd, op, undefined, `open /dev/vfio/${group.id}`);
    return fd;
  }

  /** Opens the group (if this process has not) and sets it to this container. */
  attach(group: Group): void {
    const r = this.proc.ioctl(this.groupFd(group, 'attach'), VFIO_GROUP_SET_CONTAINER, this.fd);
    if (r < 0) throw vfioError(r, 'attach', undefined, `group ${group.id}`);
  }

  /** VFIO_GROUP_UNSET_CONTAINER. */
  detach(group: Group): void {
    const r = this.proc.ioctl(this.groupFd(group, 'detach'), VFIO_GROUP_UNSET_CONTAINER);
    if (r < 0) throw vfioError(r, 'detach', undefined, `group ${group.id}`);
  }

  /** VFIO_SET_IOMMU with type1v2 (default) or type1. */
  setIommu(type: 'type1v2' | 'type1' = 'type1v2'): void {
    const n = type === 'type1' ? VFIO_TYPE1_IOMMU : type === 'type1v2' ? VFIO_TYPE1v2_IOMMU : -1;
    if (n < 0) throw new TypeError(`setIommu: unknown type '${String(type)}'`);
    const r = this.container.setIommu(n, this.proc);
    if (r < 0) throw vfioError(r, 'setIommu');
  }

  /** VFIO_GROUP_GET_DEVICE_FD: a device fd (default: the group's first device). */
  openDevice(group: Group, name?: string): number {
    const fd = this.groupFd(group, 'openDevice');
    name ??= group.devices[0].name;
    const r = this.proc.ioctl(fd, VFIO_GROUP_GET_DEVICE_FD, name);
    if (r < 0) throw vfioError(r, 'openDevice', undefined, name);
    return r;
  }

  /** VFIO_IOMMU_MAP_DMA. */
  map(m: MapRequest): void {
    const iova = u64('iova', m.iova);
    const size = u64('size', m.size);
    const flags = (m.read ?? true ? MAP_FLAG_READ : 0) | (m.write ?? true ? MAP_FLAG_WRITE : 0);
    const r = mapDma(this.iommu, this.proc, flags, u64('vaddr', m.vaddr), iova, size);
    if (r < 0) throw vfioError(r, 'map', { start: iova, length: size }, this.iommu.takeRefusal());
  }

  /** MAP_DMA with VADDR: re-points a dma invalidated by invalidateVaddr. */
  updateVaddr(m: { iova: bigint; size: bigint; vaddr: bigint }): void {
    const iova = u64('iova', m.iova);
    const size = u64('size', m.size);
    const r = mapDma(this.iommu, this.proc, MAP_FLAG_VADDR, u64('vaddr', m.vaddr), iova, size);
    if (r < 0) throw vfioError(r, 'updateVaddr', { start: iova, length: size }, this.iommu.takeRefusal());
  }

  private unmapWith(op: string, flags: number, iova: bigint, size: bigint): bigint {
    const r = unmapDma(this.iommu, flags, iova, size, 0n, null);
    rethrowCallbackErrors(r);
    if (r.ret < 0) throw vfioError(r.ret, op, { start: iova, length: size }, this.iommu.takeRefusal());
    return r.size;
  }

  /** VFIO_IOMMU_UNMAP_DMA: the bytes unmapped. */
  unmap(r: RangeRequest): bigint {
    return this.unmapWith('unmap', 0, u64('iova', r.iova), u64('size', r.size));
  }

  /** UNMAP_DMA with VADDR: invalidates the vaddrs in range; the bytes invalidated. */
  invalidateVaddr(r: RangeRequest): bigint {
    return this.unmapWith('invalidateVaddr', UNMAP_FLAG_VADDR, u64('iova', r.iova), u64('size', r.size));
  }

  /** UNMAP_DMA with ALL: removes every mapping; the bytes unmapped. */
  unmapAll(): bigint {
    return this.unmapWith('unmapAll', UNMAP_FLAG_ALL, 0n, 0n);
  }

  /**
   * UNMAP_DMA with GET_DIRTY_BITMAP: removes the mappings in range and returns their dirty bits
   * in the kernel layout (bit i = page iova + i * pgsize), as the ioctl writes a zeroed bitmap.
   */
  unmapWithBitmap(r: RangeRequest): { size: bigint; bitmap: Uint8Array } {
    const iova = u64('iova', r.iova);
    const size = u64('size', r.size);
    const t = this.iommu;
    const range = { start: iova, length: size };
    // The ioctl's user-bitmap rule, for the bitmap the engine allocates: one bit per tracking page.
    const pages = size >> t.pgshiftBig;
    const implied = { pgsize: t.pgsize, size: ((pages + 63n) >> 6n) << 3n, data: 0n };
    const bad = userBitmapRefusal(t, size, implied);
    if (bad) throw vfioError(bad.errno, 'unmapWithBitmap', range, bad.rule);
    const out = DirtyBitmap.create(t.core, pagesOf(t, size));
    try {
      const res = unmapDma(t, UNMAP_FLAG_GET_DIRTY_BITMAP, iova, size, t.pgsize, (d) => reportToBitmap(t, d, iova, out));
      rethrowCallbackErrors(res);
      if (res.ret < 0) throw vfioError(res.ret, 'unmapWithBitmap', range, t.takeRefusal());
      return { size: res.size, bitmap: out.toBytes() };
    } finally {
      out.dispose();
    }
  }

  /** VFIO_IOMMU_GET_INFO, decoded. */
  info(): ContainerInfo {
    const t = this.iommu;
    return {
      pgsizes: t.pgsizeBitmap,
      dmaAvail: t.dmaAvail,
      iovaRanges: t.validRanges.map(([s, e]) => [s, e]),
      migration: { pgsizeBitmap: t.pgsize, maxDirtyBitmapSize: DIRTY_BITMAP_SIZE_MAX },
    };
  }

  /** The mappings, ascending. */
  mappings(): { iova: bigint; size: bigint; vaddr: bigint }[] {
    return this.iommu.all().map((d) => ({ iova: d.iova, size: d.size, vaddr: d.vaddr }));
  }

  /** Closes the container fd. */
  close(): void {
    const r = this.proc.close(this.fd);
    if (r < 0) throw vfioError(r, 'close');
  }
}

/** Dirty tracking of one container: START / STOP / GET_BITMAP and the engine's own reads. */
export class DirtyTracking {
  private readonly c: VfioContainer;

  constructor(c: VfioContainer) {
    this.c = c;
  }

  /** The driver, when it does dirty tracking (type1v2); throws AccessError on type1, as the ioctl answers. */
  private driver(op: string): Type1 {
    const t = this.c.iommu;
    const bad = dirtyPagesRefusal(t);
    if (bad) throw vfioError(bad.errno, op, undefined, bad.rule);
    return t;
  }

  /** VFIO_IOMMU_DIRTY_PAGES_FLAG_START. */
  start(): void {
    const r = dirtyStart(this.driver('dirty.start'));
    if (r < 0) throw vfioError(r, 'dirty.start');
  }

  /** VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP. */
  stop(): void {
    const r = dirtyStop(this.driver('dirty.stop'));
    if (r < 0) throw vfioError(r, 'dirty.stop');
  }

  /** Whether tracking is on. */
  get tracking(): boolean {
    return this.c.container.iommu?.tracking ?? false;
  }

  /**
   * Asks the range gate (the one GET_BITMAP asks) about a read of [iova, iova + size): returns
   * the driver and the range when it may be read, else throws the error of the errno the ioctl
   * would return, its message naming `op` and the rule that refused the range. `partial`: a
   * windowed read, which may cut mappings and pass 2^31 pages.
   */
  private gate(op: string, iova: unknown, size: unknown, partial: boolean): { t: Type1; range: ErrorRange } {
    const range = { start: u64('iova', iova), length: u64('size', size) };
    const t = this.c.iommu;
    const bad = dirtyReadGate(t, { iova: range.start, size: range.length, bitmap: null, partial });
    if (bad) throw vfioError(bad.errno, op, range, bad.rule);
    return { t, range };
  }

  /**
   * Throws what a read of [iova, iova + size) would throw, before anything is read or allocated
   * (readReport and windows ask first). `op` names the caller's operation in the message.
   */
  check(iova: bigint, size: bigint, o: { partial: boolean; op?: string }): void {
    this.gate(o.op ?? 'dirty.check', iova, size, o.partial);
  }

  /**
   * GET_BITMAP over whole mappings in [iova, iova+size): the kernel-layout bitmap of
   * ceil(pages/64) words that the ioctl would leave in a zeroed buffer. Reading clears what it
   * reported, as the ioctl does. Throws what the ioctl's errno names, for the same ranges.
   */
  read(r: RangeRequest): Uint8Array {
    const { t, range } = this.gate('dirty.read', r.iova, r.size, false);
    const out = DirtyBitmap.create(t.core, pagesOf(t, range.length));
    try {
      dirtyCollect(t, range.start, range.start + range.length - 1n, out.wordAddress(0), 0, true);
      return out.toBytes();
    } finally {
      out.dispose();
    }
  }

  /**
   * Reads [iova, iova+size) into a Wasm-resident bitmap: page iova + i * pgsize lands at bit
   * targetBit + i, with the kernel's word footprint. `clear: false` leaves the dirty state as it
   * was; `partial: true` lets the range cut mappings (windowed reads), which GET_BITMAP refuses.
   * `op` names the caller's operation in error messages (default 'dirty.collect'). Throws what
   * the ioctl's errno names for the same range; TypeError for a target of another engine.
   */
  collect(
    iova: bigint, size: bigint, target: DirtyBitmap, targetBit: number,
    o: { clear: boolean; partial: boolean; op?: string },
  ): void {
    const op = o.op ?? 'dirty.collect';
    const { t, range } = this.gate(op, iova, size, o.partial);
    if (!(target instanceof DirtyBitmap) || target.core !== t.core) {
      throw new TypeError(`${op}: the target bitmap belongs to another engine (or is not a DirtyBitmap)`);
    }
    const pages = range.length >> t.pgshiftBig;
    if (!Number.isInteger(targetBit) || targetBit < 0 || BigInt(targetBit) + pages > BigInt(target.nbits)) {
      throw vfioError(EINVAL, op, range, `the target bitmap has no bits [${targetBit}, +${pages})`);
    }
    dirtyCollect(t, range.start, range.start + range.length - 1n, target.wordAddress(0), targetBit, o.clear);
  }
}

/** Pages of `size` bytes at t's tracking page size: exact, for a size the range gate let through. */
function pagesOf(t: Type1, size: bigint): number {
  return Number(size >> t.pgshiftBig);
}
