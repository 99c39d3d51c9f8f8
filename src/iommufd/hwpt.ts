// A hardware page table (HWPT) on an IOAS: its domain (page sizes, aperture, huge IOPTEs, dirty
// capability) taken from a device's group, its attached devices, and the dirty bit of every
// IOPTE as one UnitLog per area (docs/conformance.md §21.4).
import { EADDRINUSE, EFAULT, EINVAL, ENOENT, ENOMEM, EOPNOTSUPP } from '../../assembly/constants.js';
import { prepareUserBitmap, UnitLog, type UnitPiece } from '../core/unit_log.js';
import type { Process } from '../process.js';
import { PAGE_SIZE, U64_MAX } from '../u64.js';
import { pgsizesOf } from '../vfio/type1.js';
import type { Group } from '../vfio/group.js';
import type { IommufdCtx } from './context.js';
import type { DeviceBinding } from './device.js';
import type { Ioas } from './ioas.js';
import type { Area } from './io_pagetable.js';

export class Hwpt {
  readonly type = 'hwpt';
  readonly id: number;
  readonly ctx: IommufdCtx;
  readonly ioas: Ioas;
  /** Made by ATTACH to an IOAS (destroyed with its last device), not by HWPT_ALLOC. */
  readonly auto: boolean;
  /** Allocated with DIRTY_TRACKING: it has IOPTE dirty bits. */
  readonly dirtyCap: boolean;
  /** Normalized page sizes of the domain. */
  readonly pgsizes: bigint;
  readonly aperture: readonly [bigint, bigint];
  readonly huge: boolean;
  /** SET_DIRTY_TRACKING enabled. */
  tracking = false;
  /** Devices attached to it. */
  readonly devices = new Set<DeviceBinding>();
  /** IOPTE dirty bits per area (dirty-capable HWPTs only). */
  readonly logs = new Map<Area, UnitLog>();

  constructor(ctx: IommufdCtx, id: number, ioas: Ioas, g: Group, dirty: boolean, auto: boolean) {
    this.ctx = ctx;
    this.id = id;
    this.ioas = ioas;
    this.auto = auto;
    this.dirtyCap = dirty;
    this.pgsizes = normalizedPgsizes(g);
    this.aperture = g.aperture;
    this.huge = g.hugeIoptes;
  }

  /** The aperture's complement: what the HWPT reserves in its IOAS. */
  apertureReservations(): [bigint, bigint][] {
    const [s, e] = this.aperture;
    const out: [bigint, bigint][] = [];
    if (s > 0n) out.push([0n, s - 1n]);
    if (e < U64_MAX) out.push([e + 1n, U64_MAX]);
    return out;
  }

  /** A device write of [a, last]: the touched IOPTEs become dirty while tracking is on. */
  markWrite(a: bigint, last: bigint): void {
    if (!this.tracking) return;
    for (const area of this.ioas.iopt.areasIn(a, last)) this.logs.get(area)?.mark(a, last);
  }
}

/** The type1 page-size rule for one group's IOMMU: sizes below a page become a page. */
export function normalizedPgsizes(g: Group): bigint {
  return pgsizesOf([g]);
}

/** Whether group g's IOMMU can use H (docs/conformance.md §21.2). */
export function compatible(h: Hwpt, g: Group): boolean {
  return normalizedPgsizes(g) === h.pgsizes && h.aperture[0] >= g.aperture[0]
    && h.aperture[1] <= g.aperture[1] && (!h.dirtyCap || g.iommuDirtyTracking);
}

/** The IOPTEs of `area` in a domain, as runs of equal size (docs/conformance.md §21.4). */
export function ioptePieces(area: Area, pgsizes: bigint, huge: boolean): UnitPiece[] {
  if (!huge) return [{ base: area.iova, last: area.last, shift: 12 }];
  const sizes: bigint[] = [];
  for (let s = PAGE_SIZE; s <= 1n << 63n; s <<= 1n) if (pgsizes & s) sizes.push(s);
  const out: UnitPiece[] = [];
  let iova = area.iova;
  let uva = area.userVa;
  let left = area.last - area.iova + 1n;
  while (left > 0n) {
    let s = PAGE_SIZE;
    for (const z of sizes) if (z <= left && iova % z === 0n && uva % z === 0n) s = z;
    let n = left / s;
    for (const z of sizes) {
      if (z <= s || (iova - uva) % z !== 0n) continue;
      const steps = ((z - (iova % z)) % z) / s;
      if (steps < n && left - steps * s >= z) n = steps;
    }
    const shift = s.toString(2).length - 1;
    const prev = out[out.length - 1];
    if (prev && prev.shift === shift && prev.last + 1n === iova) out[out.length - 1] = { ...prev, last: iova + n * s - 1n };
    else out.push({ base: iova, last: iova + n * s - 1n, shift });
    iova += n * s;
    uva += n * s;
    left -= n * s;
  }
  return out;
}

/** Maps an area into a dirty-capable HWPT: its IOPTE dirty bits, clean. 0 or -ENOMEM. */
export function hwptMapArea(h: Hwpt, area: Area): number {
  if (!h.dirtyCap) return 0;
  const log = UnitLog.create(h.ctx.engine.core, ioptePieces(area, h.pgsizes, h.huge));
  if (typeof log === 'number') return -ENOMEM;
  h.logs.set(area, log);
  return 0;
}

/** Unmaps an area: its IOPTEs and their dirty bits go. */
export function hwptUnmapArea(h: Hwpt, area: Area): void {
  h.logs.get(area)?.dispose();
  h.logs.delete(area);
}

/**
 * HWPT_ALLOC's checks on the IOAS's areas (docs/conformance.md §21.4: the smallest page, 4 KiB
 * alignment of a first HWPT's areas, aperture reservations, mapped memory), then the creation: a
 * new HWPT on `ioas` for group g, registered under the lowest free id, or -errno with nothing
 * made.
 */
export function hwptCreate(ctx: IommufdCtx, ioas: Ioas, g: Group, dirty: boolean, auto: boolean, faultId: boolean): Hwpt | number {
  const pg = normalizedPgsizes(g);
  if ((pg & -pg) > PAGE_SIZE) return -EINVAL;
  const iopt = ioas.iopt;
  if (ioas.hwpts.length === 0 && iopt.areas.some((a) => ((a.iova | (a.last + 1n - a.iova) | a.userVa) & (PAGE_SIZE - 1n)) !== 0n)) {
    return -EADDRINUSE;
  }
  const h = new Hwpt(ctx, ctx.allocId(), ioas, g, dirty, auto);
  const aps = h.apertureReservations();
  if (aps.some(([s, l]) => iopt.areasIn(s, l).length > 0)) return -EADDRINUSE;
  if (iopt.areas.some((a) => !a.proc.isMapped(a.userVa, a.last - a.iova + 1n) || a.proc.exited)) return -EFAULT;
  if (faultId) return -ENOENT; // there are no fault objects
  for (const a of iopt.areas) {
    if (hwptMapArea(h, a) < 0) {
      for (const l of h.logs.values()) l.dispose();
      return -ENOMEM;
    }
  }
  iopt.reserve(h, aps);
  ioas.hwpts.push(h);
  iopt.alignment = PAGE_SIZE;
  ctx.objects.set(h.id, h);
  return h;
}

/** Destroys a HWPT: its IOPTEs, its aperture reservations, its id. */
export function hwptDestroy(h: Hwpt): void {
  for (const l of h.logs.values()) l.dispose();
  h.logs.clear();
  const ioas = h.ioas;
  ioas.hwpts.splice(ioas.hwpts.indexOf(h), 1);
  ioas.iopt.unreserve(h);
  if (ioas.hwpts.length === 0) ioas.iopt.alignment = 1n;
  h.ctx.objects.delete(h.id);
}

/**
 * SET_DIRTY_TRACKING after its flag and id checks (docs/conformance.md §21.4): 0 or -EOPNOTSUPP.
 */
export function hwptSetDirtyTracking(h: Hwpt, enable: boolean): number {
  if (!h.dirtyCap) return -EOPNOTSUPP;
  if (enable && !h.tracking) for (const l of h.logs.values()) l.clear();
  h.tracking = enable;
  return 0;
}

/**
 * GET_DIRTY_BITMAP after its argument checks (docs/conformance.md §21.4): every IOPTE meeting
 * [iova, last] reported into the user bitmap at `data` at page 2^pshift, cleared when wholly inside
 * unless `noClear`. `length` is the range's byte count (2^64 for all of it). 0 or -errno with
 * nothing read or cleared.
 */
export function hwptGetDirty(
  proc: Process, h: Hwpt, iova: bigint, last: bigint, length: bigint, pshift: number, data: bigint, noClear: boolean,
): number {
  if (!h.dirtyCap) return -EOPNOTSUPP;
  const r = prepareUserBitmap(proc, data, length, pshift);
  if (r < 0) return r;
  for (const area of h.ioas.iopt.areasIn(iova, last)) h.logs.get(area)?.report(proc, data, iova, last, pshift, !noClear);
  return 0;
}
