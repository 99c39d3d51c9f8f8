// A device's DMA-logging tracker (docs/conformance.md §20.4), modelled on mlx5's page tracker:
// START picks the tracked page size T and combines the ranges down to the tracker's limit, STOP
// discards the log, REPORT ORs the log of a range into a user bitmap and clears what it read.
import { EINVAL, ENOMEM, EOPNOTSUPP, EOVERFLOW } from '../../assembly/constants.js';
import { prepareUserBitmap, UnitLog, type UnitPiece } from '../core/unit_log.js';
import type { Process } from '../process.js';
import { PAGE_SIZE, U64_MAX } from '../u64.js';
import type { VfioDevice } from './group.js';
import type { Tracker } from './device_state.js';

/** An inclusive IOVA range [start, last]. */
export type IovaRange = [bigint, bigint];

/** log2 of the largest power of two ≤ v (v > 0). */
export function floorLog2(v: bigint): number {
  return v.toString(2).length - 1;
}

/**
 * The tracked page size for a requested `pageSize` (≥ 1): the largest of the tracker's page sizes
 * not above the largest power of two ≤ `pageSize`, else its smallest.
 */
export function trackedPageSize(tr: Tracker, pageSize: bigint): bigint {
  const f = 1n << BigInt(floorLog2(pageSize));
  let best = 0n;
  let smallest = 0n;
  for (let s = PAGE_SIZE; s < 1n << 64n; s <<= 1n) {
    if (!(tr.pageSizes & s)) continue;
    if (!smallest) smallest = s;
    if (s <= f) best = s;
  }
  return best || smallest;
}

/**
 * The ranges sorted by start and combined down to `max` (mlx5's combine): with max 1 one
 * range from the first start to the last end; otherwise the first adjacent pair with the strictly
 * smallest gap is merged until `max` remain.
 */
export function combineRanges(ranges: readonly IovaRange[], max: number): IovaRange[] {
  const r = ranges.map(([s, l]): IovaRange => [s, l]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  if (r.length <= max) return r;
  if (max === 1) return [[r[0][0], r[r.length - 1][1]]];
  while (r.length > max) {
    let at = 0;
    let gap = -1n;
    for (let i = 0; i + 1 < r.length; i++) {
      const g = r[i + 1][0] - r[i][1];
      if (gap < 0n || g < gap) {
        gap = g;
        at = i;
      }
    }
    r[at][1] = r[at + 1][1];
    r.splice(at + 1, 1);
  }
  return r;
}

/** ⌈log2 total⌉ for total ≥ 1. */
function ceilLog2(total: bigint): number {
  const f = floorLog2(total);
  return (1n << BigInt(f)) === total ? f : f + 1;
}

/**
 * The tracker's part of DMA_LOGGING_START (docs/conformance.md §20.4), for ranges that passed the
 * core checks: the tracked page size T, or -errno (-EINVAL logging active, -EOPNOTSUPP address
 * space, -ENOMEM) with logging unchanged.
 */
export function loggingStart(dev: VfioDevice, ranges: readonly IovaRange[], pageSize: bigint): bigint | number {
  const st = dev.state;
  const tr = st.tracker!;
  if (st.log) return -EINVAL;
  const T = trackedPageSize(tr, pageSize);
  const combined = combineRanges(ranges, tr.maxRanges);
  const total = combined.reduce((a, [s, l]) => a + (l - s + 1n), 0n);
  const k = ceilLog2(total);
  if (k < tr.addressSpaceBits[0] || k > tr.addressSpaceBits[1]) return -EOPNOTSUPP;
  const shift = floorLog2(T);
  const units = UnitLog.create(dev.group.engine.core, unitCover(combined, T, shift));
  if (typeof units === 'number') return -ENOMEM;
  st.log = { ranges: combined, shift, units };
  return T;
}

/** The T-aligned blocks covering the ranges, merged where they share a block. */
function unitCover(ranges: readonly IovaRange[], T: bigint, shift: number): UnitPiece[] {
  const out: UnitPiece[] = [];
  for (const [s, l] of ranges) {
    const base = s & ~(T - 1n);
    const last = l | (T - 1n);
    const prev = out[out.length - 1];
    if (prev && base <= prev.last) out[out.length - 1] = { base: prev.base, last, shift };
    else out.push({ base, last, shift });
  }
  return out;
}

/** DMA_LOGGING_STOP, and the device's close: logging stops and the log is discarded. */
export function loggingStop(dev: VfioDevice): void {
  const st = dev.state;
  st.log?.units.dispose();
  st.log = null;
}

/**
 * DMA_LOGGING_REPORT after the read of its 32 bytes, checks in the order of docs/conformance.md
 * §20.4: 0 or -errno, with nothing read or cleared on failure.
 */
export function loggingReport(
  dev: VfioDevice, proc: Process, iova: bigint, length: bigint, pageSize: bigint, data: bigint,
): number {
  if (pageSize < PAGE_SIZE || (pageSize & (pageSize - 1n)) !== 0n) return -EINVAL;
  if (iova + length > U64_MAX) return -EOVERFLOW;
  if (length === 0n) return -EINVAL;
  const pshift = floorLog2(pageSize);
  const r = prepareUserBitmap(proc, data, length, pshift);
  if (r < 0) return r;
  const log = dev.state.log;
  if (!log) return -EINVAL;
  log.units.report(proc, data, iova, iova + length - 1n, pshift, true);
  return 0;
}

/**
 * Called when a device file is released: once no group-path device file and no bound cdev file
 * of the device lives, the device is closed and its logging stops (docs/conformance.md §20.1,
 * §20.4).
 */
export function deviceClosedIfUnused(dev: VfioDevice): void {
  if (dev.openCount === 0 && !dev.state.binding) loggingStop(dev);
}
