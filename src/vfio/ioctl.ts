// The ioctl syscall: decodes the kernel's structs (LP64, little-endian, argsz first), applies the
// ioctl-level checks in the kernel's order, calls the shared implementation, and writes back
// exactly the bytes the kernel copies back (docs/conformance.md §3.4). A buffer shorter than what
// the kernel would read or write is EFAULT.
import {
  EBADF, EBADFD, EFAULT, EINVAL, ENODEV, ENOTTY,
} from '../../assembly/constants.js';
import { Container } from './container.js';
import { dirtyGet, dirtyStart, dirtyStop, userSink } from './dirty.js';
import { uapi } from '../uapi.js';
import { mapDma, rethrowCallbackErrors, unmapDma } from './dma_map.js';
import { dirtyPagesRefusal, dirtyReadGate, userBitmapRefusal, type UserBitmap } from './range_gate.js';
import type { Group } from './group.js';
import { buildInfo } from './info.js';
import type { Process } from '../process.js';
import type { IoctlArg } from '../file.js';
import { DeviceFile } from './device_file.js';
import type { ContainerFile } from './files.js';
import type { Type1 } from './type1.js';
import { pasidRequest } from '../ioasid/vfio_pasid.js';

const {
  VFIO_GET_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU, VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER, VFIO_GROUP_UNSET_CONTAINER, VFIO_GROUP_GET_DEVICE_FD,
  VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_IOMMU_DIRTY_PAGES, VFIO_IOMMU_PASID_REQUEST,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_START: DIRTY_START, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP: DIRTY_STOP,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP: DIRTY_GET_BITMAP,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, VFIO_DMA_UNMAP_FLAG_ALL, VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_GROUP_FLAGS_VIABLE, VFIO_GROUP_FLAGS_CONTAINER_SET, VFIO_IOMMU_INFO_PGSIZES, VFIO_IOMMU_INFO_CAPS,
  IOMMU_INFO_SIZE, IOMMU_INFO_MINSZ, DMA_MAP_SIZE, DMA_UNMAP_SIZE, DMA_UNMAP_BITMAP_SIZE, DIRTY_BITMAP_SIZE,
  DIRTY_BITMAP_GET_BODY_SIZE, DIRTY_BITMAP_GET_SIZE, GROUP_STATUS_SIZE,
} = uapi;

type Arg = IoctlArg;

/** The struct argument, or null for a missing pointer (the kernel faults on NULL). */
function structArg(arg: Arg): Uint8Array | null {
  if (arg === undefined || arg === null) return null;
  if (!(arg instanceof Uint8Array)) throw new TypeError('this ioctl takes its struct as a Uint8Array');
  return arg;
}

/**
 * The integer argument of an ioctl as the kernel's `unsigned long arg` (CHECK_EXTENSION,
 * SET_IOMMU): a number and a bigint of the same value read alike, modulo 2^64, so -1 is 2^64 - 1
 * and 2^32 + 3 is not 3. Throws TypeError for anything but an integer.
 */
export function ulongArg(arg: Arg): bigint {
  if (typeof arg === 'number' && Number.isInteger(arg)) return BigInt.asUintN(64, BigInt(arg));
  if (typeof arg === 'bigint') return BigInt.asUintN(64, arg);
  throw new TypeError('this ioctl takes an integer argument (a number or a bigint)');
}

/**
 * An IOMMU type or extension number for the container's switch: exact below 2^53, and a value
 * above that (which loses low bits as a number) stays far above every type the switch knows.
 */
function typeArg(arg: Arg): number {
  return Number(ulongArg(arg));
}

/** The `__s32` fd that VFIO_GROUP_SET_CONTAINER reads: a number and a bigint read alike. */
function fdArg(arg: Arg): number {
  return Number(BigInt.asIntN(32, ulongArg(arg)));
}

// Tools issue the same argument buffer call after call: the DataView of the last one is kept
// (making one costs about a third of a small GET_BITMAP) and used again only while the array has
// the length it was made for. An array's buffer and offset never change, but a Uint8Array on a
// resizable ArrayBuffer changes length with it (or drops to 0 out of bounds), so a resize makes a
// new view. Callers check the length they need first: no view is made on a too-short array.
let lastArr: Uint8Array | null = null;
let lastLength = 0;
let lastView: DataView | null = null;

function view(b: Uint8Array): DataView {
  if (b !== lastArr || b.byteLength !== lastLength) {
    lastView = new DataView(b.buffer, b.byteOffset, b.byteLength);
    lastArr = b;
    lastLength = b.byteLength;
  }
  return lastView!;
}

/** An ioctl on a container fd. */
export function containerIoctl(proc: Process, c: Container, request: number, arg: Arg): number {
  switch (request) {
    case VFIO_GET_API_VERSION:
      return 0;
    case VFIO_CHECK_EXTENSION:
      return c.checkExtension(typeArg(arg));
    case VFIO_SET_IOMMU:
      return c.setIommu(typeArg(arg), proc);
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
  if (!b || b.length < IOMMU_INFO_MINSZ) return -EFAULT;
  const v = view(b);
  const argsz = v.getUint32(0, true);
  if (argsz < IOMMU_INFO_MINSZ) return -EINVAL;
  const caps = buildInfo(t);
  const full = IOMMU_INFO_SIZE + caps.length;
  let outArgsz = argsz;
  let capOffset = 0;
  if (argsz < full) {
    outArgsz = full;
  } else {
    if (b.length < full) return -EFAULT;
    b.set(caps, IOMMU_INFO_SIZE);
    capOffset = IOMMU_INFO_SIZE;
  }
  const n = Math.min(argsz, IOMMU_INFO_SIZE);
  if (b.length < n) return -EFAULT;
  const fixed = new Uint8Array(IOMMU_INFO_SIZE);
  const f = view(fixed);
  f.setUint32(0, outArgsz, true);
  f.setUint32(4, VFIO_IOMMU_INFO_PGSIZES | (caps.length ? VFIO_IOMMU_INFO_CAPS : 0), true);
  f.setBigUint64(8, t.pgsizeBitmap, true);
  f.setUint32(16, capOffset, true);
  b.set(fixed.subarray(0, n), 0);
  return 0;
}

function mapIoctl(proc: Process, t: Type1, b: Uint8Array | null): number {
  if (!b || b.length < DMA_MAP_SIZE) return -EFAULT;
  const v = view(b);
  const argsz = v.getUint32(0, true);
  const flags = v.getUint32(4, true);
  if (argsz < DMA_MAP_SIZE || (flags & ~7) !== 0) return -EINVAL;
  return mapDma(t, proc, flags, v.getBigUint64(8, true), v.getBigUint64(16, true), v.getBigUint64(24, true));
}

function unmapIoctl(proc: Process, t: Type1, b: Uint8Array | null): number {
  if (!b || b.length < DMA_UNMAP_SIZE) return -EFAULT;
  const v = view(b);
  const argsz = v.getUint32(0, true);
  const flags = v.getUint32(4, true);
  if (argsz < DMA_UNMAP_SIZE || (flags & ~7) !== 0) return -EINVAL;
  const withBitmap = (flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) !== 0;
  if (withBitmap && (flags & (VFIO_DMA_UNMAP_FLAG_ALL | VFIO_DMA_UNMAP_FLAG_VADDR)) !== 0) return -EINVAL;
  const iova = v.getBigUint64(8, true);
  const size = v.getBigUint64(16, true);
  let bm: UserBitmap | null = null;
  if (withBitmap) {
    if (argsz < DMA_UNMAP_BITMAP_SIZE) return -EINVAL;
    if (b.length < DMA_UNMAP_BITMAP_SIZE) return -EFAULT;
    bm = { pgsize: v.getBigUint64(24, true), size: v.getBigUint64(32, true), data: v.getBigUint64(40, true) };
    const bad = userBitmapRefusal(t, size, bm);
    if (bad) return -bad.errno;
  }
  const r = unmapDma(t, flags, iova, size, bm?.pgsize ?? 0n, bm && userSink(t, proc, iova, bm));
  // The 24-byte copy-back (only size differs from what was read), then what callbacks threw.
  if (r.ret === 0) v.setBigUint64(16, r.size, true);
  rethrowCallbackErrors(r);
  return r.ret;
}

function dirtyIoctl(proc: Process, t: Type1, b: Uint8Array | null): number {
  const v1 = dirtyPagesRefusal(t); // before the struct is read, as the kernel does
  if (v1) return -v1.errno;
  if (!b || b.length < DIRTY_BITMAP_SIZE) return -EFAULT;
  const v = view(b);
  const argsz = v.getUint32(0, true);
  const flags = v.getUint32(4, true);
  if (argsz < DIRTY_BITMAP_SIZE || (flags & ~7) !== 0) return -EINVAL;
  if (flags !== DIRTY_START && flags !== DIRTY_STOP && flags !== DIRTY_GET_BITMAP) return -EINVAL;
  if (flags === DIRTY_START) return dirtyStart(t);
  if (flags === DIRTY_STOP) return dirtyStop(t);
  if (argsz - DIRTY_BITMAP_SIZE < DIRTY_BITMAP_GET_BODY_SIZE) return -EINVAL;
  if (b.length < DIRTY_BITMAP_GET_SIZE) return -EFAULT;
  const iova = v.getBigUint64(8, true);
  const size = v.getBigUint64(16, true);
  const bitmap = { pgsize: v.getBigUint64(24, true), size: v.getBigUint64(32, true), data: v.getBigUint64(40, true) };
  const bad = dirtyReadGate(t, { iova, size, bitmap, partial: false });
  if (bad) return -bad.errno;
  return dirtyGet(t, proc, iova, iova + size - 1n, bitmap);
}

/** An ioctl on a group fd. */
export function groupIoctl(proc: Process, g: Group, request: number, arg: Arg): number {
  switch (request) {
    case VFIO_GROUP_GET_STATUS: {
      const b = structArg(arg);
      if (!b || b.length < GROUP_STATUS_SIZE) return -EFAULT;
      const v = view(b);
      if (v.getUint32(0, true) < GROUP_STATUS_SIZE) return -EINVAL;
      const viable = g.container || g.viable ? VFIO_GROUP_FLAGS_VIABLE : 0;
      v.setUint32(4, viable | (g.container ? VFIO_GROUP_FLAGS_CONTAINER_SET : 0), true);
      return 0;
    }
    case VFIO_GROUP_SET_CONTAINER: {
      const target = proc.fds.get(fdArg(arg));
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
