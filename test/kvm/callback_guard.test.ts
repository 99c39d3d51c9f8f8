// Engine-level calls from inside a KVM callback (docs/conformance.md §19.8): creating, removing or
// arming anything throws an Error and changes nothing, in a page-track notifier and in an unlink
// callback alike, and so do the IOASID and SVA mutators (which answer EDEADLK in their own
// callbacks); the triggering call completes and rethrows. A type1 dma_unmap op may make them (only
// calls that change its own container are refused there, docs/conformance.md §14).
import { describe, expect, it } from 'vitest';
import { uapi, type Accelerator, type Engine } from '../../src/index.js';
import { dmaUnmap } from '../helpers/uapi_structs.js';
import { setupKV, slotA, type KV } from './setup.js';

/** Each engine-level call, made from a callback: its error message, or 'ran'. */
function attempts(k: KV, spare: { remove(): number }, accel: Accelerator): Record<string, string> {
  const e: Engine = k.engine;
  const calls: Record<string, () => unknown> = {
    createGroup: () => e.createGroup(),
    createProcess: () => e.createProcess(),
    createAccelerator: () => e.createAccelerator(),
    openContainer: () => e.openContainer(k.P),
    failNthAllocation: () => e.failNthAllocation(1),
    dispose: () => e.dispose(),
    'group.remove': () => spare.remove(),
    'accel.remove': () => accel.remove(),
    'ioasid.allocSet': () => e.ioasid.allocSet({}, 1),
    'ioasid.alloc': () => e.ioasid.alloc(e.ioasid.systemSid, 1, 10),
    'sva.bindDevice': () => e.sva.bindDevice(accel, k.P),
  };
  const out: Record<string, string> = {};
  for (const [name, f] of Object.entries(calls)) {
    try {
      f();
      out[name] = 'ran';
    } catch (err) {
      out[name] = (err as Error).message;
    }
  }
  return out;
}

/** What the calls would change. */
function world(k: KV): unknown {
  return {
    groups: [...k.engine.groups.keys()],
    processes: k.engine.processes.length,
    fds: [...k.P.fds.keys()],
    disposed: k.engine.isDisposed,
    ioasid: k.engine.inspect().ioasid,
    accelerators: k.engine.inspect().accelerators,
  };
}

const refused = (): Record<string, string> => ({
  createGroup: `engine.createGroup is not allowed inside a callback`,
  createProcess: `engine.createProcess is not allowed inside a callback`,
  createAccelerator: `engine.createAccelerator is not allowed inside a callback`,
  openContainer: `engine.openContainer is not allowed inside a callback`,
  failNthAllocation: `engine.failNthAllocation is not allowed inside a callback`,
  dispose: `engine.dispose is not allowed inside a callback`,
  'group.remove': `group.remove is not allowed inside a callback`,
  'accel.remove': `accel.remove is not allowed inside a callback`,
  'ioasid.allocSet': 'a mutating engine call is not allowed inside a callback',
  'ioasid.alloc': 'a mutating engine call is not allowed inside a callback',
  'sva.bindDevice': 'a mutating engine call is not allowed inside a callback',
});

describe('engine-level calls inside KVM callbacks', () => {
  it('a page-track notifier: every engine-level call throws, nothing changes', async () => {
    const k = await setupKV();
    slotA(k);
    const [, v0] = k.vcpu(0);
    const spare = k.engine.createGroup();
    const accel = k.engine.createAccelerator();
    let seen: Record<string, string> = {};
    let inside: unknown;
    expect(k.kvm.pageTrackRegisterNotifier({ trackWrite: () => {
      inside = world(k);
      seen = attempts(k, spare, accel);
      expect(world(k)).toEqual(inside);
    } })).toBe(0);
    expect(k.kvm.writeTrackAddGfn(0x100n)).toBe(0);
    expect(v0.write(0x100000n, Uint8Array.of(1))).toBe(1);
    expect(seen).toEqual(refused());
    expect([spare.removed, accel.removed]).toEqual([false, false]);
    expect(k.engine.isDisposed).toBe(false);
    expect(k.engine.failNthAllocation(0)).toBe(undefined); // nothing was armed
  });

  it('an unlink callback: every engine-level call throws, nothing changes; the DEL completes', async () => {
    const k = await setupKV();
    const spare = k.engine.createGroup();
    const accel = k.engine.createAccelerator();
    let seen: Record<string, string> = {};
    let inside: unknown;
    k.D.registerKvmUnlink(() => {
      inside = world(k);
      seen = attempts(k, spare, accel);
      expect(world(k)).toEqual(inside);
    });
    expect(k.ADD(k.gfd)).toBe(0);
    k.dfd();
    expect(k.DEL(k.gfd)).toBe(0);
    expect(seen).toEqual(refused());
    expect(k.M.kvm).toBe(null);
    expect([spare.removed, accel.removed]).toEqual([false, false]);
  });

  it('an unlink callback that calls one and lets it throw: the release finishes, then the error', async () => {
    const k = await setupKV();
    k.D.registerKvmUnlink(() => void k.engine.createProcess());
    expect(k.ADD(k.gfd)).toBe(0);
    k.dfd();
    expect(() => k.P.close(k.kv)).toThrow('engine.createProcess is not allowed inside a callback');
    expect([k.M.kvm, k.kvm.usersCount, k.engine.processes.length]).toEqual([null, 2, 1]);
  });

  it('a type1 dma_unmap op may create groups and processes and remove an unopened group', async () => {
    const k = await setupKV();
    expect(k.MAP(0n, 0x1000n)).toBe(0);
    k.dfd();
    const spare = k.engine.createGroup();
    const made: unknown[] = [];
    k.D.registerDmaUnmap(() => {
      k.D.unpinPages(0n, 1);
      made.push(k.engine.createGroup().id, !k.engine.createProcess().isDisposed, spare.remove());
    });
    expect(k.D.pinPages(0n, 1, 3)).toBe(1);
    expect(k.P.ioctl(k.cfd, uapi.VFIO_IOMMU_UNMAP_DMA, dmaUnmap({ argsz: 24, flags: 0, iova: 0n, size: 0x1000n }))).toBe(0);
    expect(made).toEqual([spare.id + 1, true, 0]);
  });
});
