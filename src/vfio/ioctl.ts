// The ioctl syscall: decodes the kernel's structs (LP64, little-endian, argsz first), applies the
// ioctl-level checks in the kernel's order, calls the shared implementation, and writes back
// exactly the bytes the kernel copies back (SPEC §1). A buffer shorter than what the kernel would
// read or write is EFAULT.
import {
  EACCES, EBADF, EBADFD, EFAULT, EINVAL, ENODEV, ENOTTY,
} from '../../assembly/constants.js';
import { Container } from './container.js';
import { dirtyGet, dirtyStart, dirtyStop, userSink } from './dirty.js';
import { uapi } from '../uapi.js';
import { mapDma, rethrowCallbackErrors, unmapDma, type UserBitmap } from './dma_map.js';
import type { Group } from './group.js';
import { buildInfo } from './info.js';
import type { Process } from '../process.js';
import type { IoctlArg } from '../file.js';
import { DeviceFile } from './device_file.js';
import type { ContainerFile } from './files.js';
import type { Type1 } from './type1.js';
import { ctz64, U64_MAX, userRangeOk } from '../u64.js';
import { pasidRequest } from '../ioasid/vfio_pasid.js';

const {
  VFIO_GET_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU, VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER, VFIO_GROUP_UNSET_CONTAINER, VFIO_GROUP_GET_DEVICE_FD,
  VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_IOMMU_DIRTY_PAGES, VFIO_IOMMU_PASID_REQUEST,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_START: DIRTY_START, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP: DIRTY_STOP,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP: DIRTY_GET_BITMAP, DIRTY_BITMAP_SIZE_MAX,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, VFIO_DMA_UNMAP_FLAG_ALL, VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_GROUP_FLAGS_VIABLE, VFIO_GROUP_FLAGS_CONTAINER_SET, VFIO_IOMMU_INFO_PGSIZES, VFIO_IOMMU_INFO_CAPS,
} = uapi;

type Arg = IoctlArg;

/** The struct argument, or null for a missing pointer (the kernel faults on NULL). */
function structArg(arg: Arg): Uint8Array | null {
  if (arg === undefined || arg === null) return null;
  if (!(arg instanceof Uint8Array)) throw new TypeError('this ioctl takes its struct as a Uint8Array');
  return arg;
}

function numberArg(arg: Arg): number {
  if (typeof arg === 'bigint') return Number(BigInt.asIntN(32, arg));
  if (typeof arg !== 'number' || !Number.isInteger(arg)) throw new TypeError('this ioctl takes an integer argument');
  return arg;
}

// Tools issue the same argument buffer call after call: keep the DataView of the last one.
let lastBuf: Uint8Array | null = null;
let lastView: DataView | null = null;

function view(b: Uint8Array): DataView {
  if (b !== lastBuf || lastView!.buffer !== b.buffer) {
    lastView = new DataView(b.buffer, b.byteOffset, b.byteLength);
    lastBuf = b;
  }
  return lastView!;
}

/** verify_bitmap_size: the user bitmap holds npages bits and stays within DIRTY_BITMAP_SIZE_MAX. */
function bitmapSizeOk(npages: bigint, bytes: bigint): boolean {
  if (npages === 0n || bytes === 0n || bytes > DIRTY_BITMAP_SIZE_MAX) return false;
  return ((npages + 63n) >> 6n) << 3n <= bytes;
}

/** The user bitmap checks shared by unmap-with-bitmap and GET_BITMAP: 0 or -EINVAL. */
function checkUserBitmap(size: bigint, bm: UserBitmap): number {
  if (!userRangeOk(bm.data, bm.size)) return -EINVAL;
  if (bm.pgsize === 0n) return -EINVAL; // ctz of 0 is undefined in the kernel; refused here
  return bitmapSizeOk(size >> BigInt(ctz64(bm.pgsize)), bm.size) ? 0 : -EINVAL;
}

/** An ioctl on a container fd. */
export function containerIoctl(proc: Process, c: Container, request: number, arg: Arg): number {
  switch (request) {
    case VFIO_GET_API_VERSION:
      return 0;
    case VFIO_CHECK_EXTENSION:
      return c.checkExtension(numberArg(arg));
    case VFIO_SET_IOMMU:
      return c.setIommu(numberArg(arg), proc);
  }
  const t = c.iommu;
  if (!t) return -EINVAL;
  switch (request) {
    case VFIO_IOMMU_GET_INFO:
      return getInfo(t, structArg(arg));
    case VFIO_IOMMU_MAP_DMA:
      return mapIoctl(proc, t, structArg(arg));
    case VFIO_IOMMU_UNMAP_DMA:
      return unmapIoctl(proc, t, structArg(arg));
    case VFIO_IOMMU_DIRTY_PAGES:
      return dirtyIoctl(proc, t, structArg(arg));
    case VFIO_IOMMU_PASID_REQUEST:
      return pasidRequest(c, structArg(arg));
    default:
      return -ENOTTY;
  }
}

function getInfo(t: Type1, b: Uint8Array | null): number {
  if (!b || b.length < 16) return -EFAULT;
  const v = view(b);
  const argsz = v.getUint32(0, true);
  if (argsz < 16) return -EINVAL;
  const caps = buildInfo(t);
  let outArgsz = argsz;
  let capOffset = 0;
  if (argsz < 24 + caps.length) {
    outArgsz = 24 + caps.length;
  } else {
    if (b.length < 24 + caps.length) return -EFAULT;
    b.set(caps, 24);
    capOffset = 24;
  }
  const n = Math.min(argsz, 24);
  if (b.length < n) return -EFAULT;
  const fixed = new Uint8Array(24);
  const f = view(fixed);
  f.setUint32(0, outArgsz, true);
  f.setUint32(4, VFIO_IOMMU_INFO_PGSIZES | (caps.length ? VFIO_IOMMU_INFO_CAPS : 0), true);
  f.setBigUint64(8, t.pgsizeBitmap, true);
  f.setUint32(16, capOffset, true);
  b.set(fixed.subarray(0, n), 0);
  return 0;
}

function mapIoctl(proc: Process, t: Type1, b: Uint8Array | null): number {
  if (!b || b.length < 32) return -EFAULT;
  const v = view(b);
  const argsz = v.getUint32(0, true);
  const flags = v.getUint32(4, true);
  if (argsz < 32 || (flags & ~7) !== 0) return -EINVAL;
  return mapDma(t, proc, flags, v.getBigUint64(8, true), v.getBigUint64(16, true), v.getBigUint64(24, true));
}

function unmapIoctl(proc: Process, t: Type1, b: Uint8Array | null): number {
  if (!b || b.length < 24) return -EFAULT;
  const v = view(b);
  const argsz = v.getUint32(0, true);
  const flags = v.getUint32(4, true);
  if (argsz < 24 || (flags & ~7) !== 0) return -EINVAL;
  const withBitmap = (flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) !== 0;
  if (withBitmap && (flags & (VFIO_DMA_UNMAP_FLAG_ALL | VFIO_DMA_UNMAP_FLAG_VADDR)) !== 0) return -EINVAL;
  const iova = v.getBigUint64(8, true);
  const size = v.getBigUint64(16, true);
  let bm: UserBitmap | null = null;
  if (withBitmap) {
    if (argsz < 48) return -EINVAL;
    if (b.length < 48) return -EFAULT;
    bm = { pgsize: v.getBigUint64(24, true), size: v.getBigUint64(32, true), data: v.getBigUint64(40, true) };
    const r = checkUserBitmap(size, bm);
    if (r < 0) return r;
  }
  const r = unmapDma(t, flags, iova, size, bm?.pgsize ?? 0n, bm && userSink(t, proc, iova, bm));
  // The 24-byte copy-back (only size differs from what was read), then what callbacks threw.
  if (r.ret === 0) v.setBigUint64(16, r.size, true);
  rethrowCallbackErrors(r);
  return r.ret;
}

function dirtyIoctl(proc: Process, t: Type1, b: Uint8Array | null): number {
  if (!t.v2) return -EACCES;
  if (!b || b.length < 8) return -EFAULT;
  const v = view(b);
  const argsz = v.getUint32(0, true);
  const flags = v.getUint32(4, true);
  if (argsz < 8 || (flags & ~7) !== 0) return -EINVAL;
  if (flags !== DIRTY_START && flags !== DIRTY_STOP && flags !== DIRTY_GET_BITMAP) return -EINVAL;
  if (flags === DIRTY_START) return dirtyStart(t);
  if (flags === DIRTY_STOP) return dirtyStop(t);
  if (argsz - 8 < 40) return -EINVAL;
  if (b.length < 48) return -EFAULT;
  const iova = v.getBigUint64(8, true);
  const size = v.getBigUint64(16, true);
  const p = t.profile;
  if (p.topEndUsable) {
    if (size === 0n) return -EINVAL;
    if (iova + size - 1n > U64_MAX) return -p.overflow;
  } else if (iova + size > U64_MAX) {
    return -EINVAL; // before v6.18 a range ending exactly at 2^64 wraps here too
  }
  // Every check left fails with EINVAL, so their order cannot be observed: cheapest first. A
  // bitmap.pgsize equal to the container's also settles the kernel's ctz(bitmap.pgsize).
  if (!t.tracking || v.getBigUint64(24, true) !== t.pgsize) return -EINVAL;
  if (((iova | size) & (t.pgsize - 1n)) !== 0n) return -EINVAL;
  const bytes = v.getBigUint64(32, true);
  const data = v.getBigUint64(40, true);
  if (!userRangeOk(data, bytes) || !bitmapSizeOk(size >> t.pgshiftBig, bytes)) return -EINVAL;
  return dirtyGet(t, proc, iova, iova + size - 1n, { pgsize: t.pgsize, size: bytes, data });
}

/** An ioctl on a group fd. */
export function groupIoctl(proc: Process, g: Group, request: number, arg: Arg): number {
  switch (request) {
    case VFIO_GROUP_GET_STATUS: {
      const b = structArg(arg);
      if (!b || b.length < 8) return -EFAULT;
      const v = view(b);
      if (v.getUint32(0, true) < 8) return -EINVAL;
      const viable = g.container || g.viable ? VFIO_GROUP_FLAGS_VIABLE : 0;
      v.setUint32(4, viable | (g.container ? VFIO_GROUP_FLAGS_CONTAINER_SET : 0), true);
      return 0;
    }
    case VFIO_GROUP_SET_CONTAINER: {
      const target = proc.fds.get(numberArg(arg));
      if (!target) return -EBADF;
      if (g.container) return -EINVAL;
      if (target.kind !== 'vfio-container') return -EBADFD;
      return (target as ContainerFile).container.addGroup(g, proc);
    }
    case VFIO_GROUP_UNSET_CONTAINER:
      return Container.unsetContainer(g);
    case VFIO_GROUP_GET_DEVICE_FD: {
      if (typeof arg !== 'string') throw new TypeError('VFIO_GROUP_GET_DEVICE_FD takes the device name');
      const dev = g.device(arg);
      if (!dev) return -ENODEV;
      if (!g.container || !g.container.iommu) return -EINVAL;
      const file = g.file!;
      const was = dev.participating;
      dev.openCount++;
      file.deviceFds++;
      if (!was && dev.participating) dev.joinSeq = proc.engine.nextSeq();
      return proc.allocFd(new DeviceFile(dev, file));
    }
    default:
      return -ENOTTY;
  }
}
