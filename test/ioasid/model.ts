// A plain-TS model of docs/conformance.md §15 and §16 (sets, IDs, references, chains, one
// accelerator with SVA), written from the text alone with Maps and Sets, for the random-operation
// test.
const INV = 0xffff_ffff;
const EPERM = 1, ENOENT = 2, ESRCH = 3, ENXIO = 6, EACCES = 13, EBUSY = 16, EEXIST = 17, ENODEV = 19;
const EINVAL = 22, ENOSPC = 28;
void ESRCH;
void ENODEV;

export type Ev = [string, number, number, number, string];
interface MSet { token: string; quota: number; destroying: boolean; owner: string; members: Set<number>; chain: Sub[] }
interface MId { sid: number; pending: boolean; users: number; allocRef: boolean; owner: string; pdata: string | null }
interface Sub { name: string; prio: number }
export interface MQueue { proc: number; qid: number; state: number; bond: boolean; pasid: number }
interface MProc { pasid: number; bonds: number; apiRefs: number; exited: boolean; fds: Map<number, MQueue> }

/** What each named subscriber returns (c stops its chain). */
export const RESULT: Record<string, number | undefined> = { a: undefined, b: 1, c: 0x8001 };

export class Model {
  avail: number;
  readonly sets = new Map<number, MSet>();
  readonly ids = new Map<number, MId>();
  readonly global: Sub[] = [];
  readonly log: Ev[] = [];
  readonly procs = new Map<number, MProc>();
  readonly hw: (MQueue | null)[];

  constructor(capacity: number, sysQuota: number, readonly maxPasids: number, queues: number) {
    this.avail = capacity - sysQuota;
    this.sets.set(0, { token: 'system', quota: sysQuota, destroying: false, owner: 'system', members: new Set(), chain: [] });
    this.hw = new Array<MQueue | null>(queues).fill(null);
  }

  private used(s: MSet): number {
    return s.members.size;
  }

  allocSet(token: string, quota: number): number {
    if (quota <= 0) return -EINVAL;
    if (quota > this.avail) return -ENOSPC;
    let sid = 0;
    while (this.sets.has(sid)) sid++;
    this.sets.set(sid, { token, quota, destroying: false, owner: 'api', members: new Set(), chain: [] });
    this.avail -= quota;
    return sid;
  }

  adjustSet(sid: number, quota: number): number {
    if (quota <= 0) return -EINVAL;
    const s = this.sets.get(sid);
    if (!s || s.destroying) return -EINVAL;
    if (this.used(s) > quota) return -EINVAL;
    if (quota > s.quota && quota - s.quota > this.avail) return -ENOSPC;
    this.avail += s.quota - quota;
    s.quota = quota;
    return 0;
  }

  freeSet(sid: number, destroy: boolean): number {
    const s = this.sets.get(sid);
    if (!s) return -EINVAL;
    if (s.owner !== 'api') return -EPERM;
    if (s.destroying) return -EBUSY;
    for (const id of [...s.members].sort((x, y) => x - y)) if (!this.ids.get(id)!.pending) this.freeId(id);
    if (destroy) {
      if (this.used(s) === 0) this.removeSet(sid);
      else s.destroying = true;
    }
    return 0;
  }

  private removeSet(sid: number): void {
    this.avail += this.sets.get(sid)!.quota;
    this.sets.delete(sid);
  }

  alloc(sid: number, min: number, max: number, pdata: string | null, owner = 'api'): number {
    const s = this.sets.get(sid);
    if (!s || s.destroying || this.used(s) >= s.quota) return INV;
    let id = min;
    const last = Math.min(max, 0xffff_fffe);
    while (id <= last && this.ids.has(id)) id++;
    if (id > last) return INV;
    this.ids.set(id, { sid, pending: false, users: 0, allocRef: true, owner, pdata });
    s.members.add(id);
    this.walk(s.chain, 1, id);
    return id;
  }

  private walk(chain: Sub[], ev: number, id: number): number {
    let last = -1;
    const m = this.ids.get(id)!;
    for (const sub of chain) {
      this.log.push([sub.name, ev, id, m.sid, m.pdata ?? 'null']);
      last = RESULT[sub.name] ?? 0;
      if (last & 0x8000) break;
    }
    return last;
  }

  free(id: number, sid: number): number {
    const m = this.ids.get(id);
    if (!m) return -ENOENT;
    if (sid !== -1 && m.sid !== sid) return -EACCES;
    if (m.owner === 'sva') return -EPERM;
    if (m.pending) return -EBUSY;
    this.freeId(id);
    return 0;
  }

  freeId(id: number): void {
    const m = this.ids.get(id)!;
    m.pending = true;
    this.walk(this.global, 2, id);
    this.walk(this.sets.get(m.sid)!.chain, 2, id);
    m.allocRef = false;
    if (m.users === 0) this.reclaim(id);
  }

  private reclaim(id: number): void {
    const m = this.ids.get(id)!;
    this.ids.delete(id);
    const s = this.sets.get(m.sid)!;
    s.members.delete(id);
    if (s.destroying && this.used(s) === 0) this.removeSet(m.sid);
  }

  get(id: number, sid: number): number {
    const m = this.ids.get(id);
    if (!m) return -EINVAL;
    if (m.pending) return -EBUSY;
    if (sid !== -1 && m.sid !== sid) return -EACCES;
    m.users++;
    return 0;
  }

  put(id: number, sid: number): number {
    const m = this.ids.get(id);
    if (!m) return -EINVAL;
    if (sid !== -1 && m.sid !== sid) return -EACCES;
    if (m.users === 0) return -EINVAL;
    m.users--;
    if (m.users > 0 || m.allocRef) return 0;
    this.reclaim(id);
    return 1;
  }

  addNotifier(name: string, prio: number, sid: number): number {
    let chain = this.global;
    if (sid !== -1) {
      const s = this.sets.get(sid);
      if (!s || s.destroying) return -EINVAL;
      chain = s.chain;
    }
    if (chain.some((x) => x.name === name)) return -EEXIST;
    let i = 0;
    while (i < chain.length && chain[i].prio >= prio) i++;
    chain.splice(i, 0, { name, prio });
    return 0;
  }

  removeNotifier(name: string, sid: number): number {
    let chain = this.global;
    if (sid !== -1) {
      const s = this.sets.get(sid);
      if (!s) return -EINVAL;
      chain = s.chain;
    }
    const i = chain.findIndex((x) => x.name === name);
    if (i < 0) return -ENOENT;
    chain.splice(i, 1);
    return 0;
  }

  notify(id: number, cmd: number): number {
    if (cmd !== 3 && cmd !== 4) return -EINVAL;
    const m = this.ids.get(id);
    if (!m) return -EINVAL;
    if (cmd === 3 && m.pending) return -EBUSY;
    this.walk(this.global, cmd, id);
    const r = this.walk(this.sets.get(m.sid)!.chain, cmd, id);
    return r < 0 ? 0 : r;
  }

  // ---- the accelerator (SVA, no injected errors) ---------------------------------------------

  proc(k: number): MProc {
    let p = this.procs.get(k);
    if (!p) {
      p = { pasid: INV, bonds: 0, apiRefs: 0, exited: false, fds: new Map() };
      this.procs.set(k, p);
    }
    return p;
  }

  private bind(k: number): number {
    const p = this.proc(k);
    if (p.pasid !== INV && p.pasid >= this.maxPasids) return -75;
    if (p.pasid === INV) {
      const id = this.alloc(0, 1, this.maxPasids - 1, `P${k}`, 'sva');
      if (id === INV) return -ENOSPC;
      p.pasid = id;
    }
    p.bonds++;
    return 0;
  }

  private unbind(k: number): void {
    const p = this.proc(k);
    if (--p.bonds === 0 && p.exited) this.freeMm(k);
  }

  private freeMm(k: number): void {
    const p = this.proc(k);
    const id = p.pasid;
    p.pasid = INV;
    if (id !== INV) this.freeId(id);
  }

  open(k: number): number {
    const r = this.bind(k);
    if (r < 0) return r;
    const qid = this.hw.indexOf(null);
    if (qid < 0) {
      this.unbind(k);
      return -EBUSY;
    }
    const p = this.proc(k);
    const q: MQueue = { proc: k, qid, state: 1, bond: true, pasid: p.pasid };
    this.hw[qid] = q;
    let fd = 3;
    while (p.fds.has(fd)) fd++;
    p.fds.set(fd, q);
    return fd;
  }

  start(k: number, fd: number): number {
    const q = this.proc(k).fds.get(fd);
    if (!q) return -9;
    if (q.state === 0) return -ENXIO;
    if (q.state !== 1) return -EINVAL;
    q.state = 2;
    return 0;
  }

  putQ(k: number, fd: number): number {
    const q = this.proc(k).fds.get(fd);
    if (!q) return -9;
    if (q.state === 0) return -ENXIO;
    this.hw[q.qid] = null;
    q.state = 0;
    return 0;
  }

  close(k: number, fd: number): number {
    const p = this.proc(k);
    const q = p.fds.get(fd);
    if (!q) return -9;
    p.fds.delete(fd);
    if (q.state !== 0) {
      this.hw[q.qid] = null;
      q.state = 0;
    }
    if (q.bond) {
      q.bond = false;
      this.unbind(k);
    }
    return 0;
  }

  bindApi(k: number): number {
    if (this.proc(k).exited) return -ESRCH;
    const r = this.bind(k);
    if (r < 0) return r;
    this.proc(k).apiRefs++;
    return 0;
  }

  unbindApi(k: number): number {
    const p = this.proc(k);
    if (p.apiRefs === 0) return -EINVAL;
    p.apiRefs--;
    this.unbind(k);
    return 0;
  }

  exit(k: number): void {
    const p = this.proc(k);
    for (const fd of [...p.fds.keys()].sort((a, b) => a - b)) this.close(k, fd);
    p.exited = true;
    if (p.bonds === 0) this.freeMm(k);
  }
}
