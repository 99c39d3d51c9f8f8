// Seeded random operations on the engine and on the plain-TS model of the KVM rules (model.ts):
// every result compared (errno, bitmaps, ring entries, guest bytes, counts, notifications,
// references), and the harvest invariant checked as a property: every page a vCPU stored to since
// its last harvest is in the next harvest, in each mode, across slot moves, flag changes and
// deletes.
import { describe, expect, it } from 'vitest';
import { uapi, type Kvm } from '../../src/index.js';
import { rng } from '../helpers/rng.js';
import { KvmModel } from './model.js';
import { setupKV, type KV } from './setup.js';

type Mode = 'bitmap' | 'manual' | 'initially-set' | 'ring';
const PAGE = 4096n;

/** Set bit indices of a GET hex string. */
function bitsOf(hex: string): number[] {
  const out: number[] = [];
  hex.split(' ').forEach((b, i) => {
    const v = parseInt(b, 16);
    for (let j = 0; j < 8; j++) if (v & (1 << j)) out.push(i * 8 + j);
  });
  return out;
}

function bytesOfBits(bits: number[], n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (const i of bits) if (i < n * 8) b[i >> 3] |= 1 << (i & 7);
  return b;
}

async function run(mode: Mode, seed: number, steps: number): Promise<void> {
  const r = rng(seed);
  const k: KV = await setupKV();
  const m = new KvmModel();
  const { P, kvm } = k;
  m.mapped = [[k.U, k.U + 0x200000n]];
  if (mode === 'manual') expect([k.CAP(168, 1), (m.manual = 1)][0]).toBe(0);
  if (mode === 'initially-set') expect([k.CAP(168, 3), (m.manual = 3)][0]).toBe(0);
  if (mode === 'ring') {
    expect(k.CAP(192, 8192)).toBe(0);
    expect(m.enableRing(8192)).toBe(0);
  }
  // Four logged slots covering gfns 0-47 to start with, so that most accesses land.
  for (let i = 0; i < 4; i++) {
    const a = [i, 1, BigInt(i * 12) * PAGE, 12n * PAGE, k.U + BigInt(i * 12) * PAGE] as const;
    expect(k.RGN(...a)).toBe(m.rgn(...a));
  }
  const [c0, v0] = k.vcpu(0);
  const R = mode === 'ring' ? P.mmapFd(c0, 0x40000n, 8192) : 0n;
  let fetch = 0;
  const seen: string[] = [];
  const node = {
    trackWrite: (gpa: bigint, _d: Uint8Array, n: number) => seen.push(`w ${gpa} ${n}`),
    trackRemoveRegion: (gfn: bigint, n: number) => seen.push(`r ${gfn} ${n}`),
  };
  // KVM-VFIO model: the group's KVM, the device's, and the unlink calls.
  let kvOpen = true;
  let kv = k.kv;
  let added = false;
  let groupKvm = false;
  const dfds: number[] = [];
  let devKvm = false;
  let unlinks = 0;
  k.D.registerKvmUnlink((v: Kvm) => {
    expect(v).toBe(kvm);
    unlinks++;
  });
  let unlinksExpected = 0;
  const unlinkModel = (): void => {
    if (groupKvm && devKvm && dfds.length) unlinksExpected++;
    groupKvm = false;
  };
  // The harvest invariant: pages stored since the last harvest, by slot number.
  const stored = new Map<number, Set<number>>();
  const note = (gpa: bigint, len: number, as: number): void => {
    for (let p = gpa / PAGE; p <= (gpa + BigInt(len) - 1n) / PAGE; p++) {
      const s = m.slotAt(as, p)!;
      if (!(s.flags & 1)) continue;
      let set = stored.get(s.num);
      if (!set) stored.set(s.num, (set = new Set()));
      set.add(Number(p - s.base));
    }
  };
  const nums = [0, 1, 2, 3, 4, 5, 6, 7, 0x10000, 0x10001];
  for (let step = 0; step < steps; step++) {
    const op = r(100);
    const ctx = `${mode} seed ${seed} step ${step} op ${op}`;
    if (op < 14) {
      const num = nums[r(nums.length)];
      const flags = [0, 1, 1, 2, 3, 0][r(6)];
      const del = r(10) === 0;
      const old = m.slots.get(num);
      const keep = old && r(3) > 0;
      const size = del ? 0n : keep ? BigInt(old.npages) * PAGE : BigInt(1 + r(24)) * PAGE;
      const gpa = BigInt(r(40)) * PAGE;
      // Host memory U is 0x200 pages with a guard page after it: a slot may reach one page
      // into the guard page (accesses there fault), never into the next mapping.
      const uaddr = keep ? old.uaddr : k.U + BigInt(r(0x201 - Number(size / PAGE))) * PAGE;
      const want = m.rgn(num, flags, gpa, size, uaddr);
      expect(k.RGN(num, flags, gpa, size, uaddr), ctx).toBe(want);
      if (want === 0) {
        const s = m.slots.get(num);
        if (!s || (!(s.flags & 1) && mode !== 'ring')) stored.delete(num);
      }
    } else if (op < 40) {
      const as = r(8) === 0 ? 1 : 0;
      const gpa = BigInt(r(48)) * PAGE + BigInt(r(4096));
      const data = new Uint8Array(1 + r(r(8) === 0 ? 9000 : 16)).fill(1 + r(255));
      const guest = r(4) === 0;
      const want = guest ? m.writeGuest(gpa, data, as) : m.write(gpa, data, as);
      const got = guest ? v0.writeGuest(gpa, data, as) : v0.write(gpa, data, as);
      expect(got, ctx).toBe(want);
      if (want > 0 || (guest && want === 0)) note(gpa, guest ? data.length : want, as);
    } else if (op < 48) {
      const as = r(8) === 0 ? 1 : 0;
      const gpa = BigInt(r(48)) * PAGE + BigInt(r(4096));
      const len = 1 + r(6000);
      expect(v0.read(gpa, len, as), ctx).toEqual(m.read(gpa, len, as));
    } else if (op < 62) {
      const num = nums[r(nums.length)];
      const want = m.get(num);
      const got = k.GET(num);
      if (typeof want === 'number') {
        expect(got, ctx).toBe(want);
        continue;
      }
      expect(bitsOf(got as string), ctx).toEqual(want);
      for (const i of stored.get(num) ?? []) expect(want, `${ctx} invariant`).toContain(i);
      if (mode === 'bitmap') stored.delete(num);
      else if (r(2) === 0) {
        // Harvest in manual mode: clear exactly what was fetched.
        const s = m.slots.get(num)!;
        const nb = Math.ceil(s.npages / 64) * 8;
        expect(k.CLR(num, 0, s.npages, bytesOfBits(want, nb)), ctx).toBe(m.clear(num, 0n, s.npages, want));
        stored.delete(num);
      }
    } else if (op < 68) {
      const num = nums[r(nums.length)];
      const s = m.slots.get(num);
      const npages = s?.npages ?? 16;
      const first = [0, 64, 0, 1][r(4)];
      const count = [0, 64, Math.max(0, npages - first), 5][r(4)];
      const bits = Array.from({ length: r(8) }, () => r(count + 3));
      const want = m.clear(num, BigInt(first), count, bits);
      expect(k.CLR(num, first, count, bytesOfBits(bits, Math.max(8, Math.ceil(count / 64) * 8))), ctx).toBe(want);
      if (want === 0) for (const b of bits) stored.get(num)?.delete(first + b);
    } else if (op < 78) {
      if (mode !== 'ring') {
        expect(P.ioctl(k.vm, uapi.KVM_RESET_DIRTY_RINGS), ctx).toBe(m.resetRings());
        continue;
      }
      const [nf, got] = m.harvest(fetch);
      for (let i = fetch; i < nf; i++) {
        const at = R + BigInt((i % m.entries) * 16);
        const b = P.read(at, 16);
        const v = new DataView(b.buffer);
        expect([v.getUint32(0, true), v.getUint32(4, true), v.getBigUint64(8, true)], ctx).toEqual([1, got[i - fetch].slot, got[i - fetch].offset]);
        P.write(at, Uint8Array.of(2));
      }
      fetch = nf;
      expect(P.ioctl(k.vm, uapi.KVM_RESET_DIRTY_RINGS), ctx).toBe(m.resetRings());
      for (const [num, set] of stored) {
        for (const i of set) expect(got.some((e) => e.slot === num && e.offset === BigInt(i)), `${ctx} invariant ${num}:${i}`).toBe(true);
      }
      stored.clear();
      expect(v0.dirtyRingUsed, ctx).toBe(m.used);
    } else if (op < 88) {
      const gfn = BigInt(r(48));
      const d = r(3) === 0 ? -1 : 1;
      const want = m.trackAdd(gfn, d as 1 | -1);
      expect(d > 0 ? kvm.writeTrackAddGfn(gfn) : kvm.writeTrackRemoveGfn(gfn), ctx).toBe(want);
      expect(kvm.writeTrackCount(gfn), ctx).toBe(m.trackCount(gfn));
    } else if (op < 91) {
      if (m.nodes) {
        kvm.pageTrackUnregisterNotifier(node);
        m.nodes = 0;
      } else {
        expect(kvm.pageTrackRegisterNotifier(node), ctx).toBe(0);
        m.nodes = 1;
      }
    } else {
      // KVM-VFIO add / del / device open / close / KVM-VFIO device close and re-create.
      const which = r(5);
      if (which === 0 && kvOpen) {
        expect(k.ADD(k.gfd), ctx).toBe(added ? -17 : 0);
        if (!added) {
          added = true;
          groupKvm = true;
        }
      } else if (which === 1 && kvOpen) {
        expect(k.DEL(k.gfd), ctx).toBe(added ? 0 : -2);
        if (added) {
          added = false;
          unlinkModel();
        }
      } else if (which === 2) {
        const fd = k.dfd();
        expect(fd, ctx).toBeGreaterThan(0);
        dfds.push(fd);
        if (dfds.length === 1) devKvm = groupKvm;
      } else if (which === 3 && dfds.length) {
        expect(P.close(dfds.pop()!), ctx).toBe(0);
        if (!dfds.length) devKvm = false;
      } else if (which === 4) {
        if (kvOpen) {
          expect(P.close(kv), ctx).toBe(0);
          kvOpen = false;
          if (added) {
            added = false;
            unlinkModel();
          }
        } else {
          const cd = new Uint8Array([4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
          expect(P.ioctl(k.vm, uapi.KVM_CREATE_DEVICE, cd), ctx).toBe(0);
          kv = new DataView(cd.buffer).getUint32(4, true);
          k.kv = kv;
          kvOpen = true;
        }
      }
      expect(k.D.kvm, ctx).toBe(devKvm ? kvm : null);
      expect(unlinks, ctx).toBe(unlinksExpected);
    }
    expect(seen, ctx).toEqual(m.log);
    expect(kvm.usersCount, ctx).toBe(2 + (kvOpen ? 1 : 0) + (devKvm ? 1 : 0) + m.nodes);
  }
}

describe('random operations against the KVM model', () => {
  for (const mode of ['bitmap', 'manual', 'initially-set', 'ring'] as const) {
    it(`${mode}: 12 seeds × 400 operations agree with the model; the harvest invariant holds`, async () => {
      for (let seed = 1; seed <= 12; seed++) await run(mode, seed * 7919 + mode.length, 400);
    });
  }
});
