// A type1 container of a remote engine, driven as a VMM drives /dev/vfio/vfio: every method is
// an ioctl carrying the kernel's struct bytes (LP64, little-endian, argsz first). The harvest is
// GET_BITMAP into a buffer in the process's memory, then brought over straight into the local
// bitmap by the process's readInto (one SHM_FROM_MEM and one read of the shared file, or READ_MEM
// in 16 MiB pieces when the process has no shared file large enough). Attach opens the group in
// the process and detach closes it again.
import type { DirtyBitmap } from '../core/dirty_bitmap.js';
import { vfioError } from '../errors.js';
import type { SimContainer, SimGroup } from '../sim/sim_engine.js';
import { PAGE_SIZE } from '../u64.js';
import { uapi } from '../uapi.js';
import type { Core } from '../wasm.js';
import type { RemoteDevice, RemoteProcess } from './remote_engine.js';
import type { SyncClient } from './sync_client.js';

/** A struct buffer of `size` bytes with argsz and flags set, and its little-endian view. */
function struct(size: number, flags: number): [Uint8Array, DataView] {
  const b = new Uint8Array(size);
  const v = new DataView(b.buffer);
  v.setUint32(0, size, true);
  v.setUint32(4, flags, true);
  return [b, v];
}

/** A container fd in a remote process. */
export class RemoteContainer implements SimContainer {
  /** The smallest IOMMU page size (from GET_INFO once an IOMMU is set). */
  pgsize = PAGE_SIZE;
  readonly fd: number;
  private readonly c: SyncClient;
  private readonly groupFds = new Map<number, number>();
  /**
   * GET_BITMAP's buffers in process memory, one per range (`iova:size`), reused: the kernel
   * rewrites every word a read of that range touches, and leaves the rest as it found it (zero).
   */
  private readonly bitmapBufs = new Map<string, bigint>();

  readonly dirty = {
    start: (): void => this.dirtyPages(uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START, 'dirty.start'),
    stop: (): void => this.dirtyPages(uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP, 'dirty.stop'),
    /** The server gates the range when GET_BITMAP runs (collect throws its errno); partial reads are local-only. */
    check: (_iova: bigint, _size: bigint, opts: { partial: boolean; op?: string }): void => {
      if (opts.partial) throw new RangeError(`${opts.op ?? 'read'}: partial reads are not served by a remote engine`);
    },
    collect: (iova: bigint, size: bigint, target: DirtyBitmap, targetBit: number, opts: { clear: boolean; op?: string }): void => {
      if (!opts.clear || targetBit !== 0) throw new RangeError(`${opts.op ?? 'read'}: a remote engine reads with GET_BITMAP only (clear, whole bitmap)`);
      this.getBitmap(iova, size, target, opts.op ?? 'collect');
    },
  };

  /** Opens /dev/vfio/vfio in `proc`; `core` holds the bitmaps reports are read into. */
  constructor(private readonly proc: RemoteProcess, readonly core: Core) {
    this.c = proc.client;
    const fd = this.c.open('/dev/vfio/vfio');
    if (fd < 0) throw vfioError(fd, 'openContainer');
    this.fd = fd;
  }

  private check(r: number, op: string): number {
    if (r < 0) throw vfioError(r, op);
    return r;
  }

  /** Opens the group in the process and sets this container on it; the process then holds it. */
  attach(group: SimGroup): void {
    const gfd = this.check(this.c.open(`/dev/vfio/${group.id}`), 'attach');
    this.proc.fds.push(gfd);
    this.groupFds.set(group.id, gfd);
    this.check(this.c.ioctl(gfd, uapi.VFIO_GROUP_SET_CONTAINER, this.fd), 'attach');
    for (const d of group.devices as readonly RemoteDevice[]) d.holder = this.proc;
  }

  /** VFIO_GROUP_UNSET_CONTAINER, then the group fd attach opened is closed (the group is let go). */
  detach(group: SimGroup): void {
    const gfd = this.attachedGroupFd(group);
    this.check(this.c.ioctl(gfd, uapi.VFIO_GROUP_UNSET_CONTAINER), 'detach');
    this.groupFds.delete(group.id);
    this.check(this.proc.kvm.close(gfd), 'detach');
  }

  /** The fd attach opened for `group` in the process. */
  attachedGroupFd(group: SimGroup): number {
    const gfd = this.groupFds.get(group.id);
    if (gfd === undefined) throw vfioError(-22, 'attachedGroupFd', undefined, 'the group is not attached to this container');
    return gfd;
  }

  /** VFIO_SET_IOMMU, then GET_INFO for the page size. */
  setIommu(type: 'type1v2' | 'type1'): void {
    this.check(this.c.ioctl(this.fd, uapi.VFIO_SET_IOMMU, type === 'type1v2' ? uapi.VFIO_TYPE1v2_IOMMU : uapi.VFIO_TYPE1_IOMMU), 'setIommu');
    const [b, v] = struct(uapi.IOMMU_INFO_SIZE, 0);
    this.check(this.c.ioctl(this.fd, uapi.VFIO_IOMMU_GET_INFO, b), 'info');
    const sizes = v.getBigUint64(8, true);
    this.pgsize = sizes & -sizes;
  }

  /** VFIO_GROUP_GET_DEVICE_FD: the device fd. */
  openDevice(group: SimGroup, name?: string): number {
    const gfd = this.groupFds.get(group.id);
    if (gfd === undefined) throw vfioError(-22, 'openDevice', undefined, 'the group is not attached to this container');
    const fd = this.check(this.c.ioctl(gfd, uapi.VFIO_GROUP_GET_DEVICE_FD, name ?? (group.devices[0] as RemoteDevice).name), 'openDevice');
    this.proc.fds.push(fd);
    return fd;
  }

  /** VFIO_IOMMU_MAP_DMA. */
  map(m: { iova: bigint; vaddr: bigint; size: bigint; read?: boolean; write?: boolean }): void {
    const flags = (m.read ?? true ? uapi.VFIO_DMA_MAP_FLAG_READ : 0) | (m.write ?? true ? uapi.VFIO_DMA_MAP_FLAG_WRITE : 0);
    const [b, v] = struct(uapi.DMA_MAP_SIZE, flags);
    v.setBigUint64(8, m.vaddr, true);
    v.setBigUint64(16, m.iova, true);
    v.setBigUint64(24, m.size, true);
    this.check(this.c.ioctl(this.fd, uapi.VFIO_IOMMU_MAP_DMA, b), 'map');
  }

  private unmapWith(op: string, flags: number, iova: bigint, size: bigint): bigint {
    const [b, v] = struct(uapi.DMA_UNMAP_SIZE, flags);
    v.setBigUint64(8, iova, true);
    v.setBigUint64(16, size, true);
    this.check(this.c.ioctl(this.fd, uapi.VFIO_IOMMU_UNMAP_DMA, b), op);
    return v.getBigUint64(16, true);
  }

  /** VFIO_IOMMU_UNMAP_DMA: the bytes unmapped. */
  unmap(m: { iova: bigint; size: bigint }): bigint {
    return this.unmapWith('unmap', 0, m.iova, m.size);
  }

  /** VFIO_IOMMU_UNMAP_DMA with ALL: the bytes unmapped. */
  unmapAll(): bigint {
    return this.unmapWith('unmapAll', uapi.VFIO_DMA_UNMAP_FLAG_ALL, 0n, 0n);
  }

  private dirtyPages(flags: number, op: string): void {
    this.check(this.c.ioctl(this.fd, uapi.VFIO_IOMMU_DIRTY_PAGES, struct(uapi.DIRTY_BITMAP_SIZE, flags)[0]), op);
  }

  /** GET_BITMAP of [iova, iova + size) into `target` (bit 0 = iova). */
  private getBitmap(iova: bigint, size: bigint, target: DirtyBitmap, op: string): void {
    const bytes = BigInt(Math.ceil(target.nbits / 64) * 8);
    const buf = this.buffer(iova, size, bytes);
    const [b, v] = struct(uapi.DIRTY_BITMAP_GET_SIZE, uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP);
    v.setBigUint64(8, iova, true);
    v.setBigUint64(16, size, true);
    v.setBigUint64(24, this.pgsize, true);
    v.setBigUint64(32, bytes, true);
    v.setBigUint64(40, buf, true);
    const r = this.c.ioctl(this.fd, uapi.VFIO_IOMMU_DIRTY_PAGES, b);
    if (r < 0) throw vfioError(r, op, { start: iova, length: size });
    this.proc.kvm.readInto(buf, target.wordAddress(0), Number(bytes), op);
  }

  /**
   * The process address of the GET_BITMAP buffer for a range: mapped (zeroed) the first time the
   * range is read and kept, since anonymous memory is not unmapped before the process exits.
   */
  private buffer(iova: bigint, size: bigint, bytes: bigint): bigint {
    const key = `${iova}:${size}`;
    let addr = this.bitmapBufs.get(key);
    if (addr === undefined) {
      addr = this.c.mmap((bytes + PAGE_SIZE - 1n) & ~(PAGE_SIZE - 1n));
      if (addr < 0n) throw vfioError(Number(addr), 'mmap');
      this.bitmapBufs.set(key, addr);
    }
    return addr;
  }

  /** Closes the container fd; the buffer goes with the process. */
  close(): void {
    this.check(this.c.close(this.fd), 'close');
  }
}
