import { PAGE_SHIFT as PAGE_SHIFT_N, PAGE_SIZE as PAGE_SIZE_N } from '../assembly/constants.js';
import { uapi } from './uapi.js';

// 64-bit address arithmetic. IOVAs, sizes and user addresses are u64 in the kernel; here they are
// bigint, and every wrap the kernel would see is computed explicitly.

export const U64_MAX = (1n << 64n) - 1n;

/** The host page as bigints: the unit of user memory, pinning and mmap. */
export const PAGE_SHIFT = BigInt(PAGE_SHIFT_N);
export const PAGE_SIZE = BigInt(PAGE_SIZE_N);

/** The x86-64 user-space top: a user range reaching past it fails access_ok. */
export const USER_TOP = uapi.TASK_SIZE_MAX;

/** True when `x` is an integer bigint in [0, 2^64). */
export function isU64(x: unknown): x is bigint {
  return typeof x === 'bigint' && x >= 0n && x <= U64_MAX;
}

/** access_ok(): [addr, addr+size) lies wholly below the user top. */
export function userRangeOk(addr: bigint, size: bigint): boolean {
  return addr + size <= USER_TOP;
}

/** Index of the lowest set bit of a non-zero u64 bigint. */
export function ctz64(x: bigint): number {
  const lo = Number(x & 0xffff_ffffn);
  if (lo !== 0) return 31 - Math.clz32(lo & -lo);
  const hi = Number((x >> 32n) & 0xffff_ffffn);
  return 63 - Math.clz32(hi & -hi);
}
