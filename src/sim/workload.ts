// The guest's CPU write workloads. Each produces the guest pages written between two instants of
// virtual time, at a rate in bytes per second of page writes (a page written twice counts twice,
// as a dirty rate does), and hands them to a sink in batches or ranges. A seed reproduces them.
//
// - uniform: every write picks a RAM page uniformly;
// - hotcold: a contiguous hot set (hotFraction of RAM, at a seeded place) takes hotWeight of the
//   writes, the rest pick uniformly over all of RAM;
// - sweep:   a cursor writes RAM pages in order and wraps at the end (a memory scrubber, a copy);
// - mixed:   70 % hotcold, 20 % sweep, 10 % uniform of the same total rate.
import { GUEST_PAGE, type GuestLayout } from './guest_layout.js';
import { Prng } from './prng.js';

export type WorkloadKind = 'uniform' | 'hotcold' | 'sweep' | 'mixed';
export const WORKLOAD_KINDS: readonly WorkloadKind[] = ['uniform', 'hotcold', 'sweep', 'mixed'];

/** Where a workload's writes go: guest page numbers (GPA / 4 KiB). */
export interface DirtySink {
  /** `n` written pages, `pages[0..n)`, in any order, repeats allowed. */
  pages(pages: Uint32Array, n: number): void;
  /** `count` consecutive written pages from `first`. */
  range(first: number, count: number): void;
}

export interface WorkloadOptions {
  kind: WorkloadKind;
  /** Page writes per second, in bytes (pages x 4 KiB). */
  rate: number;
  /** hotcold: the hot set's share of RAM, in (0, 1]. */
  hotFraction: number;
  /** hotcold: the share of writes that go to the hot set, in [0, 1]. */
  hotWeight: number;
  /** Seed of the page choices. */
  seed: number;
}

/** Largest batch handed to a sink at once, in pages (4 MiB of indices). */
const BATCH = 1 << 20;

type Pattern = 'uniform' | 'hotcold' | 'sweep';

/** One component of a workload: a pattern and its rate. */
interface Component {
  pattern: Pattern;
  rate: number;
}

/** Each kind's components and their shares of the rate. */
const MIX: Record<WorkloadKind, readonly { pattern: Pattern; share: number }[]> = {
  uniform: [{ pattern: 'uniform', share: 1 }],
  hotcold: [{ pattern: 'hotcold', share: 1 }],
  sweep: [{ pattern: 'sweep', share: 1 }],
  mixed: [
    { pattern: 'hotcold', share: 0.7 },
    { pattern: 'sweep', share: 0.2 },
    { pattern: 'uniform', share: 0.1 },
  ],
};

/** Each kind's share of writes drawn page by page (a sweep's come as ranges, at no cost a page). */
export const RANDOM_SHARE: Readonly<Record<WorkloadKind, number>> = Object.fromEntries(
  WORKLOAD_KINDS.map((k) => [k, MIX[k].reduce((a, c) => a + (c.pattern === 'sweep' ? 0 : c.share), 0)]),
) as Record<WorkloadKind, number>;

/** A seeded guest write workload over one guest's RAM. */
export class Workload {
  readonly options: WorkloadOptions;
  private readonly layout: GuestLayout;
  private readonly prng: Prng;
  private readonly components: Component[];
  private readonly hotPages: number;
  private readonly hotStart: number;
  private cursor = 0; // sweep: next RAM page to write
  private batch = new Uint32Array(0);
  /** Page writes produced so far. */
  written = 0;

  constructor(layout: GuestLayout, options: WorkloadOptions) {
    this.options = options;
    this.layout = layout;
    this.prng = new Prng(options.seed);
    this.components = MIX[options.kind].map((c) => ({ pattern: c.pattern, rate: options.rate * c.share }));
    this.hotPages = Math.max(1, Math.round(layout.ramPages * options.hotFraction));
    this.hotStart = this.prng.below(layout.ramPages);
  }

  /** The hot set as [first RAM page, pages]; it wraps at the end of RAM. */
  get hotSet(): [number, number] {
    return [this.hotStart, this.hotPages];
  }

  /**
   * Writes the pages the guest dirties in the virtual interval (t0, t1], in seconds. Counting
   * from time 0 (floor(rate * t / 4 KiB) writes by time t) keeps totals exact however the
   * interval is cut into steps.
   * @returns the number of page writes
   */
  run(t0: number, t1: number, sink: DirtySink): number {
    let total = 0;
    for (const c of this.components) {
      const n = writesBy(c.rate, t1) - writesBy(c.rate, t0);
      if (n <= 0) continue;
      if (c.pattern === 'sweep') this.sweep(n, sink);
      else if (c.pattern === 'uniform') this.random(n, 0, sink);
      else this.random(n, this.options.hotWeight, sink);
      total += n;
    }
    this.written += total;
    return total;
  }

  /** `n` writes, a share `hotWeight` of them in the hot set, the rest uniform over RAM. */
  private random(n: number, hotWeight: number, sink: DirtySink): void {
    const ram = this.layout.ramPages;
    const nHot = Math.round(n * hotWeight);
    let left = n;
    let hotLeft = nHot;
    while (left > 0) {
      const m = Math.min(left, BATCH);
      const buf = this.buffer(m);
      // Hot writes first in each batch, in the same proportion as the whole call.
      const h = Math.min(hotLeft, Math.round((m * nHot) / n));
      if (h > 0) {
        this.prng.fillBelow(buf, 0, h, this.hotPages, this.hotStart);
        if (this.hotStart + this.hotPages > ram) for (let i = 0; i < h; i++) if (buf[i] >= ram) buf[i] -= ram;
      }
      this.prng.fillBelow(buf, h, m - h, ram);
      this.layout.toGpaPages(buf, m);
      sink.pages(buf, m);
      hotLeft -= h;
      left -= m;
    }
  }

  /** `n` consecutive writes from the cursor, wrapping at the end of RAM. */
  private sweep(n: number, sink: DirtySink): void {
    const ram = this.layout.ramPages;
    if (n >= ram) {
      // A full lap or more: every page once; the cursor ends where the remainder leaves it.
      this.layout.forEachGpaRange(0, ram, (f, c) => sink.range(f, c));
      this.cursor = (this.cursor + n) % ram;
      return;
    }
    let left = n;
    while (left > 0) {
      const m = Math.min(left, ram - this.cursor);
      this.layout.forEachGpaRange(this.cursor, m, (f, c) => sink.range(f, c));
      this.cursor = (this.cursor + m) % ram;
      left -= m;
    }
  }

  private buffer(n: number): Uint32Array {
    if (this.batch.length < n) this.batch = new Uint32Array(Math.max(n, Math.min(BATCH, n * 2)));
    return this.batch;
  }
}

/** Page writes made by time `t` (seconds) at `rate` bytes/s, counted from 0. */
function writesBy(rate: number, t: number): number {
  // The small epsilon absorbs float error in t (e.g. 0.1 + 0.2) so exact products stay exact.
  return Math.floor((rate * t) / GUEST_PAGE + 1e-9);
}
