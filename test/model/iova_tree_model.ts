// Plain-TS model of the IOVA range tree (assembly/iova_tree.ts): a sorted array of bigint ranges.
// Same results and errno as the core's exports; the differential tests and the benchmarks use it.
import { EEXIST, EINVAL, ENOENT } from '../../assembly/constants.js';

export interface ModelRange {
  iova: bigint;
  last: bigint;
  value: number;
}

export class IovaTreeModel {
  /** Ranges sorted by iova; never overlapping. */
  readonly ranges: ModelRange[] = [];

  get count(): number {
    return this.ranges.length;
  }

  /** Index of the range with the largest iova <= addr, or -1. */
  private pred(addr: bigint): number {
    const r = this.ranges;
    let lo = 0;
    let hi = r.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (r[mid].iova <= addr) lo = mid + 1;
      else hi = mid;
    }
    return lo - 1;
  }

  insert(iova: bigint, last: bigint, value: number): number {
    if (last < iova || value > 0x7fffffff || value < 0) return -EINVAL;
    const i = this.pred(last);
    if (i >= 0 && this.ranges[i].last >= iova) return -EEXIST;
    this.ranges.splice(i + 1, 0, { iova, last, value });
    return 0;
  }

  remove(iova: bigint): number {
    const i = this.pred(iova);
    if (i < 0 || this.ranges[i].iova !== iova) return -ENOENT;
    return this.ranges.splice(i, 1)[0].value;
  }

  find(addr: bigint): number {
    const i = this.pred(addr);
    return i >= 0 && this.ranges[i].last >= addr ? this.ranges[i].value : -ENOENT;
  }

  /** Index of the lowest range overlapping [a, b], or -1. */
  private firstIndex(a: bigint, b: bigint): number {
    if (a > b) return -1;
    let i = this.pred(a);
    if (i < 0 || this.ranges[i].last < a) i++;
    return i < this.ranges.length && this.ranges[i].iova <= b ? i : -1;
  }

  first(a: bigint, b: bigint): number {
    const i = this.firstIndex(a, b);
    return i < 0 ? -ENOENT : this.ranges[i].value;
  }

  /** The ranges overlapping [a, b], ascending, at most `max`. */
  collect(a: bigint, b: bigint, max = Infinity): ModelRange[] {
    const out: ModelRange[] = [];
    let i = this.firstIndex(a, b);
    if (i < 0) return out;
    for (; i < this.ranges.length && out.length < max && this.ranges[i].iova <= b; i++) out.push({ ...this.ranges[i] });
    return out;
  }

  findBatch(addrs: BigUint64Array): Int32Array {
    const out = new Int32Array(addrs.length);
    for (let i = 0; i < addrs.length; i++) out[i] = this.find(addrs[i]);
    return out;
  }
}
