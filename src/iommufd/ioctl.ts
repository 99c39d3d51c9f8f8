// The ioctls of an iommufd fd (docs/conformance.md §21.1): the framing every command shares (size
// first, min_size, zero trailing bytes, copy-in and write-back of min(size, struct size) bytes),
// then the decode of each struct and the call into its object's file.
import {
  E2BIG, EBUSY, EFAULT, EINVAL, EMSGSIZE, ENOENT, ENOMEM, ENOTTY, EOPNOTSUPP, EOVERFLOW,
} from '../../assembly/constants.js';
import type { IoctlArg } from '../file.js';
import type { Process } from '../process.js';
import { U64_MAX } from '../u64.js';
import { bytesArg } from '../vfio/device_feature.js';
import type { IommufdCtx } from './context.js';
import { hwptCreate, hwptDestroy, hwptGetDirty, hwptSetDirtyTracking } from './hwpt.js';
import { ioasAlloc, ioasClear, ioasIovaRanges, ioasMap, ioasUnmap } from './ioas.js';
import {
  IOMMU_DESTROY, IOMMU_GET_HW_INFO, IOMMU_HWPT_ALLOC, IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_ALLOC_PASID, IOMMU_HWPT_FAULT_ID_VALID,
  IOMMU_HWPT_GET_DIRTY_BITMAP, IOMMU_HWPT_SET_DIRTY_TRACKING, IOMMU_IOAS_ALLOC, IOMMU_IOAS_IOVA_RANGES,
  IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP, IOMMUFD_STRUCTS,
} from './uapi.js';

type Handler = (proc: Process, ctx: IommufdCtx, v: DataView, size: number) => number;

const handlers = new Map<number, Handler>([
  [IOMMU_DESTROY, destroy],
  [IOMMU_IOAS_ALLOC, (_p, ctx, v) => {
    const id = ioasAlloc(ctx, v.getUint32(4, true));
    if (id > 0) v.setUint32(8, id, true);
    return id < 0 ? id : 0;
  }],
  [IOMMU_IOAS_IOVA_RANGES, (p, ctx, v) => ioasIovaRanges(
    p, ctx, v.getUint32(4, true), v.getUint32(12, true), v.getUint32(8, true), v.getBigUint64(16, true),
    (total, align) => {
      v.setUint32(8, total, true);
      v.setBigUint64(24, align, true);
    },
  )],
  [IOMMU_IOAS_MAP, (p, ctx, v) => {
    const r = ioasMap(p, ctx, {
      flags: v.getUint32(4, true), ioasId: v.getUint32(8, true), reserved: v.getUint32(12, true),
      userVa: v.getBigUint64(16, true), length: v.getBigUint64(24, true), iova: v.getBigUint64(32, true),
    });
    if (typeof r === 'number') return r;
    v.setBigUint64(32, r, true);
    return 0;
  }],
  [IOMMU_IOAS_UNMAP, (_p, ctx, v) => {
    const r = ioasUnmap(ctx, v.getUint32(4, true), v.getBigUint64(8, true), v.getBigUint64(16, true));
    if (typeof r === 'number') return r;
    v.setBigUint64(16, r, true);
    return 0;
  }],
  [IOMMU_HWPT_ALLOC, hwptAlloc],
  [IOMMU_GET_HW_INFO, hwInfo],
  [IOMMU_HWPT_SET_DIRTY_TRACKING, (_p, ctx, v) => {
    if (v.getUint32(4, true) & ~1) return -EOPNOTSUPP;
    const h = ctx.get(v.getUint32(8, true), 'hwpt');
    if (!h) return -ENOENT;
    return hwptSetDirtyTracking(h, (v.getUint32(4, true) & 1) !== 0);
  }],
  [IOMMU_HWPT_GET_DIRTY_BITMAP, getDirtyBitmap],
]);

/** An ioctl on an iommufd fd: framing, then the command. */
export function iommufdIoctl(proc: Process, ctx: IommufdCtx, request: number, arg: IoctlArg): number {
  const sizes = IOMMUFD_STRUCTS.get(request);
  const handler = handlers.get(request);
  if (!sizes || !handler) return -ENOTTY;
  const b = bytesArg(arg);
  if (!b || b.length < 4) return -EFAULT;
  const [ssize, minSize] = sizes;
  const size = new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
  if (size < minSize) return -EINVAL;
  if (size > ssize) {
    if (b.length < size) return -EFAULT;
    for (let i = ssize; i < size; i++) if (b[i] !== 0) return -E2BIG;
  }
  const n = Math.min(size, ssize);
  if (b.length < n) return -EFAULT;
  const s = new Uint8Array(ssize);
  s.set(b.subarray(0, n));
  const r = handler(proc, ctx, new DataView(s.buffer), size);
  if (r >= 0 || r === -EMSGSIZE) b.set(s.subarray(0, n));
  return r;
}

/** IOMMU_DESTROY (docs/conformance.md §21.3). */
function destroy(_p: Process, ctx: IommufdCtx, v: DataView): number {
  const o = ctx.objects.get(v.getUint32(4, true));
  if (!o) return -ENOENT;
  if (o.type === 'device') return -EBUSY;
  if (o.type === 'ioas') {
    if (o.hwpts.length) return -EBUSY;
    ioasClear(o);
    ctx.objects.delete(o.id);
    return 0;
  }
  if (o.devices.size) return -EBUSY;
  hwptDestroy(o);
  return 0;
}

/** IOMMU_HWPT_ALLOC (docs/conformance.md §21.4). */
function hwptAlloc(_p: Process, ctx: IommufdCtx, v: DataView): number {
  const flags = v.getUint32(4, true);
  if (v.getUint32(20, true) !== 0) return -EOPNOTSUPP;
  const dataType = v.getUint32(24, true);
  const dataLen = v.getUint32(28, true);
  if ((dataType === 0) !== (dataLen === 0)) return -EINVAL;
  const dev = ctx.get(v.getUint32(8, true), 'device');
  if (!dev) return -ENOENT;
  const pt = ctx.objects.get(v.getUint32(12, true));
  if (!pt) return -EINVAL;
  if (pt.type === 'hwpt') return -EOPNOTSUPP;
  if (pt.type !== 'ioas') return -EINVAL;
  if (flags & ~0xf) return -EOPNOTSUPP;
  const g = dev.dev.group;
  const dirty = (flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING) !== 0;
  if (dirty && !g.iommuDirtyTracking) return -EOPNOTSUPP;
  if (flags & (IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_PASID) || dataType !== 0) return -EOPNOTSUPP;
  const h = hwptCreate(ctx, pt, g, dirty, false, (flags & IOMMU_HWPT_FAULT_ID_VALID) !== 0);
  if (typeof h === 'number') return h;
  v.setUint32(16, h.id, true);
  return 0;
}

/** IOMMU_GET_HW_INFO (docs/conformance.md §21.4). */
function hwInfo(proc: Process, ctx: IommufdCtx, v: DataView): number {
  if (v.getUint32(4, true) & ~1) return -EOPNOTSUPP;
  if (v.getUint8(29) || v.getUint8(30) || v.getUint8(31)) return -EOPNOTSUPP;
  const dev = ctx.get(v.getUint32(8, true), 'device');
  if (!dev) return -ENOENT;
  const len = v.getUint32(12, true);
  const ptr = v.getBigUint64(16, true);
  if (len > 0) {
    if (!proc.isMapped(ptr, BigInt(len))) return -EFAULT;
    if (proc.um.write(ptr, new Uint8Array(len)) < 0) return -ENOMEM;
  }
  v.setUint32(12, 0, true);
  v.setUint32(24, 0, true);
  v.setUint8(28, 0);
  v.setBigUint64(32, dev.dev.group.iommuDirtyTracking ? 1n : 0n, true);
  return 0;
}

/** IOMMU_HWPT_GET_DIRTY_BITMAP (docs/conformance.md §21.4); nothing is written back. */
function getDirtyBitmap(proc: Process, ctx: IommufdCtx, v: DataView): number {
  const flags = v.getUint32(8, true);
  if ((flags & ~1) || v.getUint32(12, true) !== 0) return -EOPNOTSUPP;
  const h = ctx.get(v.getUint32(4, true), 'hwpt');
  if (!h) return -ENOENT;
  const iova = v.getBigUint64(16, true);
  const length = v.getBigUint64(24, true);
  const ps = v.getBigUint64(32, true);
  const last = iova + ((length - 1n) & U64_MAX);
  if (last > U64_MAX) return -EOVERFLOW;
  const end = (last + 1n) & U64_MAX;
  const align = h.ioas.iopt.alignment;
  if (iova % align || end % align) return -EINVAL;
  if (ps === 0n || iova % ps || end % ps || (ps & (ps - 1n))) return -EINVAL;
  const pshift = ps.toString(2).length - 1;
  return hwptGetDirty(proc, h, iova, last, length === 0n ? 1n << 64n : length, pshift, v.getBigUint64(40, true), (flags & 1) !== 0);
}
