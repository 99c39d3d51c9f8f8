// The allocator's acceptance vectors (group A), by name; the rules are in docs/conformance.md §15.
import { describe, expect, it } from 'vitest';
import { createEngine, errno, uapi } from '../../src/index.js';
import type { IoasidNbArgs } from '../../src/ioasid/ioasid.js';

const { EINVAL, ENOSPC, EBUSY, EEXIST, EACCES, ENOENT, EPERM, EDEADLK } = errno;
const INV = uapi.INVALID_IOASID;
const cap100 = () => createEngine({ ioasidCapacity: 100, ioasidSystemQuota: 0 });

type Call = [string, number, IoasidNbArgs];
/** A subscriber that logs (name, event, args) into `log` and returns `ret()`. */
function sub(name: string, log: Call[], ret: () => number | void = () => undefined) {
  return (e: number, a: IoasidNbArgs) => {
    log.push([name, e, a]);
    return ret();
  };
}
const names = (log: Call[]) => log.map((c) => c[0]);

describe('allocator vectors A', () => {
  it('V1. Capacity and sets', async () => {
    const e = await createEngine({ ioasidCapacity: 0 });
    const io = e.ioasid;
    expect(io.getCapacity()).toBe(0);
    expect(io.systemSid).toBe(-1);
    expect(io.allocSet('T1', 5)).toBe(-ENOSPC);
    expect(io.allocSystemSet(1)).toBe(-ENOSPC);
    expect(io.installCapacity(100)).toBe(0);
    expect(io.getAvailable()).toBe(100);
    expect(io.installCapacity(200)).toBe(-EBUSY);
    expect(io.installCapacity(0)).toBe(-EINVAL);
    expect(io.allocSet('T1', 30)).toBe(0);
    expect(io.getAvailable()).toBe(70);
    expect(io.allocSet('T2', 71)).toBe(-ENOSPC);
    expect(io.allocSet('T2', 0)).toBe(-EINVAL);
    expect(io.allocSet('T2', -1)).toBe(-EINVAL);
    expect(io.allocSet('T2', 20)).toBe(1);
    expect(io.getAvailable()).toBe(50);
    expect(io.allocSet('T3', 50)).toBe(2);
    expect(io.getAvailable()).toBe(0);
    expect(io.allocSet('T4', 1)).toBe(-ENOSPC);
  });

  it('V2. Lowest free, never cyclic', async () => {
    const io = (await createEngine()).ioasid;
    const [pA, pB, pC, pD] = [{ a: 1 }, { b: 1 }, { c: 1 }, { d: 1 }];
    expect(io.allocSet('T', 10)).toBe(1);
    expect(io.alloc(1, 1, 3, pA)).toBe(1);
    expect(io.alloc(1, 1, 3, pB)).toBe(2);
    expect(io.alloc(1, 1, 3, pC)).toBe(3);
    expect(io.alloc(1, 1, 3)).toBe(INV);
    expect(io.free(2)).toBe(0);
    expect(io.alloc(1, 1, 3, pD)).toBe(2);
    expect(io.find(-1, 2)).toBe(pD);
  });

  it('V4. Find and private data', async () => {
    const io = (await createEngine()).ioasid;
    const P = { p: 1 };
    const Q = { q: 1 };
    expect(io.allocSet('T1', 10)).toBe(1);
    expect(io.allocSet('T2', 10)).toBe(2);
    expect(io.alloc(1, 10, 20, P)).toBe(10);
    expect(io.alloc(2, 10, 20)).toBe(11);
    expect(io.find(1, 10)).toBe(P);
    expect(io.find(-1, 10)).toBe(P);
    expect(io.find(2, 10)).toBe(-EACCES);
    expect(io.find(1, 11)).toBe(-EACCES);
    expect(io.find(-1, 11)).toBe(null);
    expect(io.find(1, 12)).toBe(-ENOENT);
    expect(io.find(1, 10, () => false)).toBe(null);
    expect(io.attachData(10, Q)).toBe(0);
    expect(io.find(-1, 10)).toBe(Q);
    expect(io.attachData(12, Q)).toBe(-ENOENT);
    expect(io.findSid(10)).toBe(1);
    expect(io.findSid(11)).toBe(2);
    expect(io.findSid(12)).toBe(-ENOENT);
    expect(() => io.alloc(1, 10, 20, 5 as unknown as object)).toThrow(TypeError);
  });

  it('V6. Adjusting a quota', async () => {
    const io = (await cap100()).ioasid;
    expect(io.allocSet('TA', 30)).toBe(0);
    expect([io.alloc(0, 1, 100), io.alloc(0, 1, 100), io.alloc(0, 1, 100)]).toEqual([1, 2, 3]);
    expect(io.getAvailable()).toBe(70);
    expect(io.adjustSet(0, 2)).toBe(-EINVAL);
    expect(io.adjustSet(0, 40)).toBe(0);
    expect(io.getAvailable()).toBe(60);
    expect(io.adjustSet(0, 100)).toBe(0);
    expect(io.getAvailable()).toBe(0);
    expect(io.adjustSet(0, 101)).toBe(-ENOSPC);
    expect(io.adjustSet(0, 50)).toBe(0);
    expect(io.getAvailable()).toBe(50);
    expect(io.adjustSet(0, 3)).toBe(0);
    expect(io.getAvailable()).toBe(97);
    expect(io.alloc(0, 1, 100)).toBe(INV);
    expect(io.adjustSet(0, 0)).toBe(-EINVAL);
    expect(io.adjustSet(0, -1)).toBe(-EINVAL);
    expect(io.adjustSet(9, 10)).toBe(-EINVAL);
  });

  it('V7. Freeing a set and keeping it', async () => {
    const io = (await cap100()).ioasid;
    const log: Call[] = [];
    const [p1, p2, p3] = [{ n: 1 }, { n: 2 }, { n: 3 }];
    expect(io.allocSet('TA', 10)).toBe(0);
    const M = sub('M', log);
    expect(io.addNotifier(M, { sid: 0 })).toBe(0);
    expect([io.alloc(0, 1, 100, p1), io.alloc(0, 1, 100, p2), io.alloc(0, 1, 100, p3)]).toEqual([1, 2, 3]);
    expect(log).toEqual([
      ['M', 1, { id: 1, sid: 0, token: 'TA', pdata: p1 }],
      ['M', 1, { id: 2, sid: 0, token: 'TA', pdata: p2 }],
      ['M', 1, { id: 3, sid: 0, token: 'TA', pdata: p3 }],
    ]);
    log.length = 0;
    expect(io.addNotifier(sub('G', log))).toBe(0);
    expect(io.freeSet(0, false)).toBe(0);
    const f = (id: number, p: object) => ({ id, sid: 0, token: 'TA', pdata: p });
    expect(log).toEqual([
      ['G', 2, f(1, p1)], ['M', 2, f(1, p1)], ['G', 2, f(2, p2)], ['M', 2, f(2, p2)],
      ['G', 2, f(3, p3)], ['M', 2, f(3, p3)],
    ]);
    expect(log[0][2]).toBe(log[1][2]); // one payload object for both chains
    expect(Object.isFrozen(log[0][2])).toBe(true);
    for (const id of [1, 2, 3]) expect(io.find(-1, id)).toBe(-ENOENT);
    expect(io.setInfo(0)).toEqual({ sid: 0, token: 'TA', quota: 10, used: 0, destroying: false, owner: 'api' });
    expect(io.getAvailable()).toBe(90);
    log.length = 0;
    expect(io.alloc(0, 1, 100)).toBe(1);
    expect(log).toEqual([['M', 1, { id: 1, sid: 0, token: 'TA', pdata: null }]]);
  });

  describe('V9. Chain order, stop and results', () => {
    async function setup(ret: Record<string, () => number | void>) {
      const io = (await createEngine()).ioasid;
      const p = { p: 1 };
      expect(io.allocSet('T', 10)).toBe(1);
      expect(io.alloc(1, 1, 10, p)).toBe(1);
      const log: Call[] = [];
      const r = (n: string) => ret[n] ?? (() => undefined);
      expect(io.addNotifier(sub('X', log, r('X')), { priority: 0 })).toBe(0);
      expect(io.addNotifier(sub('Y', log, r('Y')), { priority: 0 })).toBe(0);
      expect(io.addNotifier(sub('Z', log, r('Z')), { priority: 10 })).toBe(0);
      expect(io.addNotifier(sub('K', log, r('K')), { priority: 3, sid: 1 })).toBe(0);
      expect(io.addNotifier(sub('L', log, r('L')), { priority: 1, sid: 1 })).toBe(0);
      return { io, log, p };
    }
    const OK = () => uapi.NOTIFY_OK;
    const all = { X: OK, Y: OK, Z: OK, K: OK, L: OK };

    it('1. all NOTIFY_OK', async () => {
      const { io, log, p } = await setup(all);
      expect(io.notify(1, 3)).toBe(1);
      expect(names(log)).toEqual(['Z', 'X', 'Y', 'K', 'L']);
      for (const c of log) expect([c[1], c[2]]).toEqual([3, { id: 1, sid: 1, token: 'T', pdata: p }]);
    });
    it('2. X returns NOTIFY_STOP', async () => {
      const { io, log } = await setup({ ...all, X: () => uapi.NOTIFY_STOP });
      expect(io.notify(1, 3)).toBe(1);
      expect(names(log)).toEqual(['Z', 'X', 'K', 'L']);
    });
    it('3. K returns NOTIFY_BAD', async () => {
      const { io, log } = await setup({ ...all, K: () => uapi.NOTIFY_BAD });
      expect(io.notify(1, 3)).toBe(0x8002);
      expect(names(log)).toEqual(['Z', 'X', 'Y', 'K']);
    });
    it('4. all undefined', async () => {
      const { io, log } = await setup({});
      expect(io.notify(1, 3)).toBe(0);
      log.length = 0;
      expect(io.notify(1, 4)).toBe(0);
      expect(log.map((c) => [c[0], c[1]])).toEqual([['Z', 4], ['X', 4], ['Y', 4], ['K', 4], ['L', 4]]);
    });
    it('5. bad commands and ids call nobody', async () => {
      const { io, log } = await setup({});
      expect(io.notify(999, 3)).toBe(-EINVAL);
      for (const cmd of [1, 2, 5]) expect(io.notify(1, cmd)).toBe(-EINVAL);
      expect(log).toEqual([]);
    });
  });

  it('V10. FREE before release; re-entrance; deferred work', async () => {
    const io = (await createEngine()).ioasid;
    const [p, q] = [{ p: 1 }, { q: 1 }];
    expect(io.allocSet('T', 10)).toBe(1);
    expect(io.alloc(1, 1, 10, p)).toBe(1);
    expect(io.alloc(1, 1, 10, q)).toBe(2);
    const seen: unknown[] = [];
    const order: number[] = [];
    let wFree: number | undefined;
    const W = () => {
      wFree = io.free(2);
    };
    io.addNotifier((e, a) => {
      order.push(a.id);
      if (a.id !== 1) return;
      seen.push(io.find(-1, 1), io.free(2), io.alloc(1, 1, 10), io.idInfo(1)?.state, io.get(1), io.put(1),
        io.queueWork(W));
    });
    expect(io.free(1)).toBe(0);
    expect(seen).toEqual([p, -EDEADLK, INV, 'free-pending', -EBUSY, -EINVAL, 0]);
    expect(order).toEqual([1, 2]);
    expect(wFree).toBe(0);
    expect(io.find(-1, 1)).toBe(-ENOENT);
    expect(io.find(-1, 2)).toBe(-ENOENT);
    expect(io.setInfo(1)!.used).toBe(0);
  });

  it('V11. The system set', async () => {
    const io = (await createEngine()).ioasid;
    expect(io.getCapacity()).toBe(1048576);
    expect(io.systemSid).toBe(0);
    expect(io.setInfo(0)).toEqual({
      sid: 0, quota: 32768, used: 0, owner: 'system', token: io.systemToken, destroying: false,
    });
    expect(Object.isFrozen(io.systemToken)).toBe(true);
    expect(io.getAvailable()).toBe(1015808);
    expect(io.allocSystemSet(10)).toBe(-EEXIST);
    expect(io.installCapacity(0x200000)).toBe(-EBUSY);
    expect(io.allocSet('vm1', 1000)).toBe(1);
    expect(io.getAvailable()).toBe(1014808);
    expect(io.freeSet(0, false)).toBe(-EPERM);
    expect(io.freeSet(0, true)).toBe(-EPERM);
    expect(io.adjustSet(0, 32000)).toBe(0);
    expect(io.getAvailable()).toBe(1015576);
    await expect(createEngine({ ioasidCapacity: 100 })).rejects.toThrow(RangeError);
  });

  it('V12. References and FREE_PENDING', async () => {
    const io = (await createEngine()).ioasid;
    const [p, q] = [{ p: 1 }, { q: 1 }];
    expect(io.allocSet('mm1', 10)).toBe(1);
    expect(io.allocSet('h', 5)).toBe(2);
    const log: Call[] = [];
    io.addNotifier(sub('G', log));
    expect(io.alloc(1, 1, 100, p)).toBe(1);
    expect(io.get(1)).toBe(0);
    expect(io.get(1, 2)).toBe(-EACCES);
    expect(io.get(1, 1)).toBe(0);
    expect(io.put(1)).toBe(0);
    expect(io.idInfo(1)!.users).toBe(1);
    expect(io.put(1, 2)).toBe(-EACCES);
    expect(io.free(1, 2)).toBe(-EACCES);
    expect(io.free(1, 1)).toBe(0);
    expect(log).toEqual([['G', 2, { id: 1, sid: 1, token: 'mm1', pdata: p }]]);
    expect(io.idInfo(1)).toEqual({ id: 1, sid: 1, state: 'free-pending', users: 1, pdata: p, owner: 'api' });
    expect(io.find(1, 1)).toBe(p);
    expect(io.get(1)).toBe(-EBUSY);
    expect(io.free(1)).toBe(-EBUSY);
    expect(io.notify(1, 3)).toBe(-EBUSY);
    expect(io.notify(1, 4)).toBe(0);
    expect(log[1]).toEqual(['G', 4, { id: 1, sid: 1, token: 'mm1', pdata: p }]);
    expect(io.setInfo(1)!.used).toBe(1);
    expect(io.alloc(1, 1, 100, q)).toBe(2);
    expect(io.put(1)).toBe(1);
    expect(io.find(1, 1)).toBe(-ENOENT);
    expect(io.setInfo(1)!.used).toBe(1);
    expect(log.filter((c) => c[1] === 2 && c[2].id === 1)).toHaveLength(1);
  });

  it('V15. Two chains', async () => {
    const io = (await createEngine()).ioasid;
    const log: Call[] = [];
    const p = { p: 1 };
    expect(io.allocSet('vm1', 10)).toBe(1);
    io.addNotifier(sub('IOMMU', log), { priority: 2 });
    io.addNotifier(sub('KVM', log), { priority: 3, sid: 1 });
    io.addNotifier(sub('VDCM', log), { priority: 1, sid: 1 });
    const step = (f: () => number, want: number, who: string[]) => {
      log.length = 0;
      expect(f()).toBe(want);
      expect(names(log)).toEqual(who);
    };
    step(() => io.alloc(1, 1, 100, p), 1, ['KVM', 'VDCM']);
    step(() => io.notify(1, 3), 0, ['IOMMU', 'KVM', 'VDCM']);
    step(() => io.get(1), 0, []);
    step(() => io.free(1), 0, ['IOMMU', 'KVM', 'VDCM']);
    step(() => io.put(1), 1, []);
    step(() => io.alloc(1, 1, 100), 1, ['KVM', 'VDCM']);
    step(() => io.free(1), 0, ['IOMMU', 'KVM', 'VDCM']);
  });
});
