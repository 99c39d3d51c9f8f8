// The IOASID allocator (`engine.ioasid`, docs/conformance.md §15): capacity, sets with quotas, IDs
// with references and the FREE_PENDING state, notifier chains, and what a callback may call. IDs
// and set membership live in the Wasm core (IdTable); sets, tokens and chains on the host.
import {
  EACCES, EBUSY, EDEADLK, EEXIST, EINVAL, ENOENT, ENOSPC, EPERM,
} from '../../assembly/constants.js';
import type { Calls } from './calls.js';
import { ALLOC_REF, FREE_PENDING, IdTable, NO_ID, type IdOwner } from './id_table.js';
import { Chain, type IoasidNbArgs, type IoasidNotifier } from './notifier.js';
import {
  checkFn, checkId, checkInt, checkPdata, checkSid, INV, setInfoOf, type IoasidSet, type SetInfo,
  type SetOwner,
} from './set.js';
import type { Core } from '../wasm.js';

export type { IoasidNbArgs, IoasidNotifier } from './notifier.js';
export type { SetInfo } from './set.js';

const IOASID_ALLOC = 1;
const IOASID_FREE = 2;
const IOASID_BIND = 3;
const IOASID_UNBIND = 4;
const ID_MAX = 0xffff_fffe;

/** idInfo(id). */
export interface IdInfo {
  id: number;
  sid: number;
  state: 'active' | 'free-pending';
  users: number;
  pdata: object | null;
  owner: IdOwner;
}

export class Ioasid {
  /** The token of the system set: fixed for the engine. */
  readonly systemToken: object = Object.freeze({ name: 'ioasid-system-set' });
  private capacity = 0;
  private avail = 0;
  private sysSid = -1;
  private readonly sets = new Map<number, IoasidSet>();
  private readonly global = new Chain();
  /** The ID tables in the core. */
  readonly ids: IdTable;
  readonly calls: Calls;

  constructor(core: Core, calls: Calls) {
    this.ids = new IdTable(core);
    this.calls = calls;
  }

  /** The system set's sid, or -1. */
  get systemSid(): number {
    return this.sysSid;
  }

  /** Installs the capacity once (docs/conformance.md §15.1). 0 or -EDEADLK, -EINVAL, -EBUSY. */
  installCapacity(total: number): number {
    checkInt(total, 'total');
    if (this.calls.inCallback) return -EDEADLK;
    if (total < 1 || total > 0xffff_ffff) return -EINVAL;
    if (this.capacity !== 0) return -EBUSY;
    this.capacity = this.avail = total;
    return 0;
  }

  /** The number of IDs all sets together may reserve. */
  getCapacity(): number {
    return this.capacity;
  }

  /** IDs not promised to any set: the capacity less every set's quota. */
  getAvailable(): number {
    return this.avail;
  }

  /** The system set (docs/conformance.md §15.1): its sid, or -EDEADLK / -EEXIST / as allocSet. */
  allocSystemSet(quota: number): number {
    checkInt(quota, 'quota');
    if (this.calls.inCallback) return -EDEADLK;
    if (this.sysSid !== -1) return -EEXIST;
    const sid = this.newSet(this.systemToken, quota, 'system');
    if (sid >= 0) this.sysSid = sid;
    return sid;
  }

  /** A new set with the lowest free sid (docs/conformance.md §15.2); its sid or -errno. */
  allocSet(token: unknown, quota: number): number {
    checkInt(quota, 'quota');
    if (this.calls.inCallback) return -EDEADLK;
    return this.newSet(token, quota, 'api');
  }

  /**
   * Set creation after the callback check (docs/conformance.md §15.2; also the VM sets of §15.6).
   */
  newSet(token: unknown, quota: number, owner: SetOwner): number {
    if (quota <= 0) return -EINVAL;
    if (quota > this.avail) return -ENOSPC;
    const map = this.ids.newSetMap();
    if (map < 0) return map;
    let sid = 0;
    while (this.sets.has(sid)) sid++;
    this.sets.set(sid, { sid, token, quota, destroying: false, owner, map, chain: new Chain() });
    this.avail -= quota;
    return sid;
  }

  /** A set's new quota (docs/conformance.md §15.2): 0, or -EDEADLK / -EINVAL / -ENOSPC. */
  adjustSet(sid: number, quota: number): number {
    checkInt(sid, 'sid');
    checkInt(quota, 'quota');
    if (this.calls.inCallback) return -EDEADLK;
    if (quota <= 0) return -EINVAL;
    const s = this.liveSet(sid);
    if (!s) return -EINVAL;
    if (this.ids.count(s.map) > quota) return -EINVAL;
    if (quota > s.quota && quota - s.quota > this.avail) return -ENOSPC;
    this.avail += s.quota - quota;
    s.quota = quota;
    return 0;
  }

  /** Frees a set's active IDs and maybe the set (docs/conformance.md §15.2): 0 or -errno. */
  freeSet(sid: number, destroy: boolean): number {
    checkInt(sid, 'sid');
    if (typeof destroy !== 'boolean') throw new TypeError('freeSet: destroy must be a boolean');
    if (this.calls.inCallback) return -EDEADLK;
    const s = this.sets.get(sid);
    if (!s) return -EINVAL;
    if (s.owner !== 'api') return -EPERM;
    if (s.destroying) return -EBUSY;
    this.releaseSet(s, destroy);
    return 0;
  }

  /**
   * freeSet after its checks, and the release of a VM set (docs/conformance.md §15.6): frees every
   * ACTIVE ID ascending, then maybe destroys.
   */
  releaseSet(s: IoasidSet, destroy: boolean): void {
    this.freeRange(s, 0, ID_MAX);
    if (!destroy) return;
    if (this.ids.count(s.map) === 0) this.removeSet(s);
    else s.destroying = true;
  }

  /** Frees (as `free` does) every ACTIVE ID of set s in [min, max], ascending. */
  freeRange(s: IoasidSet, min: number, max: number): void {
    this.ids.forEachMember(s.map, min, max, (id) => {
      const rec = this.ids.record(id);
      if (rec && !(this.ids.flagsAt(rec) & FREE_PENDING)) this.freeId(id, rec);
    });
  }

  /** Removes a set: its sid free again, its quota back in the available pool, its chain gone. */
  private removeSet(s: IoasidSet): void {
    this.sets.delete(s.sid);
    this.avail += s.quota;
    this.ids.freeSetMap(s.map);
    if (s.sid === this.sysSid) this.sysSid = -1;
  }

  /** `{ sid, token, quota, used, destroying, owner }` of set `sid`, or null. */
  setInfo(sid: number): SetInfo | null {
    checkInt(sid, 'sid');
    const s = this.sets.get(sid);
    return s ? setInfoOf(s, this.ids.count(s.map)) : null;
  }

  /** Every set, LIVE or destroying, by ascending sid (for inspection). */
  allSets(): IoasidSet[] {
    return [...this.sets.values()].sort((a, b) => a.sid - b.sid);
  }

  /** The IDs of set `s`, ascending (for inspection). */
  members(s: IoasidSet): number[] {
    const out: number[] = [];
    this.ids.forEachMember(s.map, 0, ID_MAX, (id) => out.push(id));
    return out;
  }

  /** The set `sid` if it is LIVE. */
  liveSet(sid: number): IoasidSet | undefined {
    const s = this.sets.get(sid);
    return s && !s.destroying ? s : undefined;
  }

  /**
   * The lowest free ID >= min in [min, max] for set `sid` (docs/conformance.md §15.3), or
   * INVALID_IOASID with nothing changed.
   */
  alloc(sid: number, min: number, max: number, pdata?: object | null): number {
    checkInt(sid, 'sid');
    checkId(min, 'min');
    checkId(max, 'max');
    const p = checkPdata(pdata);
    if (this.calls.inCallback) return INV;
    const id = this.allocIn(sid, min, max, p, 'api');
    return id < 0 ? INV : id;
  }

  /**
   * `alloc` after the argument and callback checks (also SVA and VFIO PASIDs): the ID, INV, or
   * -ENOMEM when the core cannot back it (nothing changed either way).
   */
  allocIn(sid: number, min: number, max: number, pdata: object | null, owner: IdOwner): number {
    const s = this.liveSet(sid);
    if (!s || this.ids.count(s.map) >= s.quota) return INV;
    const id = this.ids.lowestFree(min, Math.min(max, ID_MAX));
    if (id === NO_ID) return INV;
    const r = this.ids.insert(s.map, id, sid, owner, pdata);
    if (r < 0) return r;
    s.chain.walk(this.calls, IOASID_ALLOC, this.payload(s, id));
    return id;
  }

  /**
   * Frees an ID (docs/conformance.md §15.3): 0, or -EDEADLK / -ENOENT / -EACCES / -EPERM /
   * -EBUSY.
   */
  free(id: number, sid = -1): number {
    checkId(id, 'id');
    checkSid(sid);
    if (this.calls.inCallback) return -EDEADLK;
    const rec = this.ids.record(id);
    if (!rec) return -ENOENT;
    if (sid !== -1 && this.ids.sidAt(rec) !== sid) return -EACCES;
    if (this.ids.ownerAt(rec) === 'sva') return -EPERM;
    if (this.ids.flagsAt(rec) & FREE_PENDING) return -EBUSY;
    this.freeId(id, rec);
    return 0;
  }

  /**
   * `free` after its checks: FREE_PENDING, the FREE to the global then the set chain, then the
   * allocation reference is dropped and the ID reclaimed if nobody holds it.
   */
  freeId(id: number, rec: number): void {
    const ids = this.ids;
    ids.setFlags(rec, ids.flagsAt(rec) | FREE_PENDING);
    const s = this.sets.get(ids.sidAt(rec))!;
    if (this.global.size || s.chain.size) {
      const args = this.payload(s, id);
      this.global.walk(this.calls, IOASID_FREE, args);
      s.chain.walk(this.calls, IOASID_FREE, args);
    } // the record stays put: the allocation reference keeps the ID through the walks, so
      // no number is reclaimed while a FREE about it is delivered
    ids.setFlags(rec, ids.flagsAt(rec) & ~ALLOC_REF);
    if (ids.usersAt(rec) === 0) this.reclaim(s, id);
  }

  /** Reclaims an ID: its number may be handed out again; the set counts one ID less. */
  private reclaim(s: IoasidSet, id: number): void {
    this.ids.remove(s.map, id);
    if (s.destroying && this.ids.count(s.map) === 0) this.removeSet(s);
  }

  /** One more user of an ID: 0, or -EINVAL (not allocated) / -EBUSY (free-pending) / -EACCES. */
  get(id: number, sid = -1): number {
    checkId(id, 'id');
    checkSid(sid);
    const rec = this.ids.record(id);
    if (!rec) return -EINVAL;
    if (this.ids.flagsAt(rec) & FREE_PENDING) return -EBUSY;
    if (sid !== -1 && this.ids.sidAt(rec) !== sid) return -EACCES;
    this.ids.setUsers(rec, this.ids.usersAt(rec) + 1);
    return 0;
  }

  /** One user less: 1 when that reclaimed the ID, else 0, or -EINVAL / -EACCES. */
  put(id: number, sid = -1): number {
    checkId(id, 'id');
    checkSid(sid);
    const ids = this.ids;
    const rec = ids.record(id);
    if (!rec) return -EINVAL;
    const owner = ids.sidAt(rec);
    if (sid !== -1 && owner !== sid) return -EACCES;
    const users = ids.usersAt(rec);
    if (users === 0) return -EINVAL;
    ids.setUsers(rec, users - 1);
    if (users > 1 || ids.flagsAt(rec) & ALLOC_REF) return 0;
    this.reclaim(this.sets.get(owner)!, id);
    return 1;
  }

  /** The private data (null when a getter answers falsy), or -ENOENT / -EACCES. */
  find(sid: number, id: number, getter?: (pdata: object | null) => boolean): object | null | number {
    checkSid(sid);
    checkId(id, 'id');
    if (getter !== undefined) checkFn(getter, 'getter');
    const rec = this.ids.record(id);
    if (!rec) return -ENOENT;
    if (sid !== -1 && this.ids.sidAt(rec) !== sid) return -EACCES;
    const p = this.ids.pdataOf(id);
    if (!getter) return p;
    return this.calls.callback(() => getter(p), false) ? p : null;
  }

  /** The sid of an ID's set, or -ENOENT. */
  findSid(id: number): number {
    checkId(id, 'id');
    const rec = this.ids.record(id);
    return rec ? this.ids.sidAt(rec) : -ENOENT;
  }

  /** Replaces an ID's private data: 0, or -EDEADLK / -ENOENT / -EPERM (a process's PASID). */
  attachData(id: number, data: object | null): number {
    checkId(id, 'id');
    const p = checkPdata(data);
    if (this.calls.inCallback) return -EDEADLK;
    const rec = this.ids.record(id);
    if (!rec) return -ENOENT;
    if (this.ids.ownerAt(rec) === 'sva') return -EPERM;
    this.ids.setPdata(id, p);
    return 0;
  }

  /** `{ id, sid, state, users, pdata, owner }` of an allocated ID, or null. */
  idInfo(id: number): IdInfo | null {
    checkId(id, 'id');
    const ids = this.ids;
    const rec = ids.record(id);
    if (!rec) return null;
    return {
      id,
      sid: ids.sidAt(rec),
      state: ids.flagsAt(rec) & FREE_PENDING ? 'free-pending' : 'active',
      users: ids.usersAt(rec),
      pdata: ids.pdataOf(id),
      owner: ids.ownerAt(rec),
    };
  }

  /**
   * Subscribes `nb` to the global chain (sid -1) or a LIVE set's (docs/conformance.md §15.4): 0,
   * or -EDEADLK / -EINVAL / -EEXIST.
   */
  addNotifier(nb: IoasidNotifier, o: { priority?: number; sid?: number } = {}): number {
    checkFn(nb, 'nb');
    const priority = o.priority ?? 0;
    const sid = o.sid ?? -1;
    checkInt(priority, 'priority');
    checkSid(sid);
    if (this.calls.inCallback) return -EDEADLK;
    let chain = this.global;
    if (sid !== -1) {
      const s = this.liveSet(sid);
      if (!s) return -EINVAL;
      chain = s.chain;
    }
    if (chain.has(nb)) return -EEXIST;
    chain.add(nb, priority);
    return 0;
  }

  /** Unsubscribes `nb`: 0, or -EDEADLK / -EINVAL (no set) / -ENOENT (not on that chain). */
  removeNotifier(nb: IoasidNotifier, o: { sid?: number } = {}): number {
    checkFn(nb, 'nb');
    const sid = o.sid ?? -1;
    checkSid(sid);
    if (this.calls.inCallback) return -EDEADLK;
    let chain = this.global;
    if (sid !== -1) {
      const s = this.sets.get(sid);
      if (!s) return -EINVAL;
      chain = s.chain;
    }
    return chain.remove(nb) ? 0 : -ENOENT;
  }

  /**
   * BIND or UNBIND to the global then the set chain (docs/conformance.md §15.4); the set chain's
   * last result.
   */
  notify(id: number, cmd: number): number {
    checkId(id, 'id');
    checkInt(cmd, 'cmd');
    if (this.calls.inCallback) return -EDEADLK;
    if (cmd !== IOASID_BIND && cmd !== IOASID_UNBIND) return -EINVAL;
    const rec = this.ids.record(id);
    if (!rec) return -EINVAL;
    if (cmd === IOASID_BIND && this.ids.flagsAt(rec) & FREE_PENDING) return -EBUSY;
    const s = this.sets.get(this.ids.sidAt(rec))!;
    const args = this.payload(s, id);
    this.global.walk(this.calls, cmd, args);
    const r = s.chain.walk(this.calls, cmd, args);
    return r < 0 ? 0 : r;
  }

  /** Appends `fn` to the work queue, run by the outermost engine call (§15.5); 0. */
  queueWork(fn: () => void): number {
    checkFn(fn, 'fn');
    this.calls.queue(fn);
    return 0;
  }

  /** The payload of one notification about `id`: one frozen `{ id, sid, token, pdata }`. */
  private payload(s: IoasidSet, id: number): IoasidNbArgs {
    return Object.freeze({ id, sid: s.sid, token: s.token, pdata: this.ids.pdataOf(id) });
  }
}

// Every public call is one engine call (docs/conformance.md §15.5): the outermost one drains the
// work queue and rethrows the first exception a callback threw.
for (const name of [
  'installCapacity', 'allocSystemSet', 'allocSet', 'adjustSet', 'freeSet', 'alloc', 'free', 'get',
  'put', 'find', 'attachData', 'addNotifier', 'removeNotifier', 'notify', 'queueWork',
] as const) {
  const f = Ioasid.prototype[name] as (...a: unknown[]) => unknown;
  Object.defineProperty(Ioasid.prototype, name, {
    value: function (this: Ioasid, ...a: unknown[]): unknown {
      const c = this.calls;
      c.enter();
      try {
        return f.apply(this, a);
      } finally {
        c.leave();
      }
    },
    writable: true,
    configurable: true,
  });
}
