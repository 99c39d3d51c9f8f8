// The IOASID allocator's ID tables: one global map of allocated IDs, each with a 12-byte record,
// and one membership map per set (assembly/ioasid_map.ts). The host keeps quotas, tokens,
// private data and notifier chains; everything per ID lives here.
//
//   record (12 bytes) ┌────────────┬────────────┬────────────┐
//                     │ sid i32 @0 │ users @4   │ flags @8   │   flags: the host's state bits
//                     └────────────┴────────────┴────────────┘
import { ENOMEM } from './constants';
import {
  leafOf, mapClear, mapCount, mapCreate, mapFree, mapReserve, mapSearch, mapSet, mapTest, mapTrim,
  recordOf,
} from './ioasid_map';

const RECORD_BYTES: u32 = 12;

/** A new empty map: the global one (records != 0) or a set's: its handle or -ENOMEM. */
export function ioasid_map_create(records: u32): i32 {
  const m = mapCreate(records ? RECORD_BYTES : 0);
  return m ? <i32>m : -ENOMEM;
}

/** Frees a map. */
export function ioasid_map_free(m: u32): void {
  mapFree(m);
}

/** IDs in the map. */
export function ioasid_map_count(m: u32): u32 {
  return mapCount(m);
}

/** The lowest ID in [from, last] that is free (want 0) or a member (want 1); 0xFFFFFFFF if none. */
export function ioasid_search(m: u32, from: u32, last: u32, want: u32): u32 {
  if (from > last) return 0xffffffff;
  return mapSearch(m, from, last, want != 0);
}

/**
 * Allocates `id` (free in g) in the global map and the set map s, with record {sid, 0, flags}:
 * 0, or -ENOMEM with nothing changed.
 */
export function ioasid_insert(g: u32, s: u32, id: u32, sid: i32, flags: u32): i32 {
  if (mapReserve(g, id) < 0) return -ENOMEM;
  if (mapReserve(s, id) < 0) {
    mapTrim(g, id);
    return -ENOMEM;
  }
  const leaf = leafOf(g, id);
  mapSet(g, leaf, id);
  mapSet(s, leafOf(s, id), id);
  const r = recordOf(g, leaf, id);
  store<i32>(r, sid);
  store<u32>(r, 0, 4);
  store<u32>(r, flags, 8);
  return 0;
}

/** Removes an allocated `id` from the global map and its set map s. */
export function ioasid_remove(g: u32, s: u32, id: u32): void {
  mapClear(s, id);
  mapClear(g, id);
}

/** The address of `id`'s record, or 0 when `id` is not allocated. Valid until `id` is removed. */
export function ioasid_record(g: u32, id: u32): u32 {
  if (!mapTest(g, id)) return 0;
  return <u32>recordOf(g, leafOf(g, id), id);
}

/** Up to `max` members of m in [from, last], ascending, as u32 at `out`: how many. */
export function ioasid_collect(m: u32, from: u32, last: u32, out: u32, max: u32): u32 {
  let n: u32 = 0;
  let id = from;
  while (n < max && id <= last) {
    const r = mapSearch(m, id, last, true);
    if (r == 0xffffffff) break;
    store<u32>(<usize>out + (<usize>n << 2), r);
    n++;
    if (r == last) break;
    id = r + 1;
  }
  return n;
}
