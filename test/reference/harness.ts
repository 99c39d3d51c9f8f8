// A small fixture of the type1 acceptance vectors for the reference model's self-test: setups E, I
// and X and their notation (MAP, UNMAP, UMB, GET, PIN, UNPIN, RW, START, STOP), on the
// public surface only.
import { createReferenceEngine, type RefEngine, type RefEngineOptions } from './engine.js';
import type { RefDevice, RefGroup } from './group.js';
import type { RefProcess } from './process.js';
import { dirtyArg, mapArg, unmapArg } from './structs.js';
import {
  IOMMU_READ, VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_GROUP_GET_DEVICE_FD, VFIO_GROUP_SET_CONTAINER, VFIO_IOMMU_DIRTY_PAGES,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, VFIO_IOMMU_DIRTY_PAGES_FLAG_START,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_SET_IOMMU,
  VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU, rd64,
} from './uapi.js';

export const P = (n: number | bigint): bigint => BigInt(n) * 0x1000n;
export const RW = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;

/** Bytes as the vectors write them: hex pairs, byte 0 first, space separated. */
export const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');

export interface FixtureOptions extends RefEngineOptions {
  v1?: boolean;
  memlockLimit?: bigint;
  capIpcLock?: boolean;
}

export class Fixture {
  engine!: RefEngine;
  proc!: RefProcess;
  cfd = -1;
  readonly groups: Record<string, RefGroup> = {};
  readonly gfds: Record<string, number> = {};
  readonly devFds: Record<string, number> = {};
  /** dma_unmap notifications: [device name, iova, size]. */
  readonly calls: [string, bigint, bigint][] = [];
  /** Whether the drivers unpin what they hold when notified. */
  driverUnpins = true;
  /** The drivers' books: device name -> page iova -> pins held. */
  readonly books = new Map<string, Map<bigint, number>>();

  static async create(setup: 'E' | 'I' | 'X' | 'none', o: FixtureOptions = {}): Promise<Fixture> {
    const f = new Fixture();
    f.engine = await createReferenceEngine(o);
    f.proc = f.engine.createProcess({ memlockLimit: o.memlockLimit, capIpcLock: o.capIpcLock });
    f.cfd = f.proc.open('/dev/vfio/vfio');
    if (setup === 'none') return f;
    if (setup !== 'E') f.addGroup('G', 'iommu');
    if (setup !== 'I') f.addGroup('M', 'emulated');
    for (const name of Object.keys(f.groups)) f.attach(name);
    if (f.proc.ioctl(f.cfd, VFIO_SET_IOMMU, o.v1 ? VFIO_TYPE1_IOMMU : VFIO_TYPE1v2_IOMMU) !== 0) throw new Error('SET_IOMMU');
    for (const name of Object.keys(f.groups)) f.openDevice(name);
    return f;
  }

  addGroup(name: string, kind: 'iommu' | 'emulated', extra: object = {}): RefGroup {
    const g = this.engine.createGroup({ kind, devices: [`${name}-dev`], ...extra });
    this.groups[name] = g;
    g.devices[0].registerDmaUnmap((iova, size) => this.onUnmap(g.devices[0], iova, size));
    return g;
  }

  attach(name: string): number {
    const g = this.groups[name];
    if (this.gfds[name] === undefined) this.gfds[name] = this.proc.open(`/dev/vfio/${g.id}`);
    return this.proc.ioctl(this.gfds[name], VFIO_GROUP_SET_CONTAINER, this.cfd);
  }

  openDevice(name: string): number {
    const fd = this.proc.ioctl(this.gfds[name], VFIO_GROUP_GET_DEVICE_FD, `${name}-dev`);
    this.devFds[name] = fd;
    return fd;
  }

  dev(name: string): RefDevice {
    return this.groups[name].devices[0];
  }

  private onUnmap(d: RefDevice, iova: bigint, size: bigint): void {
    this.calls.push([d.name, iova, size]);
    const book = this.books.get(d.name);
    if (!this.driverUnpins || !book) return;
    for (const [page, n] of [...book]) {
      if (page < iova || page >= iova + size) continue;
      for (let i = 0; i < n; i++) this.UNPIN(d, page, 1);
    }
  }

  MAP(iova: bigint, size: bigint, flags = RW, vaddr?: bigint): number {
    const va = vaddr ?? this.proc.mmap(size > 0n && size < 1n << 40n ? size : 0x1000n);
    return this.proc.ioctl(this.cfd, VFIO_IOMMU_MAP_DMA, mapArg(flags, va, iova, size));
  }

  UNMAP(iova: bigint, size: bigint, flags = 0): { ret: number; size: bigint } {
    const b = unmapArg(flags, iova, size);
    const ret = this.proc.ioctl(this.cfd, VFIO_IOMMU_UNMAP_DMA, b);
    return { ret, size: rd64(b, 16) };
  }

  /** A user bitmap of n bytes pre-filled with `fill`. */
  bitmap(n: number, fill = 0): bigint {
    const a = this.proc.mmap(Math.max(n, 1));
    if (fill) this.proc.write(a, new Uint8Array(n).fill(fill));
    return a;
  }

  UMB(iova: bigint, size: bigint, nbytes: number, pgsize = 0x1000n): { ret: number; size: bigint; hex: string } {
    const data = this.bitmap(nbytes);
    const b = unmapArg(VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, iova, size, { pgsize, size: BigInt(nbytes), data });
    const ret = this.proc.ioctl(this.cfd, VFIO_IOMMU_UNMAP_DMA, b);
    return { ret, size: rd64(b, 16), hex: hex(this.proc.read(data, nbytes)) };
  }

  GET(iova: bigint, size: bigint, nbytes: number, o: { fill?: number; pgsize?: bigint; bsize?: bigint } = {}): { ret: number; hex: string } {
    const data = this.bitmap(nbytes, o.fill ?? 0);
    const b = dirtyArg(VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, {
      iova, size, pgsize: o.pgsize ?? 0x1000n, bsize: o.bsize ?? BigInt(nbytes), data,
    });
    const ret = this.proc.ioctl(this.cfd, VFIO_IOMMU_DIRTY_PAGES, b);
    return { ret, hex: hex(this.proc.read(data, nbytes)) };
  }

  START(): number {
    return this.proc.ioctl(this.cfd, VFIO_IOMMU_DIRTY_PAGES, dirtyArg(VFIO_IOMMU_DIRTY_PAGES_FLAG_START));
  }

  STOP(): number {
    return this.proc.ioctl(this.cfd, VFIO_IOMMU_DIRTY_PAGES, dirtyArg(VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP));
  }

  PIN(name: string, iova: bigint, n: number, prot = IOMMU_READ): number {
    const d = this.dev(name);
    const ret = d.pinPages(iova, n, prot);
    if (ret > 0) {
      const book = this.books.get(d.name) ?? new Map<bigint, number>();
      this.books.set(d.name, book);
      for (let i = 0; i < n; i++) book.set(iova + P(i), (book.get(iova + P(i)) ?? 0) + 1);
    }
    return ret;
  }

  UNPIN(d: RefDevice | string, iova: bigint, n: number): void {
    const dev = typeof d === 'string' ? this.dev(d) : d;
    dev.unpinPages(iova, n);
    const book = this.books.get(dev.name);
    if (!book) return;
    for (let i = 0; i < n; i++) {
      const c = book.get(iova + P(i));
      if (c === undefined) continue;
      if (c > 1) book.set(iova + P(i), c - 1);
      else book.delete(iova + P(i));
    }
  }

  RW(name: string, iova: bigint, len: number, write: boolean): number {
    return this.dev(name).dmaRw(iova, new Uint8Array(len).fill(0xcd), write);
  }
}

