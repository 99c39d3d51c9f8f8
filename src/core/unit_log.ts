// Dirty units over IOVA: a device tracker's log (units of its page size T over its ranges) and a
// HWPT's IOPTE dirty bits of one area (one unit per IOPTE). The bits live in core dirty bitmaps,
// one per segment of equal-sized units; marking and reporting are one core call per segment.
import { EFAULT, ENOMEM } from '../../assembly/constants.js';
import type { Process } from '../process.js';
import type { Core } from '../wasm.js';

/** A run of equal units: unit j = [base + j·2^shift, base + (j+1)·2^shift), up to `last`. */
export interface UnitPiece {
  /** IOVA of unit 0. */
  readonly base: bigint;
  /** Inclusive last IOVA covered (base + count·2^shift − 1). */
  readonly last: bigint;
  /** log2 of the unit size in bytes. */
  readonly shift: number;
}

interface Segment extends UnitPiece {
  /** Core dirty bitmap handle, one bit per unit. */
  readonly bm: number;
}

// Units per core bitmap: 2^30 keeps every bitmap under the core's 2^31-bit limit.
const SEG_UNITS_SHIFT = 30n;

/** Dirty units over a fixed set of IOVA pieces, ascending and disjoint. */
export class UnitLog {
  readonly core: Core;
  private readonly segs: Segment[];

  private constructor(core: Core, segs: Segment[]) {
    this.core = core;
    this.segs = segs;
  }

  /**
   * A clean log over `pieces` (ascending, disjoint): the log, or -ENOMEM with nothing allocated.
   * Pieces of more than 2^30 units are split.
   */
  static create(core: Core, pieces: readonly UnitPiece[]): UnitLog | number {
    const segs: Segment[] = [];
    for (const p of pieces) {
      const sh = BigInt(p.shift);
      const units = ((p.last - p.base) >> sh) + 1n;
      for (let at = 0n; at < units; at += 1n << SEG_UNITS_SHIFT) {
        const n = units - at < 1n << SEG_UNITS_SHIFT ? units - at : 1n << SEG_UNITS_SHIFT;
        const bm = core.x.bitmap_create(Number(n));
        if (bm < 0) {
          for (const s of segs) core.x.bitmap_free(s.bm);
          return -ENOMEM;
        }
        const base = p.base + (at << sh);
        segs.push({ base, last: base + (n << sh) - 1n, shift: p.shift, bm });
      }
    }
    return new UnitLog(core, segs);
  }

  /** The segments meeting [a, last], ascending. */
  private *meeting(a: bigint, last: bigint): Generator<Segment> {
    for (const s of this.segs) if (s.base <= last && s.last >= a) yield s;
  }

  /** Marks every unit containing a byte of [a, last]. */
  mark(a: bigint, last: bigint): void {
    for (const s of this.meeting(a, last)) {
      const sh = BigInt(s.shift);
      const j0 = ((a > s.base ? a : s.base) - s.base) >> sh;
      const j1 = ((last < s.last ? last : s.last) - s.base) >> sh;
      this.core.x.bitmap_set_range(s.bm, Number(j0), Number(j1 - j0) + 1);
    }
  }

  /** Whether any unit meeting [a, last] is marked (tests and the model's invariant checks). */
  any(a: bigint, last: bigint): boolean {
    for (const s of this.meeting(a, last)) {
      const sh = BigInt(s.shift);
      const j0 = ((a > s.base ? a : s.base) - s.base) >> sh;
      const j1 = ((last < s.last ? last : s.last) - s.base) >> sh;
      if (this.core.x.bitmap_count(s.bm, Number(j0), Number(j1 - j0) + 1) !== 0) return true;
    }
    return false;
  }

  /**
   * ORs the report of [iova, last] at page 2^pshift into the user bitmap at `user` (prepared by
   * {@link prepareUserBitmap}), one core call per segment; with `clear` the units inside the range
   * are unmarked.
   */
  report(proc: Process, user: bigint, iova: bigint, last: bigint, pshift: number, clear: boolean): void {
    const x = this.core.x;
    for (const s of this.meeting(iova, last)) {
      x.unit_report(proc.um.handle, Number(user), s.bm, s.base, s.last, s.shift, iova, last, pshift, clear ? 1 : 0);
    }
  }

  /** The segments' core bitmap handles, ascending (benchmarks and tests). */
  get handles(): readonly number[] {
    return this.segs.map((s) => s.bm);
  }

  /** Unmarks every unit. */
  clear(): void {
    for (const s of this.segs) this.core.x.bitmap_clear(s.bm);
  }

  /** Frees the bitmaps; the log must not be used after. */
  dispose(): void {
    for (const s of this.segs) this.core.x.bitmap_free(s.bm);
    this.segs.length = 0;
  }
}

/**
 * The user bitmap of a report (docs/conformance.md §20.5): nbits = ⌈length / 2^pshift⌉ bits at
 * `data`, whose extent is 8·⌈nbits/64⌉ bytes. 0 once every byte of the extent is mapped and framed;
 * -EFAULT (a byte is not mapped) or -ENOMEM, with nothing changed. `length` may be 2^64.
 */
export function prepareUserBitmap(proc: Process, data: bigint, length: bigint, pshift: number): number {
  const nbits = (length + (1n << BigInt(pshift)) - 1n) >> BigInt(pshift);
  const bytes = ((nbits + 63n) >> 6n) << 3n;
  if (data === 0n || !proc.isMapped(data, bytes)) return -EFAULT;
  return proc.engine.core.x.um_reserve(proc.um.handle, Number(data), Number(bytes)) < 0 ? -ENOMEM : 0;
}
