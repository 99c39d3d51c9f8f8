// The typed API's errors: one base class, one subclass per errno, each carrying what failed.
// The ioctl surface never throws these: it returns -errno as the kernel does.
import * as E from '../assembly/constants.js';

/** errno names to Linux x86-64 numbers. */
export const errno = Object.freeze({
  EPERM: E.EPERM,
  ENOENT: E.ENOENT,
  ESRCH: E.ESRCH,
  EIO: E.EIO,
  ENXIO: E.ENXIO,
  E2BIG: E.E2BIG,
  EBADF: E.EBADF,
  ENOMEM: E.ENOMEM,
  EACCES: E.EACCES,
  EFAULT: E.EFAULT,
  EBUSY: E.EBUSY,
  EEXIST: E.EEXIST,
  ENODEV: E.ENODEV,
  EINVAL: E.EINVAL,
  ENOTTY: E.ENOTTY,
  ENOSPC: E.ENOSPC,
  EDEADLK: E.EDEADLK,
  EOVERFLOW: E.EOVERFLOW,
  EBADFD: E.EBADFD,
  EMSGSIZE: E.EMSGSIZE,
  EOPNOTSUPP: E.EOPNOTSUPP,
  EADDRINUSE: E.EADDRINUSE,
});

export type ErrnoName = keyof typeof errno;

const names = new Map<number, ErrnoName>(
  Object.entries(errno).map(([k, v]) => [v, k as ErrnoName]),
);

/** The name of an errno number, e.g. 22 -> 'EINVAL'; 'E?' + n for one the engine never returns. */
export function errnoName(n: number): string {
  return names.get(Math.abs(n)) ?? `E?${Math.abs(n)}`;
}

/** A range an operation was applied to: the first address (or index) and its length. */
export interface ErrorRange {
  start: bigint;
  length: bigint;
}

/** Base class of every error the typed API throws for an expected failure. */
export class VfioError extends Error {
  // Declared per class, not taken from new.target.name: a bundler that renames classes keeps it.
  override name = 'VfioError';
  /** The positive errno number, e.g. 22 for EINVAL. */
  readonly errno: number;
  /** The operation that failed, e.g. 'map' or 'dirty.read'. */
  readonly op: string;
  /** The range the operation was given, when it had one. */
  readonly range?: ErrorRange;

  constructor(errnoValue: number, op: string, range?: ErrorRange, detail?: string) {
    const where = range ? ` [0x${range.start.toString(16)}, +0x${range.length.toString(16)})` : '';
    super(`${op}${where}: ${errnoName(errnoValue)}${detail ? ` (${detail})` : ''}`);
    this.errno = errnoValue;
    this.op = op;
    this.range = range;
  }
}

/** EPERM. */
export class PermissionError extends VfioError {
  override name = 'PermissionError';
}
/** ENOENT. */
export class NotFoundError extends VfioError {
  override name = 'NotFoundError';
}
/** E2BIG. */
export class TooBigError extends VfioError {
  override name = 'TooBigError';
}
/** EBADF, EBADFD. */
export class BadFileError extends VfioError {
  override name = 'BadFileError';
}
/** ENOMEM. */
export class OutOfMemoryError extends VfioError {
  override name = 'OutOfMemoryError';
}
/** EACCES. */
export class AccessError extends VfioError {
  override name = 'AccessError';
}
/** EFAULT. */
export class FaultError extends VfioError {
  override name = 'FaultError';
}
/** EBUSY. */
export class BusyError extends VfioError {
  override name = 'BusyError';
}
/** EEXIST. */
export class ExistsError extends VfioError {
  override name = 'ExistsError';
}
/** ENODEV. */
export class NoDeviceError extends VfioError {
  override name = 'NoDeviceError';
}
/** EINVAL. */
export class InvalidArgumentError extends VfioError {
  override name = 'InvalidArgumentError';
}
/** ENOTTY. */
export class NotSupportedError extends VfioError {
  override name = 'NotSupportedError';
}
/** ENOSPC. */
export class NoSpaceError extends VfioError {
  override name = 'NoSpaceError';
}
/** EOVERFLOW. */
export class OverflowError extends VfioError {
  override name = 'OverflowError';
}

const classes = new Map<number, new (n: number, op: string, r?: ErrorRange, d?: string) => VfioError>([
  [E.EPERM, PermissionError],
  [E.ENOENT, NotFoundError],
  [E.E2BIG, TooBigError],
  [E.EBADF, BadFileError],
  [E.EBADFD, BadFileError],
  [E.ENOMEM, OutOfMemoryError],
  [E.EACCES, AccessError],
  [E.EFAULT, FaultError],
  [E.EBUSY, BusyError],
  [E.EEXIST, ExistsError],
  [E.ENODEV, NoDeviceError],
  [E.EINVAL, InvalidArgumentError],
  [E.ENOTTY, NotSupportedError],
  [E.ENOSPC, NoSpaceError],
  [E.EOVERFLOW, OverflowError],
]);

/** The error for `errnoValue` (positive or negative), as the subclass that names it. */
export function vfioError(errnoValue: number, op: string, range?: ErrorRange, detail?: string): VfioError {
  const n = Math.abs(errnoValue);
  const C = classes.get(n) ?? VfioError;
  return new C(n, op, range, detail);
}

/** Returns `ret` when it is not negative; throws the matching VfioError when it is. */
export function check(ret: number, op: string, range?: ErrorRange): number {
  if (ret < 0) throw vfioError(ret, op, range);
  return ret;
}
