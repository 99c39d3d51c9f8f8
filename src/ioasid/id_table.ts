// The host's view of the core's ID tables (assembly/ioasid.ts): the global map of allocated IDs
// with their records, and one membership map per set. Private data (JS objects) sits beside
// them in a Map keyed by ID, only for IDs that have some.
import { check } from '../errors.js';
import type { Core } from '../wasm.js';

/** Record flag bits (the record's `flags` word). */
export const FREE_PENDING = 1;
/** The allocation reference is still held (dropped only by a free). */
export const ALLOC_REF = 2;
const OWNER_SHIFT = 2;
const OWNER_MASK = 3 << OWNER_SHIFT;

export type IdOwner = 'api' | 'sva' | 'vfio';
const OWNERS: readonly IdOwner[] = ['api', 'sva', 'vfio'];

/** The "none" answer of a search, as the core returns it after `>>> 0`. */
export const NO_ID = 0xffffffff;
/** IDs per batch of a member walk. */
const CHUNK = 1024;

/** The core's ID tables, seen from the host. */
export class IdTable {
  private readonly core: Core;
  /** The global map's handle. */
  readonly g: number;
  private readonly pdata = new Map<number, object>();
  /** A buffer of CHUNK u32 in the core for member walks, made with the engine. */
  private readonly scratch: number;

  constructor(core: Core) {
    this.core = core;
    this.g = check(core.x.ioasid_map_create(1), 'ioasid');
    this.scratch = check(core.x.heap_alloc(CHUNK * 4), 'ioasid');
  }

  /** A new set membership map: its handle, or -ENOMEM. */
  newSetMap(): number {
    return this.core.x.ioasid_map_create(0);
  }

  /** Frees a set map (empty). */
  freeSetMap(m: number): void {
    this.core.x.ioasid_map_free(m);
  }

  /** IDs in a map. */
  count(m: number): number {
    return this.core.x.ioasid_map_count(m) >>> 0;
  }

  /** Lowest free ID of the global space in [from, last], or NO_ID. */
  lowestFree(from: number, last: number): number {
    return this.core.x.ioasid_search(this.g, from, last, 0) >>> 0;
  }

  /** Lowest member of set map m in [from, last], or NO_ID. */
  nextMember(m: number, from: number, last: number): number {
    return this.core.x.ioasid_search(m, from, last, 1) >>> 0;
  }

  /** Allocates `id` in the global map and set map s: 0 or -ENOMEM (nothing changed). */
  insert(s: number, id: number, sid: number, owner: IdOwner, pdata: object | null): number {
    const flags = ALLOC_REF | (OWNERS.indexOf(owner) << OWNER_SHIFT);
    const r = this.core.x.ioasid_insert(this.g, s, id, sid, flags);
    if (r < 0) return r;
    if (pdata !== null) this.pdata.set(id, pdata);
    return 0;
  }

  /** Removes `id` from the global map and set map s. */
  remove(s: number, id: number): void {
    this.core.x.ioasid_remove(this.g, s, id);
    this.pdata.delete(id);
  }

  /** The u32 index of `id`'s record in the core's memory, or 0 when `id` is not allocated. */
  record(id: number): number {
    return this.core.x.ioasid_record(this.g, id) >>> 2;
  }

  sidAt(rec: number): number {
    return this.core.u32()[rec] | 0;
  }

  usersAt(rec: number): number {
    return this.core.u32()[rec + 1];
  }

  setUsers(rec: number, n: number): void {
    this.core.u32()[rec + 1] = n;
  }

  flagsAt(rec: number): number {
    return this.core.u32()[rec + 2];
  }

  setFlags(rec: number, f: number): void {
    this.core.u32()[rec + 2] = f;
  }

  ownerAt(rec: number): IdOwner {
    return OWNERS[(this.flagsAt(rec) & OWNER_MASK) >> OWNER_SHIFT];
  }

  pdataOf(id: number): object | null {
    return this.pdata.get(id) ?? null;
  }

  setPdata(id: number, p: object | null): void {
    if (p === null) this.pdata.delete(id);
    else this.pdata.set(id, p);
  }

  /**
   * Members of set map m in [from, last], ascending, in chunks: calls `each` per ID. The next
   * chunk starts after the last ID handed out, so IDs reclaimed meanwhile are not revisited.
   */
  forEachMember(m: number, from: number, last: number, each: (id: number) => void): void {
    const x = this.core.x;
    const buf = this.scratch;
    let at = from;
    const ids = new Uint32Array(CHUNK);
    for (;;) {
      const n = x.ioasid_collect(m, at, last, buf, CHUNK);
      if (n === 0) return;
      ids.set(this.core.u32().subarray(buf >>> 2, (buf >>> 2) + n));
      for (let i = 0; i < n; i++) each(ids[i]);
      const end = ids[n - 1];
      if (n < CHUNK || end >= last) return;
      at = end + 1;
    }
  }
}
