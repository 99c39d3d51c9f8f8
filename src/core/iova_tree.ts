// The IOVA range tree of the Wasm core (assembly/iova_tree.ts) behind a class with bigint at its
// edge: non-overlapping inclusive [iova, last] u64 ranges, each carrying a dma id.
import { EINVAL, ENOENT } from '../../assembly/constants.js';
import { check, vfioError, type ErrorRange } from '../errors.js';
import type { Core } from '../wasm.js';
import { U64_MAX } from '../u64.js';

const MAX_VALUE = 0x7fffffff;
const RECORD = 24; // bytes of one tree_collect record
const CHUNK = 1024; // records fetched per tree_collect call

/** One stored range: [iova, last] inclusive, and its value. */
export interface IovaRange {
  iova: bigint;
  last: bigint;
  value: number;
}

function span(a: bigint, b: bigint): ErrorRange {
  return { start: a, length: b - a + 1n };
}

/** Throws EINVAL unless `v` is a u64. */
function u64(v: bigint, op: string): bigint {
  if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) {
    throw vfioError(EINVAL, op, undefined, `${String(v)} is not a u64`);
  }
  return v;
}

/** Non-overlapping u64 ranges in a B+tree of the Wasm core; O(log n) per operation. */
export class IovaTree {
  readonly core: Core;
  private t: number;

  /** Creates an empty tree. Throws OutOfMemoryError when the core cannot allocate. */
  constructor(core: Core) {
    this.core = core;
    this.t = check(core.x.tree_create(), 'tree.create');
  }

  /** The core handle; throws once disposed. */
  get handle(): number {
    if (!this.t) throw new Error('IovaTree used after dispose()');
    return this.t;
  }

  /** Ranges stored. */
  get count(): number {
    return this.core.x.tree_count(this.handle);
  }

  /**
   * Stores [iova, last] with `value` (0 .. 2^31-1). Throws InvalidArgumentError (last < iova, or a
   * bad value), ExistsError (overlaps a stored range; touching is fine) or OutOfMemoryError; the
   * tree is unchanged after any of them.
   */
  insert(iova: bigint, last: bigint, value: number): void {
    const op = 'tree.insert';
    u64(iova, op);
    u64(last, op);
    if (!Number.isInteger(value) || value < 0 || value > MAX_VALUE) {
      throw vfioError(EINVAL, op, undefined, `value ${value} is not in 0..2^31-1`);
    }
    check(this.core.x.tree_insert(this.handle, iova, last, value), op, span(iova, last));
  }

  /**
   * insert() for code that returns errno and checked its arguments (the type1 model's MAP): 0, or
   * -EINVAL / -EEXIST / -ENOMEM with the tree unchanged.
   */
  tryInsert(iova: bigint, last: bigint, value: number): number {
    return this.core.x.tree_insert(this.handle, iova, last, value);
  }

  /** Removes the range that starts exactly at `iova`; returns its value. Throws NotFoundError. */
  remove(iova: bigint): number {
    return check(this.core.x.tree_remove(this.handle, u64(iova, 'tree.remove')), 'tree.remove', span(iova, iova));
  }

  /** The value of the range containing `addr`, or undefined. */
  find(addr: bigint): number | undefined {
    const r = this.core.x.tree_find(this.handle, u64(addr, 'tree.find'));
    return r === -ENOENT ? undefined : r;
  }

  /** The value of the lowest range overlapping [a, b] (inclusive), or undefined. */
  first(a: bigint, b: bigint): number | undefined {
    const r = this.core.x.tree_first(this.handle, u64(a, 'tree.first'), u64(b, 'tree.first'));
    return r === -ENOENT ? undefined : r;
  }

  /** Every range overlapping [a, b] (default: all), in ascending order. */
  collect(a = 0n, b = U64_MAX): IovaRange[] {
    u64(a, 'tree.collect');
    u64(b, 'tree.collect');
    const x = this.core.x;
    const out: IovaRange[] = [];
    const buf = check(x.heap_alloc(CHUNK * RECORD), 'tree.collect');
    try {
      for (;;) {
        const n = x.tree_collect(this.handle, a, b, buf, CHUNK);
        const v64 = this.core.u64();
        const v32 = this.core.u32();
        for (let i = 0; i < n; i++) {
          const at = buf + i * RECORD;
          out.push({ iova: v64[at / 8], last: v64[at / 8 + 1], value: v32[at / 4 + 4] });
        }
        if (n < CHUNK) break;
        const last = out[out.length - 1].last;
        if (last >= b) break;
        a = last + 1n;
      }
    } finally {
      x.heap_free(buf);
    }
    return out;
  }

  /**
   * Looks up every address of `addrs` in one core call: the value of the range containing each,
   * or -ENOENT. Throws OutOfMemoryError when the batch buffers cannot be allocated.
   */
  findBatch(addrs: BigUint64Array): Int32Array {
    const n = addrs.length;
    const res = new Int32Array(n);
    if (n === 0) return res;
    const x = this.core.x;
    const buf = check(x.heap_alloc(n * 12), 'tree.find_batch');
    try {
      this.core.u64().set(addrs, buf / 8);
      const out = buf + n * 8;
      x.tree_find_batch(this.handle, buf, n, out);
      res.set(new Int32Array(this.core.memory.buffer, out, n));
    } finally {
      x.heap_free(buf);
    }
    return res;
  }

  /** Frees the tree. Idempotent. */
  dispose(): void {
    if (this.t) this.core.x.tree_free(this.t);
    this.t = 0;
  }
}
