// A process's sparse user memory in the Wasm core: 4 KiB frames allocated on first write.
import { EFAULT, PAGE_SIZE as PAGE_BYTES } from '../../assembly/constants.js';
import { PAGE_SHIFT } from '../u64.js';
import { check } from '../errors.js';
import type { Core } from '../wasm.js';

/** Sparse byte-addressed memory below 2^47; unwritten bytes read as zero. */
export class UserMemory {
  readonly core: Core;
  private h: number;

  /** Creates an empty memory. Throws OutOfMemoryError when the core cannot allocate. */
  constructor(core: Core) {
    this.core = core;
    this.h = check(core.x.um_create(), 'mmap');
  }

  /** The core handle; throws once disposed. */
  get handle(): number {
    if (!this.h) throw new Error('UserMemory used after dispose()');
    return this.h;
  }

  /** True once disposed: the memory is gone, and reads and writes answer -EFAULT. */
  get disposed(): boolean {
    return this.h === 0;
  }

  /** 4 KiB frames of host memory in use. */
  get frames(): number {
    return this.core.x.um_frames(this.handle);
  }

  /**
   * Copies `bytes` to `addr`. Returns 0, or -ENOMEM / -EFAULT with nothing written (-EFAULT once disposed). The bytes go
   * through one scratch block of the core heap, in one call.
   */
  write(addr: bigint, bytes: Uint8Array): number {
    if (bytes.length === 0) return 0;
    if (!this.h) return -EFAULT;
    const x = this.core.x;
    const buf = x.heap_alloc(bytes.length);
    if (buf < 0) return buf;
    try {
      this.core.u8().set(bytes, buf);
      return x.um_write(this.handle, Number(addr), buf, bytes.length);
    } finally {
      x.heap_free(buf);
    }
  }

  /** Reads `length` bytes at `addr` into a new array; -ENOMEM / -EFAULT as a number on failure. */
  read(addr: bigint, length: number): Uint8Array | number {
    const out = new Uint8Array(length);
    if (length === 0) return out;
    if (!this.h) return -EFAULT;
    const x = this.core.x;
    const buf = x.heap_alloc(length);
    if (buf < 0) return buf;
    try {
      const r = x.um_read(this.handle, Number(addr), buf, length);
      if (r < 0) return r;
      out.set(this.core.u8().subarray(buf, buf + length));
      return out;
    } finally {
      x.heap_free(buf);
    }
  }

  /**
   * Frames every page of the byte ranges `ranges` ([address, length], any order, lengths > 0,
   * below 2^47), all or nothing: 0, or -ENOMEM with no frame added (-EFAULT once disposed). After
   * it, writes there cannot fail for memory.
   */
  reserveRanges(ranges: readonly (readonly [bigint, bigint])[]): number {
    if (!this.h) return -EFAULT;
    const pages = ranges
      .filter(([, len]) => len > 0n)
      .map(([a, len]) => [Number(a >> PAGE_SHIFT), Number((a + len - 1n) >> PAGE_SHIFT)])
      .sort((p, q) => p[0] - q[0]);
    const pairs: number[] = []; // first page, last page; ascending, merged when they touch
    for (const [first, last] of pages) {
      const n = pairs.length;
      if (n && first <= pairs[n - 1] + 1) pairs[n - 1] = Math.max(pairs[n - 1], last);
      else pairs.push(first, last);
    }
    if (!pairs.length) return 0;
    if (pairs.length === 2) {
      // One run (the usual harvest): no list to stage.
      const r = this.reserve(BigInt(pairs[0]) << PAGE_SHIFT, (pairs[1] - pairs[0] + 1) * PAGE_BYTES);
      return r < 0 ? r : 0;
    }
    const x = this.core.x;
    const buf = x.heap_alloc(pairs.length * 8);
    if (buf < 0) return buf;
    try {
      new Float64Array(this.core.memory.buffer, buf, pairs.length).set(pairs); // heap blocks are 16-aligned
      const r = x.um_reserve_ranges(this.handle, buf, pairs.length / 2);
      return r < 0 ? r : 0;
    } finally {
      x.heap_free(buf);
    }
  }

  /**
   * Copies `len` bytes from linear memory at `src` (a core heap block) to user address `addr`, in
   * one call: 0, -ENOMEM or -EFAULT, nothing written on failure (-EFAULT once disposed).
   */
  writeFrom(addr: bigint, src: number, len: number): number {
    return this.h ? this.core.x.um_write(this.h, Number(addr), src, len) : -EFAULT;
  }

  /** Copies `len` bytes at user address `addr` to linear memory at `dst`: 0 or -EFAULT. */
  readTo(addr: bigint, dst: number, len: number): number {
    return this.h ? this.core.x.um_read(this.h, Number(addr), dst, len) : -EFAULT;
  }

  /**
   * Backs every page of [addr, addr + len) with a frame, so later writes there cannot fail for
   * memory: the blocks added, or -ENOMEM with nothing added (-EFAULT once disposed).
   */
  reserve(addr: bigint, len: number): number {
    return this.h ? this.core.x.um_reserve(this.h, Number(addr), len) : -EFAULT;
  }

  /** Frees every frame. Idempotent. */
  dispose(): void {
    if (this.h) this.core.x.um_free(this.h);
    this.h = 0;
  }
}
