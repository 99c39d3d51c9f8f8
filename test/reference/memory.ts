// A process's user memory in the reference model: mmap'ed regions, and a Map of 4 KiB pages that
// holds only the pages ever written (every other mapped byte reads as zero).
import { PAGE_SIZE, USER_TOP } from './uapi.js';

const PS = Number(PAGE_SIZE);

/** Where the reference hands out mmap regions: upward from here, one unmapped guard page apart. */
export const MMAP_BASE = 0x10_0000_0000n;

export class RefMemory {
  /** Mapped regions [start, end) in ascending order, page aligned, never adjacent. */
  readonly regions: { start: bigint; end: bigint }[] = [];
  /** Written pages by page number (address / 4096). */
  private readonly pages = new Map<bigint, Uint8Array>();
  private next = MMAP_BASE;

  /** Maps `length` bytes (rounded up to whole pages) of zeroed memory; the start address. */
  mmap(length: bigint | number): bigint {
    const len = BigInt(length);
    if (len <= 0n) throw new RangeError('mmap length must be positive');
    const size = ((len + PAGE_SIZE - 1n) / PAGE_SIZE) * PAGE_SIZE;
    const start = this.next;
    if (start + size > USER_TOP) throw new RangeError('mmap: no room left below the user-space top');
    this.regions.push({ start, end: start + size });
    this.next = start + size + PAGE_SIZE;
    return start;
  }

  /** True when every byte of [addr, addr+len) is mapped (len 0: true). */
  isMapped(addr: bigint, len: bigint): boolean {
    return this.firstUnmapped(addr, len) === null;
  }

  /** The first unmapped address in [addr, addr+len), or null when all of it is mapped. */
  firstUnmapped(addr: bigint, len: bigint): bigint | null {
    let a = addr;
    const end = addr + len;
    while (a < end) {
      const r = this.regions.find((x) => x.start <= a && a < x.end);
      if (!r) return a;
      a = r.end;
    }
    return null;
  }

  /** Bytes [addr, addr+len); throws RangeError when any of them is not mapped. */
  read(addr: bigint, len: number): Uint8Array {
    if (!this.isMapped(addr, BigInt(len))) throw new RangeError(`read of unmapped memory at 0x${addr.toString(16)}`);
    const out = new Uint8Array(len);
    for (let i = 0; i < len; ) {
      const a = addr + BigInt(i);
      const page = a / PAGE_SIZE;
      const off = Number(a % PAGE_SIZE);
      const n = Math.min(PS - off, len - i);
      const p = this.pages.get(page);
      if (p) out.set(p.subarray(off, off + n), i);
      i += n;
    }
    return out;
  }

  /** Stores `bytes` at addr; throws RangeError when any target byte is not mapped. */
  write(addr: bigint, bytes: Uint8Array): void {
    if (!this.isMapped(addr, BigInt(bytes.length))) {
      throw new RangeError(`write to unmapped memory at 0x${addr.toString(16)}`);
    }
    for (let i = 0; i < bytes.length; ) {
      const a = addr + BigInt(i);
      const page = a / PAGE_SIZE;
      const off = Number(a % PAGE_SIZE);
      const n = Math.min(PS - off, bytes.length - i);
      let p = this.pages.get(page);
      if (!p) {
        p = new Uint8Array(PS);
        this.pages.set(page, p);
      }
      p.set(bytes.subarray(i, i + n), off);
      i += n;
    }
  }
}
