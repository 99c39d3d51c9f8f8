// Plain-TS model of the pin table (assembly/pin_table.ts): a Map from page to refcount, with the
// same budget, unwind and marking rules. Dirty bits are modelled as a Set of bit indices.
import { ENOMEM } from '../../assembly/constants.js';

export interface ModelPin {
  page: bigint;
  count: number;
}

export class PinTableModel {
  readonly pins = new Map<bigint, number>();

  get size(): number {
    return this.pins.size;
  }

  count(page: bigint): number {
    return this.pins.get(page) ?? 0;
  }

  /**
   * Pins `pages` in order. A new page needs one unit of `budget` (< 0: unlimited) and adds
   * page >> shift to `bits`; when the budget runs out the call's pins are undone (bits stay).
   */
  pinPages(pages: Iterable<bigint>, budget = -1, bits?: Set<bigint>, shift = 0n): number {
    const done: bigint[] = [];
    let created = 0;
    for (const page of pages) {
      const c = this.pins.get(page);
      if (c !== undefined) {
        this.pins.set(page, c + 1);
      } else {
        if (budget >= 0 && created >= budget) {
          for (let j = done.length - 1; j >= 0; j--) this.unpinOne(done[j]);
          return -ENOMEM;
        }
        this.pins.set(page, 1);
        created++;
        bits?.add(page >> shift);
      }
      done.push(page);
    }
    return created;
  }

  pinRange(first: bigint, n: number, budget = -1, bits?: Set<bigint>, shift = 0n): number {
    return this.pinPages(range(first, n), budget, bits, shift);
  }

  /** The Map-only loop the benchmarks compare against: pins a batch, unlimited, no bitmap. */
  pinBatch(pages: BigUint64Array): number {
    const m = this.pins;
    let created = 0;
    for (let i = 0; i < pages.length; i++) {
      const p = pages[i];
      const c = m.get(p);
      if (c === undefined) {
        m.set(p, 1);
        created++;
      } else m.set(p, c + 1);
    }
    return created;
  }

  private unpinOne(page: bigint): number {
    const c = this.pins.get(page);
    if (c === undefined) return 0;
    if (c > 1) {
      this.pins.set(page, c - 1);
      return 0;
    }
    this.pins.delete(page);
    return 1;
  }

  unpinPages(pages: Iterable<bigint>): number {
    let released = 0;
    for (const p of pages) released += this.unpinOne(p);
    return released;
  }

  unpinRange(first: bigint, n: number): number {
    return this.unpinPages(range(first, n));
  }

  unpinBatch(pages: BigUint64Array): number {
    let released = 0;
    for (let i = 0; i < pages.length; i++) released += this.unpinOne(pages[i]);
    return released;
  }

  /** Adds (q - first) >> shift to `bits` for every pinned q >= first whose bit is below nbits. */
  mark(bits: Set<bigint>, first: bigint, nbits: number, shift = 0n): void {
    for (const q of this.pins.keys()) {
      if (q < first) continue;
      const b = (q - first) >> shift;
      if (b < BigInt(nbits)) bits.add(b);
    }
  }

  countRange(first: bigint, n: bigint): number {
    const U64_MAX = (1n << 64n) - 1n;
    if (n === 0n) return 0;
    const last = first + n - 1n > U64_MAX ? U64_MAX : first + n - 1n;
    let c = 0;
    for (const q of this.pins.keys()) if (q >= first && q <= last) c++;
    return c;
  }

  /** The lowest `max` pinned pages, ascending. */
  collect(max = Infinity): ModelPin[] {
    return [...this.pins.entries()]
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .slice(0, max)
      .map(([page, count]) => ({ page, count }));
  }

  clear(): void {
    this.pins.clear();
  }
}

/** Pages first .. first+n-1, stopping at 2^64 - 1. */
function* range(first: bigint, n: number): Generator<bigint> {
  const U64_MAX = (1n << 64n) - 1n;
  for (let i = 0n; i < BigInt(n) && first + i <= U64_MAX; i++) yield first + i;
}
