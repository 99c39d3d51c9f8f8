// A plain-TS model of device dirty tracking for the random-operation tests: a tracker's log as a
// set of marked units (DMA logging, docs/conformance.md §20.4) and a HWPT's IOPTE dirty bits as a
// set of 4 KiB IOPTEs over its areas (IOAS_MAP, IOAS_UNMAP, SET_DIRTY_TRACKING, GET_DIRTY_BITMAP,
// §21.3, §21.4), each written straight from the rules, unit by unit.
export type R = [bigint, bigint]; // inclusive [start, last]

/** The report bitmap (8·⌈nbits/64⌉ bytes) of `marked` units of size T over Q = [iova, last]. */
function report(marked: Set<bigint>, T: bigint, iova: bigint, last: bigint, p: bigint, clear: boolean, out: Uint8Array): void {
  for (const j of [...marked]) {
    const ulo = j * T;
    const uhi = ulo + T - 1n;
    if (uhi < iova || ulo > last) continue;
    const lo = ulo > iova ? ulo : iova;
    const hi = uhi < last ? uhi : last;
    for (let k = (lo - iova) / p; k <= (hi - iova) / p; k++) out[Number(k >> 3n)] |= 1 << Number(k & 7n);
    if (clear && ulo >= iova && uhi <= last) marked.delete(j);
  }
}

export const bytesFor = (length: bigint, p: bigint): number => Number((((length + p - 1n) / p + 63n) / 64n) * 8n);

/** A device's tracker with the default capabilities, fed ≤ maxRanges ranges (no combining). */
export class TrackerModel {
  log: { ranges: R[]; T: bigint; marked: Set<bigint> } | null = null;

  start(ranges: R[], T: bigint): number {
    if (this.log) return -22;
    this.log = { ranges, T, marked: new Set() };
    return 0;
  }

  stop(): void {
    this.log = null;
  }

  /** A successful device write of [a, last]. */
  write(a: bigint, last: bigint): void {
    const l = this.log;
    if (!l) return;
    for (const [s, e] of l.ranges) {
      if (s > last || e < a) continue;
      const lo = a > s ? a : s;
      const hi = last < e ? last : e;
      for (let j = lo / l.T; j <= hi / l.T; j++) l.marked.add(j);
    }
  }

  report(iova: bigint, length: bigint, p: bigint): Uint8Array | number {
    if (!this.log) return -22;
    const out = new Uint8Array(bytesFor(length, p));
    report(this.log.marked, this.log.T, iova, iova + length - 1n, p, true, out);
    return out;
  }
}

/** One IOAS with one dirty-capable HWPT of 4 KiB IOPTEs. */
export class HwptModel {
  areas: { iova: bigint; last: bigint }[] = [];
  dirty = new Set<bigint>(); // IOPTE index = iova / 4096
  tracking = false;

  map(iova: bigint, length: bigint): number {
    const last = iova + length - 1n;
    if (this.areas.some((a) => a.iova <= last && a.last >= iova)) return -17;
    this.areas.push({ iova, last });
    return 0;
  }

  unmap(iova: bigint, length: bigint): number | bigint {
    const last = iova + length - 1n;
    const hit = this.areas.filter((a) => a.iova <= last && a.last >= iova);
    if (!hit.length || hit.some((a) => a.iova < iova || a.last > last)) return -2;
    let n = 0n;
    for (const a of hit) {
      for (let e = a.iova / 4096n; e <= a.last / 4096n; e++) this.dirty.delete(e);
      this.areas.splice(this.areas.indexOf(a), 1);
      n += a.last - a.iova + 1n;
    }
    return n;
  }

  setTracking(on: boolean): void {
    if (on && !this.tracking) this.dirty.clear();
    this.tracking = on;
  }

  /** A device write: 0, or -EFAULT when a byte is outside every area. */
  write(a: bigint, last: bigint): number {
    for (let x = a; x <= last; ) {
      const ar = this.areas.find((r) => r.iova <= x && r.last >= x);
      if (!ar) return -14;
      x = ar.last + 1n;
    }
    if (this.tracking) for (let e = a / 4096n; e <= last / 4096n; e++) this.dirty.add(e);
    return 0;
  }

  get(iova: bigint, length: bigint, p: bigint, noClear: boolean, out: Uint8Array): void {
    report(this.dirty, 4096n, iova, iova + length - 1n, p, !noClear, out);
  }
}
