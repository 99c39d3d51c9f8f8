// IOASID sets (docs/conformance.md §15.2) as the host keeps them, and the argument checks shared by
// every call of the allocator, the VFIO PASID request and SVA (a wrong type throws TypeError).
import type { Chain } from './notifier.js';

/** INVALID_IOASID. */
export const INV = 0xffff_ffff;

export type SetOwner = 'api' | 'system' | 'vfio';

/** A set: LIVE or DESTROYING; `used` is its map's count in the core. */
export interface IoasidSet {
  readonly sid: number;
  readonly token: unknown;
  quota: number;
  destroying: boolean;
  readonly owner: SetOwner;
  /** Its membership map in the core. */
  readonly map: number;
  readonly chain: Chain;
}

/** setInfo(sid). */
export interface SetInfo {
  sid: number;
  token: unknown;
  quota: number;
  used: number;
  destroying: boolean;
  owner: SetOwner;
}

/** The public view of a set. */
export function setInfoOf(s: IoasidSet, used: number): SetInfo {
  return { sid: s.sid, token: s.token, quota: s.quota, used, destroying: s.destroying, owner: s.owner };
}

/** Throws TypeError unless `v` is an integer number. */
export function checkInt(v: unknown, what: string): asserts v is number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(`${what} must be an integer`);
}

/** Throws TypeError unless `v` is an ID: an integer in [0, 0xFFFFFFFF]. */
export function checkId(v: unknown, what: string): asserts v is number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffff_ffff) {
    throw new TypeError(`${what} must be an integer in [0, 0xFFFFFFFF]`);
  }
}

/** Throws TypeError unless `v` is a sid (an integer). */
export function checkSid(v: unknown): asserts v is number {
  checkInt(v, 'sid');
}

/** Throws TypeError unless `v` is a function. */
export function checkFn(v: unknown, what: string): void {
  if (typeof v !== 'function') throw new TypeError(`${what} must be a function`);
}

/** Private data: an object or null (undefined means null); anything else throws TypeError. */
export function checkPdata(v: unknown): object | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' && typeof v !== 'function') throw new TypeError('private data must be an object or null');
  return v as object;
}
