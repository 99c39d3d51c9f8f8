// The IOASID allocator (docs/conformance.md §15), rule by rule: every invalid input with its exact
// result and an unchanged state.
import { describe, expect, it } from 'vitest';
import { createEngine, errno, uapi, type Ioasid } from '../../src/index.js';

const { EINVAL, ENOSPC, EBUSY, EEXIST, EACCES, ENOENT, EPERM } = errno;
const INV = uapi.INVALID_IOASID;

/** Everything observable of the allocator for sids 0..7 and ids 0..15 (plus two far ids). */
function snap(io: Ioasid) {
  const ids = [...Array(16).keys(), 0x7fff_ffff, 0xffff_fffe];
  return {
    cap: io.getCapacity(), avail: io.getAvailable(), sys: io.systemSid,
    sets: [...Array(8).keys()].map((s) => io.setInfo(s)),
    ids: ids.map((i) => io.idInfo(i)),
  };
}

/** Calls fn, expects `want`, and that nothing observable changed. */
function refused(io: Ioasid, want: unknown, fn: () => unknown): void {
  const before = snap(io);
  expect(fn()).toBe(want);
  expect(snap(io)).toEqual(before);
}

async function twoSets() {
  const e = await createEngine({ ioasidCapacity: 100, ioasidSystemQuota: 0 });
  const io = e.ioasid;
  expect(io.allocSet('A', 10)).toBe(0);
  expect(io.allocSet('B', 10)).toBe(1);
  return { e, io };
}

describe('C: capacity and the system set', () => {
  it('installCapacity rejects 0, 2^32 and a second install; getCapacity counts ids', async () => {
    const io = (await createEngine({ ioasidCapacity: 0 })).ioasid;
    refused(io, -EINVAL, () => io.installCapacity(0));
    refused(io, -EINVAL, () => io.installCapacity(-5));
    refused(io, -EINVAL, () => io.installCapacity(0x1_0000_0000));
    expect(io.installCapacity(0xffff_ffff)).toBe(0);
    refused(io, -EBUSY, () => io.installCapacity(1));
    expect([io.getCapacity(), io.getAvailable()]).toEqual([0xffff_ffff, 0xffff_ffff]);
  });

  it.each([
    [{ ioasidCapacity: 1.5 }], [{ ioasidCapacity: -1 }], [{ ioasidCapacity: 2 ** 32 }],
    [{ ioasidSystemQuota: -1 }], [{ ioasidSystemQuota: 0.5 }], [{ vfioPasidQuota: 0 }],
    [{ vfioPasidQuota: 2 ** 32 }], [{ ioasidCapacity: 10, ioasidSystemQuota: 11 }],
  ])('C3: createEngine(%j) rejects with a RangeError', async (o) => {
    await expect(createEngine(o)).rejects.toThrow(RangeError);
  });

  it('capacity without a system set; allocSystemSet order: EEXIST before the quota checks', async () => {
    const io = (await createEngine({ ioasidCapacity: 50, ioasidSystemQuota: 0 })).ioasid;
    expect([io.getCapacity(), io.getAvailable(), io.systemSid]).toEqual([50, 50, -1]);
    refused(io, -EINVAL, () => io.allocSystemSet(0));
    refused(io, -ENOSPC, () => io.allocSystemSet(51));
    expect(io.allocSet('x', 5)).toBe(0);
    expect(io.allocSystemSet(45)).toBe(1);
    expect(io.systemSid).toBe(1);
    expect(io.setInfo(1)).toEqual({ sid: 1, token: io.systemToken, quota: 45, used: 0, destroying: false, owner: 'system' });
    refused(io, -EEXIST, () => io.allocSystemSet(0));
  });
});

describe('S: sets', () => {
  it('allocSet: the lowest free sid is reused; tokens are stored, not checked', async () => {
    const { io } = await twoSets();
    expect(io.allocSet('A', 1)).toBe(2);
    expect(io.freeSet(0, true)).toBe(0);
    expect(io.allocSet('A', 1)).toBe(0);
    expect(io.setInfo(0)!.token).toBe('A');
    expect(io.allocSet(undefined, 1)).toBe(3);
    expect(io.setInfo(3)!.token).toBe(undefined);
  });

  it('adjustSet: used > quota, unknown and DESTROYING sets are EINVAL; quota == used is allowed', async () => {
    const { io } = await twoSets();
    expect(io.alloc(0, 1, 10)).toBe(1);
    expect(io.alloc(0, 1, 10)).toBe(2);
    refused(io, -EINVAL, () => io.adjustSet(0, 1));
    refused(io, -EINVAL, () => io.adjustSet(7, 1));
    refused(io, -ENOSPC, () => io.adjustSet(0, 91));
    expect(io.adjustSet(0, 2)).toBe(0);
    expect(io.getAvailable()).toBe(88);
    expect(io.get(1)).toBe(0);
    expect(io.freeSet(0, true)).toBe(0);
    expect(io.setInfo(0)!.destroying).toBe(true);
    refused(io, -EINVAL, () => io.adjustSet(0, 5));
  });

  it('freeSet: a referenced ID keeps its set DESTROYING until its last put; then the quota returns', async () => {
    const { io } = await twoSets();
    const log: [number, number][] = [];
    io.addNotifier((e, a) => {
      log.push([e, a.id]);
    });
    expect([io.alloc(0, 1, 10), io.alloc(0, 1, 10), io.alloc(0, 1, 10)]).toEqual([1, 2, 3]);
    expect(io.get(2)).toBe(0);
    expect(io.get(3)).toBe(0);
    expect(io.free(3)).toBe(0); // FREE_PENDING, referenced
    log.length = 0;
    expect(io.freeSet(0, true)).toBe(0);
    expect(log).toEqual([[2, 1], [2, 2]]); // 3 was already FREE_PENDING: left alone
    expect(io.setInfo(0)).toMatchObject({ used: 2, destroying: true, quota: 10 });
    expect(io.getAvailable()).toBe(80);
    refused(io, -EBUSY, () => io.freeSet(0, true));
    refused(io, -EBUSY, () => io.freeSet(0, false));
    refused(io, INV, () => io.alloc(0, 1, 10));
    refused(io, -EINVAL, () => io.addNotifier(() => 0, { sid: 0 }));
    expect(io.put(2)).toBe(1);
    expect(io.setInfo(0)!.used).toBe(1);
    expect(io.put(3)).toBe(1);
    expect(io.setInfo(0)).toBe(null);
    expect(io.getAvailable()).toBe(90);
    expect(log).toEqual([[2, 1], [2, 2]]); // reclaim sends nothing
  });

  it('freeSet: unknown sid EINVAL before EPERM; the system set EPERM', async () => {
    const io = (await createEngine()).ioasid;
    refused(io, -EINVAL, () => io.freeSet(5, false));
    refused(io, -EPERM, () => io.freeSet(0, true));
    expect(() => io.freeSet(0, 1 as unknown as boolean)).toThrow(TypeError);
  });
});

describe('A, F, G, P, D: IDs', () => {
  it('alloc: INV for no set, a full set, an empty or reversed range; 0xFFFFFFFF never allocated', async () => {
    const { io } = await twoSets();
    refused(io, INV, () => io.alloc(7, 1, 10));
    refused(io, INV, () => io.alloc(-1, 1, 10));
    refused(io, INV, () => io.alloc(0, 10, 9));
    refused(io, INV, () => io.alloc(0, 0xffff_ffff, 0xffff_ffff));
    expect(io.alloc(0, 0xffff_fffe, 0xffff_ffff)).toBe(0xffff_fffe);
    refused(io, INV, () => io.alloc(1, 0xffff_fffe, 0xffff_ffff));
    expect(io.adjustSet(0, 1)).toBe(0);
    refused(io, INV, () => io.alloc(0, 1, 10));
    expect(io.alloc(1, 0, 0)).toBe(0);
  });

  it('alloc: an allocation the core cannot back returns INV with nothing changed', async () => {
    const { e, io } = await twoSets();
    e.failNthAllocation(1);
    refused(io, INV, () => io.alloc(0, 1, 10));
    e.failNthAllocation(0);
    expect(io.alloc(0, 1, 10)).toBe(1);
  });

  it('free: ENOENT, EACCES, EBUSY in that order', async () => {
    const { io } = await twoSets();
    expect(io.alloc(0, 5, 10)).toBe(5);
    refused(io, -ENOENT, () => io.free(6));
    refused(io, -ENOENT, () => io.free(6, 9));
    refused(io, -EACCES, () => io.free(5, 1));
    expect(io.get(5)).toBe(0);
    expect(io.free(5, 0)).toBe(0);
    refused(io, -EACCES, () => io.free(5, 1));
    refused(io, -EBUSY, () => io.free(5));
  });

  it('get and put check orders: EINVAL, EBUSY before EACCES for get; EACCES before EINVAL for put', async () => {
    const { io } = await twoSets();
    refused(io, -EINVAL, () => io.get(1));
    refused(io, -EINVAL, () => io.put(1));
    expect(io.alloc(0, 1, 10)).toBe(1);
    refused(io, -EACCES, () => io.put(1, 1));
    refused(io, -EINVAL, () => io.put(1));
    expect(io.get(1)).toBe(0);
    expect(io.free(1)).toBe(0);
    refused(io, -EBUSY, () => io.get(1, 1));
    refused(io, -EACCES, () => io.put(1, 1));
    expect(io.put(1, 0)).toBe(1);
  });

  it('find: a getter that throws counts as false and the outermost call rethrows', async () => {
    const { io } = await twoSets();
    const p = { p: 1 };
    expect(io.alloc(0, 1, 10, p)).toBe(1);
    expect(io.find(0, 1, () => true)).toBe(p);
    expect(() => io.find(0, 1, () => {
      throw new Error('getter');
    })).toThrow('getter');
    expect(() => io.find(0, 1, 5 as unknown as () => boolean)).toThrow(TypeError);
  });

  it('§0.2: wrong argument types throw TypeError before any other check', async () => {
    const { io } = await twoSets();
    expect(() => io.alloc(0, -1, 10)).toThrow(TypeError);
    expect(() => io.alloc(0, 1, 2 ** 32)).toThrow(TypeError);
    expect(() => io.alloc(0.5, 1, 2)).toThrow(TypeError);
    expect(() => io.free(1n as unknown as number)).toThrow(TypeError);
    expect(() => io.allocSet('t', 1.5)).toThrow(TypeError);
    expect(() => io.addNotifier(5 as unknown as () => number)).toThrow(TypeError);
    expect(() => io.notify(1, 3.5)).toThrow(TypeError);
    expect(() => io.queueWork(null as unknown as () => void)).toThrow(TypeError);
    expect(() => io.attachData(1, 'x' as unknown as object)).toThrow(TypeError);
  });
});

describe('N: notifier chains', () => {
  it('addNotifier: EEXIST on the same chain, one function on several chains, removal ENOENT and EINVAL', async () => {
    const { io } = await twoSets();
    const f = () => 0;
    expect(io.addNotifier(f)).toBe(0);
    expect(io.addNotifier(f)).toBe(-EEXIST);
    expect(io.addNotifier(f, { sid: 0 })).toBe(0);
    expect(io.addNotifier(f, { sid: 9 })).toBe(-EINVAL);
    expect(io.removeNotifier(f, { sid: 1 })).toBe(-ENOENT);
    expect(io.removeNotifier(f, { sid: 9 })).toBe(-EINVAL);
    expect(io.removeNotifier(f)).toBe(0);
    expect(io.removeNotifier(f)).toBe(-ENOENT);
    expect(io.removeNotifier(f, { sid: 0 })).toBe(0);
  });

  it('a chain walk: a result outside [0, 2^32) counts as NOTIFY_DONE', async () => {
    const { io } = await twoSets();
    expect(io.alloc(0, 1, 10)).toBe(1);
    const results: unknown[] = [-1, 2 ** 32, 1.5, 'x', 0x8001];
    let i = 0;
    io.addNotifier(() => results[i] as number, { sid: 0 });
    for (; i < 4; i++) expect(io.notify(1, 3)).toBe(0);
    expect(io.notify(1, 3)).toBe(0x8001);
  });
});
