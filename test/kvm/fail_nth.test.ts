// Fail-the-Nth-allocation sweeps over every allocating KVM call: for n = 1, 2, … the nth core
// allocation fails; the call must answer -ENOMEM with nothing changed and nothing leaked, until
// n is past its last allocation and it succeeds.
import { describe, expect, it } from 'vitest';
import { errno, uapi } from '../../src/index.js';
import { createDevice, LOG, setupK, slotA, withVcpu, type K, type KRSetup } from './setup.js';

const { ENOMEM } = errno;

interface Sweep<S> {
  setup: () => Promise<S & { k: K }>;
  op: (s: S & { k: K }) => number | bigint;
  /** Everything the call could change, as plain data. */
  observe: (s: S & { k: K }) => unknown;
  /** Frames reserved for earlier stores of a batch may stay (zero-filled process memory). */
  framesMayStay?: boolean;
}

/** Runs the sweep; returns how many allocations the call made. */
async function sweep<S>(w: Sweep<S>): Promise<number> {
  for (let n = 1; n < 64; n++) {
    const s = await w.setup();
    const { engine } = s.k;
    const before = w.observe(s);
    const live = engine.core.x.heap_live();
    engine.failNthAllocation(n);
    const r = w.op(s);
    engine.failNthAllocation(0);
    if (r === -ENOMEM || r === -BigInt(ENOMEM)) {
      expect(w.observe(s), `n=${n}`).toEqual(before);
      if (!w.framesMayStay) expect(engine.core.x.heap_live(), `n=${n}`).toBe(live);
      continue;
    }
    expect(Number(r), `n=${n}`).toBeGreaterThanOrEqual(0);
    return n - 1;
  }
  throw new Error('the call never succeeded');
}

/** What a VM shows: slots, bitmaps (manual-mode GET leaves them), counts. */
function vmState(k: K): unknown {
  const slots = [...k.kvm.slots.values()].map((s) => [s.num, s.flags, s.base, s.npages]);
  const saved = k.kvm.manualProtect;
  k.kvm.manualProtect = 1; // read without clearing
  const bitmaps = [...k.kvm.slots.keys()].map((n) => k.GET(n));
  k.kvm.manualProtect = saved;
  const counts = [0x100n, 0x105n, 0x10fn].map((g) => k.kvm.writeTrackCount(g));
  return { slots, bitmaps, counts, fds: [...k.P.fds.keys()], users: k.kvm.usersCount };
}

const withK = async (f?: (k: KRSetup) => void, ring = false): Promise<{ k: KRSetup }> => {
  const base = await setupK();
  if (ring) expect(base.CAP(192, 4096)).toBe(0);
  const k = withVcpu(base);
  f?.(k);
  return { k };
};

describe('fail-the-Nth sweeps (a failed call changes nothing)', () => {
  it('KVM_CREATE_VM', async () => {
    const n = await sweep({ setup: () => withK(), op: ({ k }) => k.P.ioctl(k.kfd, uapi.KVM_CREATE_VM, 0), observe: ({ k }) => [...k.P.fds.keys()] });
    expect(n).toBeGreaterThan(0);
  });

  it('SET_USER_MEMORY_REGION: CREATE with LOG, growing the slot table', async () => {
    const n = await sweep({
      setup: () => withK((k) => {
        for (let i = 0; i < 8; i++) expect(k.RGN(i, LOG, 0x100000 + i * 0x10000, 0x10000, k.U)).toBe(0);
        k.W(0x100000);
      }),
      op: ({ k }) => k.RGN(8, LOG, 0x900000, 0x10000, k.U),
      observe: ({ k }) => vmState(k),
    });
    expect(n).toBeGreaterThanOrEqual(3);
  });

  it('SET_USER_MEMORY_REGION: FLAGS_ONLY turning LOG on, and MOVE making a bitmap', async () => {
    for (const gpa of [0x100000, 0x300000]) {
      const n = await sweep({
        setup: () => withK((k) => {
          expect(k.RGN(0, 0, 0x100000, 0x10000, k.U)).toBe(0);
          expect(k.kvm.writeTrackAddGfn(0x105n)).toBe(0);
        }),
        op: ({ k }) => k.RGN(0, LOG, gpa, 0x10000, k.U),
        observe: ({ k }) => vmState(k),
      });
      expect(n).toBe(1);
    }
  });

  it('KVM_CREATE_VCPU with a ring', async () => {
    const n = await sweep({
      setup: () => withK(undefined, true),
      op: ({ k }) => k.P.ioctl(k.vm, uapi.KVM_CREATE_VCPU, 1),
      observe: ({ k }) => [k.kvm.vcpus.length, k.kvm.usersCount, [...k.P.fds.keys()]],
    });
    expect(n).toBe(2);
  });

  it('writeTrackAddGfn (sparse counts: table, mid, leaf)', async () => {
    const n = await sweep({ setup: () => withK(slotA), op: ({ k }) => k.kvm.writeTrackAddGfn(0x105n), observe: ({ k }) => vmState(k) });
    expect(n).toBe(4);
  });

  for (const mode of ['bitmap', 'ring'] as const) {
    it(`vcpu.write, writeGuest, writeMany and writeManyAt to unwritten memory (${mode})`, async () => {
      const setup = (): Promise<{ k: KRSetup }> => withK((k) => {
        if (mode === 'ring') expect(k.RGN(0, LOG, 0x100000, 0x10000, k.U)).toBe(0);
        else slotA(k);
      }, mode === 'ring');
      const observe = ({ k }: { k: KRSetup }): unknown => [
        mode === 'ring' ? k.v0.dirtyRingUsed : vmState(k), Array.from(k.P.read(k.U, 0x10000)).filter((x) => x).length,
      ];
      const ops = [
        ({ k }: { k: KRSetup }) => k.v0.write(0x103ff0n, new Uint8Array(0x20).fill(5)),
        ({ k }: { k: KRSetup }) => k.v0.writeGuest(0x103ff0n, new Uint8Array(0x20).fill(5)),
        ({ k }: { k: KRSetup }) => k.v0.writeMany(new BigUint64Array([0x101000n, 0x10a000n]), new Uint8Array(16).fill(5), 8),
        ({ k }: { k: KRSetup }) => {
          // The batch in core blocks made outside the countdown, as the simulator's buffers are.
          const core = k.v0.kvm.core;
          const [g, d] = core.unarmed(() => [core.alloc(16), core.alloc(16)]);
          core.u64().set([0x101000n, 0x10a000n], g / 8);
          core.u8().fill(5, d, d + 16);
          try {
            return k.v0.writeManyAt(g, d, 2, 8);
          } finally {
            core.unarmed(() => [g, d].forEach((p) => core.free(p)));
          }
        },
      ];
      for (const [i, op] of ops.entries()) expect(await sweep({ setup, op, observe, framesMayStay: i >= 2 })).toBeGreaterThan(1);
    });
  }

  it('GET_DIRTY_LOG into never-written user memory, fetch-and-clear and manual', async () => {
    for (const manual of [false, true]) {
      const n = await sweep({
        setup: () => withK((k) => {
          if (manual) expect(k.CAP(168, 1)).toBe(0);
          slotA(k);
          k.W(0x102000);
        }),
        op: ({ k }) => {
          const dst = k.P.mmap(4096);
          const b = new Uint8Array(16);
          new DataView(b.buffer).setBigUint64(8, dst, true);
          return k.P.ioctl(k.vm, uapi.KVM_GET_DIRTY_LOG, b);
        },
        observe: ({ k }) => vmState(k),
      });
      expect(n).toBeGreaterThan(0);
    }
  });

  it('a ring-mode store whose writable bit cannot be allocated still records, and records again later (safe)', async () => {
    const { k } = await withK((kk) => {
      expect(kk.RGN(0, LOG, 0x100000, 0x10000, kk.U)).toBe(0);
      kk.P.write(kk.U + 0x1000n, Uint8Array.of(0)); // frames exist: only the stage and the table allocate
    }, true);
    k.engine.failNthAllocation(2);
    expect(k.v0.write(0x101000n, Uint8Array.of(1))).toBe(1);
    k.engine.failNthAllocation(0);
    expect(k.v0.dirtyRingUsed).toBe(1);
    expect(k.v0.write(0x101000n, Uint8Array.of(2))).toBe(1);
    expect(k.v0.dirtyRingUsed).toBe(2);
    expect(k.v0.write(0x101000n, Uint8Array.of(3))).toBe(1);
    expect(k.v0.dirtyRingUsed).toBe(2);
  });

  it('KVM_CREATE_DEVICE allocates nothing in the core', async () => {
    const { k } = await withK();
    k.engine.failNthAllocation(1);
    expect(k.P.ioctl(k.vm, uapi.KVM_CREATE_DEVICE, createDevice(4, 0, 0))).toBe(0);
    k.engine.failNthAllocation(0);
  });
});
