// A process's soft-dirty record (docs/conformance.md §17) in the Wasm core: the pages written since
// the last clear. Whole mappings that read soft-dirty (VM_SOFTDIRTY) are the process's to add.
import { ENOMEM } from '../../assembly/constants.js';
import { check } from '../errors.js';
import type { Core } from '../wasm.js';

export class SoftDirty {
  private readonly core: Core;
  private h: number;
  /** A mark failed for want of memory: every page reads soft-dirty until the next clear. */
  private overflow = false;

  constructor(core: Core) {
    this.core = core;
    this.h = check(core.x.sd_create(), 'softDirty');
  }

  /** True when every page reads soft-dirty (a mark could not be recorded). */
  get all(): boolean {
    return this.overflow;
  }

  /**
   * Marks the pages touched by [addr, addr + length). Never fails: without memory for the record
   * every page reads soft-dirty until the next clear (an over-report, never an under-report).
   */
  mark(addr: bigint, length: number): void {
    if (!this.h || length <= 0) return;
    if (this.core.x.sd_mark(this.h, Number(addr), length) === -ENOMEM) this.overflow = true;
  }

  /**
   * Marks the pages of `n` stores of `bytes` bytes whose host addresses are f64 values at core
   * address `addrs` (a batch of vCPU stores). Never fails, as mark().
   */
  markMany(addrs: number, n: number, bytes: number): void {
    if (!this.h || n <= 0) return;
    if (this.core.x.sd_mark_many(this.h, addrs, n, bytes) === -ENOMEM) this.overflow = true;
  }

  /** Forgets every mark. */
  clear(): void {
    if (this.h) this.core.x.sd_clear(this.h);
    this.overflow = false;
  }

  /**
   * A byte bitmap of pages [first, first + n) with the recorded marks, and `fill(from, count)`
   * to add whole stretches; the bitmap is copied out when `fill` calls are done.
   */
  read(first: bigint, n: number, fills: (fill: (from: number, count: number) => void) => void): Uint8Array {
    const x = this.core.x;
    const bytes = Math.ceil(n / 8);
    const buf = check(x.heap_alloc(bytes), 'softDirty');
    try {
      this.core.u8().fill(0, buf, buf + bytes);
      if (this.h && first < 1n << 35n) x.sd_read(this.h, Number(first), n, buf);
      fills((from, count) => x.sd_fill(buf, from, count));
      return this.core.u8().slice(buf, buf + bytes);
    } finally {
      x.heap_free(buf);
    }
  }

  /** Returns the record's memory. Idempotent. */
  dispose(): void {
    if (this.h) this.core.x.sd_free(this.h);
    this.h = 0;
  }
}
