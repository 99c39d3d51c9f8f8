// An IOAS (I/O address space) and its commands after framing (docs/conformance.md §21.3):
// IOAS_ALLOC, IOAS_MAP, IOAS_UNMAP, IOVA_RANGES.
import {
  EEXIST, EFAULT, EINVAL, EMSGSIZE, ENOENT, ENOMEM, ENOSPC, EOPNOTSUPP, EOVERFLOW,
} from '../../assembly/constants.js';
import type { Process } from '../process.js';
import { PAGE_SIZE, U64_MAX } from '../u64.js';
import type { IommufdCtx } from './context.js';
import { hwptMapArea, hwptUnmapArea, type Hwpt } from './hwpt.js';
import { IoPagetable, type Area } from './io_pagetable.js';
import { IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE } from './uapi.js';

export class Ioas {
  readonly type = 'ioas';
  readonly id: number;
  readonly iopt = new IoPagetable();
  /** HWPTs on this IOAS, in creation order (the kernel's hwpt_list). */
  readonly hwpts: Hwpt[] = [];

  constructor(id: number) {
    this.id = id;
  }
}

/** IOAS_ALLOC: the new IOAS's id, or -EOPNOTSUPP for flags. */
export function ioasAlloc(ctx: IommufdCtx, flags: number): number {
  if (flags !== 0) return -EOPNOTSUPP;
  const ioas = new Ioas(ctx.allocId());
  ctx.objects.set(ioas.id, ioas);
  return ioas.id;
}

/** A decoded IOAS_MAP. */
export interface MapArgs {
  flags: number;
  ioasId: number;
  reserved: number;
  userVa: bigint;
  length: bigint;
  iova: bigint;
}

/** The smallest power of two ≥ v (v ≥ 1). */
function roundUpPow2(v: bigint): bigint {
  let p = 1n;
  while (p < v) p <<= 1n;
  return p;
}

/**
 * IOAS_MAP, checks in the order of docs/conformance.md §21.3: the area's IOVA, or -errno with
 * nothing changed.
 */
export function ioasMap(proc: Process, ctx: IommufdCtx, m: MapArgs): bigint | number {
  if ((m.flags & ~7) !== 0 || m.reserved !== 0) return -EOPNOTSUPP;
  if (m.iova >= U64_MAX || m.length >= U64_MAX) return -EOVERFLOW;
  if (!(m.flags & (IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE))) return -EINVAL;
  const ioas = ctx.get(m.ioasId, 'ioas');
  if (!ioas) return -ENOENT;
  if (m.userVa + m.length > U64_MAX) return -EOVERFLOW;
  if (m.length === 0n || m.length > U64_MAX - PAGE_SIZE) return -EINVAL;
  const iopt = ioas.iopt;
  if (m.length % iopt.alignment !== 0n) return -EINVAL;
  let iova = m.iova;
  if (m.flags & IOMMU_IOAS_MAP_FIXED_IOVA) {
    if (iova % iopt.alignment !== 0n) return -EINVAL;
    if (iova + m.length - 1n > U64_MAX) return -EOVERFLOW;
    const last = iova + m.length - 1n;
    if (iopt.reservedMeets(iova, last)) return -EINVAL;
    if (iopt.areasIn(iova, last).length) return -EEXIST;
  } else {
    if (m.length >= (1n << 63n) - 1n) return -EOVERFLOW;
    let a = roundUpPow2(m.length);
    if (m.userVa !== 0n) {
      const low = m.userVa & -m.userVa;
      if (low < a) a = low;
    }
    if (a > 0x200000n) a = 0x200000n;
    if (a < iopt.alignment) return -EINVAL;
    iova = iopt.allocIova(m.length, m.userVa, a);
    if (iova < 0n) return -ENOSPC;
  }
  if ((m.userVa & (PAGE_SIZE - 1n)) % iopt.alignment !== 0n) return -EINVAL;
  if (ioas.hwpts.length && !proc.isMapped(m.userVa, m.length)) return -EFAULT;
  const area: Area = { iova, last: iova + m.length - 1n, userVa: m.userVa, proc, prot: m.flags & 6 };
  for (const h of ioas.hwpts) {
    if (hwptMapArea(h, area) < 0) {
      for (const g of ioas.hwpts) hwptUnmapArea(g, area);
      return -ENOMEM;
    }
  }
  iopt.insert(area);
  return iova;
}

/** Removes an area from its IOAS and from every HWPT on it. */
function removeArea(ioas: Ioas, area: Area): void {
  for (const h of ioas.hwpts) hwptUnmapArea(h, area);
  ioas.iopt.remove(area);
}

/** IOAS_UNMAP (docs/conformance.md §21.3): the bytes removed, or -errno with nothing removed. */
export function ioasUnmap(ctx: IommufdCtx, ioasId: number, iova: bigint, length: bigint): bigint | number {
  const ioas = ctx.get(ioasId, 'ioas');
  if (!ioas) return -ENOENT;
  const iopt = ioas.iopt;
  let areas: Area[];
  if (iova === 0n && length === U64_MAX) {
    areas = [...iopt.areas];
  } else {
    if (iova >= U64_MAX || length >= U64_MAX) return -EOVERFLOW;
    if (length === 0n) return -EINVAL;
    const last = iova + length - 1n;
    if (last > U64_MAX) return -EOVERFLOW;
    areas = iopt.areasIn(iova, last);
    if (!areas.length || areas.some((a) => a.iova < iova || a.last > last)) return -ENOENT;
  }
  let removed = 0n;
  for (const a of areas) {
    removed += a.last - a.iova + 1n;
    removeArea(ioas, a);
  }
  return removed;
}

/** IOAS drops all its areas (DESTROY, context release). */
export function ioasClear(ioas: Ioas): void {
  for (const a of [...ioas.iopt.areas]) removeArea(ioas, a);
}

/**
 * IOVA_RANGES after framing: writes the allowed ranges (up to `capacity`) at `ptr`, sets num and
 * alignment in `out`; returns 0, -EMSGSIZE (after the write-back) or -errno.
 */
export function ioasIovaRanges(
  proc: Process, ctx: IommufdCtx, ioasId: number, reserved: number, capacity: number, ptr: bigint,
  out: (total: number, alignment: bigint) => void,
): number {
  if (reserved !== 0) return -EOPNOTSUPP;
  const ioas = ctx.get(ioasId, 'ioas');
  if (!ioas) return -ENOENT;
  const ranges = ioas.iopt.allowedRanges();
  const n = Math.min(capacity, ranges.length);
  if (n > 0 && !proc.isMapped(ptr, BigInt(16 * n))) return -EFAULT;
  const buf = new Uint8Array(16 * n);
  const v = new DataView(buf.buffer);
  for (let i = 0; i < n; i++) {
    v.setBigUint64(16 * i, ranges[i][0], true);
    v.setBigUint64(16 * i + 8, ranges[i][1], true);
  }
  if (n > 0 && proc.um.write(ptr, buf) < 0) return -ENOMEM;
  out(ranges.length, ioas.iopt.alignment);
  return ranges.length > capacity ? -EMSGSIZE : 0;
}
