// An IOAS's IOVA space (the kernel's io_pagetable): its areas (user memory mapped at an IOVA),
// its reserved set (HWPT apertures, attached devices' reserved regions) and its IOVA alignment;
// the lookups, the hole walk and the IOVA allocator (docs/conformance.md §21.3).
import type { Process } from '../process.js';
import { PAGE_SIZE, U64_MAX } from '../u64.js';

/** One IOAS_MAP: [iova, last] backed by `proc`'s memory at userVa, with READABLE/WRITEABLE. */
export interface Area {
  readonly iova: bigint;
  /** Inclusive last IOVA. */
  readonly last: bigint;
  readonly userVa: bigint;
  /** The process that made the mapping: DMA lands in its memory. */
  readonly proc: Process;
  /** IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE bits. */
  readonly prot: number;
}

/** A reserved range [start, last] and what put it there (a HWPT's aperture, a device). */
export interface Reservation {
  readonly start: bigint;
  readonly last: bigint;
  readonly owner: object;
}

/** The lowest and highest IOVA the allocator hands out (IOVA 0 and the top page never are). */
const ALLOC_LO = PAGE_SIZE;
const ALLOC_HI = U64_MAX - PAGE_SIZE;

export class IoPagetable {
  /** Areas, ascending by iova, disjoint. */
  readonly areas: Area[] = [];
  /** Reserved ranges (may overlap one another). */
  readonly reserved: Reservation[] = [];
  /** iova_alignment: 1 without a HWPT, 4096 with one. */
  alignment = 1n;

  /** Index of the first area whose last ≥ a. */
  private lowerBound(a: bigint): number {
    let lo = 0;
    let hi = this.areas.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.areas[mid].last < a) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The area containing IOVA a, or undefined. */
  areaAt(a: bigint): Area | undefined {
    const ar = this.areas[this.lowerBound(a)];
    return ar && ar.iova <= a ? ar : undefined;
  }

  /** The areas meeting [a, last], ascending. */
  areasIn(a: bigint, last: bigint): Area[] {
    const out: Area[] = [];
    for (let i = this.lowerBound(a); i < this.areas.length && this.areas[i].iova <= last; i++) out.push(this.areas[i]);
    return out;
  }

  /** Adds an area (the range was checked free). */
  insert(area: Area): void {
    this.areas.splice(this.lowerBound(area.iova), 0, area);
  }

  /** Removes an area. */
  remove(area: Area): void {
    this.areas.splice(this.areas.indexOf(area), 1);
  }

  /** Whether [a, last] meets the reserved set. */
  reservedMeets(a: bigint, last: bigint): boolean {
    return this.reserved.some((r) => r.start <= last && r.last >= a);
  }

  /**
   * Adds reservations owned by `owner`: true, or false (nothing added) when one meets an area
   * (the caller's EADDRINUSE).
   */
  reserve(owner: object, ranges: readonly (readonly [bigint, bigint])[]): boolean {
    if (ranges.some(([s, l]) => this.areasIn(s, l).length > 0)) return false;
    for (const [start, last] of ranges) this.reserved.push({ start, last, owner });
    return true;
  }

  /** Drops every reservation of `owner`. */
  unreserve(owner: object): void {
    for (let i = this.reserved.length - 1; i >= 0; i--) if (this.reserved[i].owner === owner) this.reserved.splice(i, 1);
  }

  /** The holes of `ranges` (inclusive, any order, may overlap) inside [lo, hi], ascending. */
  static holes(ranges: (readonly [bigint, bigint])[], lo: bigint, hi: bigint): [bigint, bigint][] {
    const r = [...ranges].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const out: [bigint, bigint][] = [];
    let at = lo;
    for (const [s, l] of r) {
      if (at > hi) break;
      if (l < at) continue;
      if (s > at) out.push([at, s - 1n < hi ? s - 1n : hi]);
      if (l >= hi) return out;
      at = l + 1n > at ? l + 1n : at;
    }
    if (at <= hi) out.push([at, hi]);
    return out;
  }

  /** The holes of the reserved set in [0, U64_MAX] (IOVA_RANGES). */
  allowedRanges(): [bigint, bigint][] {
    return IoPagetable.holes(this.reserved.map((r) => [r.start, r.last] as const), 0n, U64_MAX);
  }

  /**
   * iopt_alloc_iova (IOAS_MAP without FIXED_IOVA, after the EOVERFLOW and alignment checks): the
   * lowest IOVA for `length` bytes at user address userVa with alignment a, or -1n (ENOSPC).
   */
  allocIova(length: bigint, userVa: bigint, a: bigint): bigint {
    const used = [
      ...this.reserved.map((r) => [r.start, r.last] as const),
      ...this.areas.map((ar) => [ar.iova, ar.last] as const),
    ];
    const pageOff = userVa & (PAGE_SIZE - 1n);
    for (const [h, l] of IoPagetable.holes(used, ALLOC_LO, ALLOC_HI)) {
      const s = (((h + a - 1n) / a) * a) | pageOff;
      if (s < l && l - s >= length - 1n) return s;
    }
    return -1n;
  }
}
