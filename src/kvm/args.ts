// Argument conversions of the KVM surface: ioctl numbers as u64, struct copy-in, and the type
// checks of the typed handles (a wrong JavaScript type is a caller defect: TypeError).
import type { IoctlArg } from '../file.js';

const U64 = (1n << 64n) - 1n;

/** A number ioctl argument as the kernel's unsigned long: −1 → 2^64 − 1, absent → 0. */
export function u64Arg(arg: IoctlArg, what: string): bigint {
  if (arg === undefined) return 0n;
  if (typeof arg === 'bigint') return BigInt.asUintN(64, arg);
  if (typeof arg === 'number' && Number.isInteger(arg)) return BigInt.asUintN(64, BigInt(arg));
  throw new TypeError(`${what} takes a number argument`);
}

/** A struct argument: its DataView, or null when shorter than `size` (copy-in fails: EFAULT). */
export function structIn(arg: IoctlArg, size: number, what: string): DataView | null {
  if (!(arg instanceof Uint8Array)) throw new TypeError(`${what} takes a Uint8Array struct`);
  if (arg.length < size) return null;
  return new DataView(arg.buffer, arg.byteOffset, size);
}

/** Checks a gfn or gpa: a bigint in [0, 2^64), else TypeError. */
export function checkU64(v: unknown, what: string): bigint {
  if (typeof v !== 'bigint' || v < 0n || v > U64) throw new TypeError(`${what} must be a bigint in [0, 2^64)`);
  return v;
}

/** Checks a number argument (asId, length): a number, else TypeError. */
export function checkNumber(v: unknown, what: string): number {
  if (typeof v !== 'number') throw new TypeError(`${what} must be a number`);
  return v;
}

/** Checks a byte array argument. */
export function checkBytes(v: unknown, what: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array`);
  return v;
}
