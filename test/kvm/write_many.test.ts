// vcpu.writeMany, the batch form of vcpu.write (docs/conformance.md §19.6): the same effects as the
// stores one by one, every store checked before any is made. The same tests run writeManyAt, the
// simulator's form of the same call on a batch already in the engine's core.
import { describe, expect, it } from 'vitest';
import { errno, type Vcpu } from '../../src/index.js';
import { hx, LOG, RO, setupK, setupKR, slotA, slotB, withVcpu } from './setup.js';

const { EINVAL, EFAULT } = errno;
const gp = (...a: bigint[]): BigUint64Array => BigUint64Array.from(a);

type Form = (v: Vcpu, gpas: BigUint64Array, data: Uint8Array, bytesEach: number, asId?: number) => number;

/** writeManyAt with the batch copied into core blocks first; the blocks must come back unchanged. */
const inCore: Form = (v, gpas, data, bytesEach, asId) => {
  const core = v.kvm.core;
  const g = core.alloc(Math.max(8, gpas.length * 8));
  const d = core.alloc(Math.max(1, data.length));
  core.u64().set(gpas, g / 8);
  core.u8().set(data, d);
  try {
    const r = v.writeManyAt(g, d, gpas.length, bytesEach, asId);
    expect(core.u64().slice(g / 8, g / 8 + gpas.length)).toEqual(gpas);
    expect(core.u8().slice(d, d + data.length)).toEqual(data);
    return r;
  } finally {
    core.free(g);
    core.free(d);
  }
};

describe.each<[string, Form]>([
  ['writeMany', (v, gpas, data, bytesEach, asId) => v.writeMany(gpas, data, bytesEach, asId)],
  ['writeManyAt', inCore],
])('vcpu.%s', (name, form) => {
  it('stores in order, records like write, marks the bitmap', async () => {
    const k = withVcpu(await setupK());
    slotA(k);
    const data = Uint8Array.of(1, 2, 3, 4, 5, 6);
    expect(form(k.v0, gp(0x100000n, 0x10f008n, 0x100001n), data, 2)).toBe(3);
    expect(k.P.read(k.U, 3)).toEqual(Uint8Array.of(1, 5, 6));
    expect(k.P.read(k.U + 0xf008n, 2)).toEqual(Uint8Array.of(3, 4));
    expect(k.GET(0)).toBe(hx('01 80'));
    expect(form(k.v0, gp(), new Uint8Array(0), 1)).toBe(0);
  });

  it('checks every store first: a store crossing a page, a fault, bad sizes', async () => {
    const k = withVcpu(await setupK());
    slotA(k);
    expect(form(k.v0, gp(0x100000n, 0x100fffn), new Uint8Array(4), 2)).toBe(-EINVAL);
    expect(form(k.v0, gp(0x100000n, 0x500000n), new Uint8Array(2), 1)).toBe(-EFAULT);
    if (name === 'writeMany') expect(form(k.v0, gp(0x100000n), new Uint8Array(3), 2)).toBe(-EINVAL); // lengths
    expect(form(k.v0, gp(0x100000n), new Uint8Array(0), 0)).toBe(-EINVAL);
    expect(form(k.v0, gp(0x100000n), new Uint8Array(4097), 4097)).toBe(-EINVAL);
    expect(form(k.v0, gp(0x100000n), new Uint8Array(1), 1, 2)).toBe(-EINVAL);
    expect(k.P.read(k.U, 1)).toEqual(Uint8Array.of(0));
    expect(k.GET(0)).toBe(hx('00'));
  });

  it('checks each store against its own slot, as the batch moves between slots', async () => {
    const k = withVcpu(await setupK());
    slotA(k);
    slotB(k);
    expect(k.RGN(2, RO, 0x400000, 0x1000, k.U + 0x20000n)).toBe(0);
    const data = Uint8Array.of(1, 2, 3, 4);
    // A, B, A, then the read-only slot; then the page just past A's end: refused, nothing stored.
    expect(form(k.v0, gp(0x100000n, 0x200008n, 0x100010n, 0x400000n), data, 1)).toBe(-EFAULT);
    expect(form(k.v0, gp(0x10fff8n, 0x110000n), data.subarray(0, 2), 1)).toBe(-EFAULT);
    expect(k.P.read(k.U, 1)).toEqual(Uint8Array.of(0));
    expect(k.P.read(k.U + 0x100008n, 1)).toEqual(Uint8Array.of(0));
    expect(k.P.read(k.U + 0xfff8n, 1)).toEqual(Uint8Array.of(0));
    expect(k.GET(0)).toBe(hx('00'));
    // A, B, A: each store lands in its slot's memory.
    expect(form(k.v0, gp(0x100000n, 0x200008n, 0x100010n), data.subarray(0, 3), 1)).toBe(3);
    expect(k.P.read(k.U, 1)).toEqual(Uint8Array.of(1));
    expect(k.P.read(k.U + 0x100008n, 1)).toEqual(Uint8Array.of(2));
    expect(k.P.read(k.U + 0x10n, 1)).toEqual(Uint8Array.of(3));
    expect(k.GET(0)).toBe(hx('01'));
    expect(k.GET(1)).toBe(hx('01', 16)); // slot B's 100 pages: two words
  });

  it('ring mode: once per protect cycle, stops at soft-full', async () => {
    const k = await setupKR();
    expect(k.RGN(0, LOG, 0x100000, 0x100000, k.U)).toBe(0);
    const gpas = new BigUint64Array(200);
    for (let i = 0; i < 200; i++) gpas[i] = 0x100000n + BigInt(i) * 4096n;
    expect(form(k.v0, gp(0x100000n, 0x100008n), new Uint8Array(2), 1)).toBe(2);
    expect(k.v0.dirtyRingUsed).toBe(1);
    expect(form(k.v0, gpas, new Uint8Array(200).fill(7), 1)).toBe(192);
    expect(k.v0.dirtyRingUsed).toBe(192);
    expect(k.P.read(k.U + 191n * 4096n, 1)).toEqual(Uint8Array.of(7));
    expect(k.P.read(k.U + 192n * 4096n, 1)).toEqual(Uint8Array.of(0));
  });

  it('every notifier gets the store\'s bytes, even after one of them grows the memory', async () => {
    const k = withVcpu(await setupK());
    slotA(k);
    const seen: string[] = [];
    const big = k.P.mmap(128n << 20n);
    let at = 0n;
    // Each call writes 48 MiB of fresh pages, which grows the core; one runs before the recorder
    // whichever order the notifiers are called in.
    const grow = { trackWrite: () => k.P.write(big + (at++ << 26n), new Uint8Array(48 << 20).fill(1)) };
    k.kvm.pageTrackRegisterNotifier(grow);
    k.kvm.pageTrackRegisterNotifier({ trackWrite: (g, d) => seen.push(`${g.toString(16)} ${Array.from(d)}`) });
    k.kvm.pageTrackRegisterNotifier({ ...grow });
    k.kvm.writeTrackAddGfn(0x101n);
    expect(form(k.v0, gp(0x100000n, 0x101000n), Uint8Array.of(5, 6, 7, 8), 2)).toBe(2);
    expect(seen).toEqual(['101000 7,8']);
  });

  it('a write-tracked store is emulated and notified between the others', async () => {
    const k = withVcpu(await setupK());
    slotA(k);
    const seen: string[] = [];
    k.kvm.pageTrackRegisterNotifier({ trackWrite: (g, d) => seen.push(`${g.toString(16)} ${d[0]} ${k.P.read(k.U + 0x2000n, 1)[0]}`) });
    k.kvm.writeTrackAddGfn(0x101n);
    expect(form(k.v0, gp(0x100000n, 0x101000n, 0x102000n), Uint8Array.of(1, 2, 3), 1)).toBe(3);
    expect(seen).toEqual(['101000 2 0']);
    expect(k.GET(0)).toBe(hx('07'));
  });
});

describe('vcpu.writeManyAt', () => {
  it('refuses a batch that is not inside the core\'s memory, storing nothing', async () => {
    const k = withVcpu(await setupK());
    slotA(k);
    const core = k.v0.kvm.core;
    const g = core.alloc(16);
    const d = core.alloc(16);
    core.u64().set(gp(0x100000n, 0x101000n), g / 8);
    core.u8().fill(9, d, d + 16);
    const end = core.u8().length;
    expect(k.v0.writeManyAt(g + 4, d, 2, 8)).toBe(-EINVAL); // gpas not 8-byte aligned
    expect(k.v0.writeManyAt(-8, d, 1, 8)).toBe(-EINVAL);
    expect(k.v0.writeManyAt(end - 8, d, 2, 8)).toBe(-EINVAL); // gpas run past the memory
    expect(k.v0.writeManyAt(g, end - 8, 2, 8)).toBe(-EINVAL); // data runs past the memory
    expect(k.v0.writeManyAt(g, d, -1, 8)).toBe(-EINVAL);
    expect(k.v0.writeManyAt(g, d, 1.5, 8)).toBe(-EINVAL);
    expect(k.v0.writeManyAt(g, d, 2, 0)).toBe(-EINVAL);
    expect(k.P.read(k.U, 1)).toEqual(Uint8Array.of(0));
    expect(k.GET(0)).toBe(hx('00'));
    expect(k.v0.writeManyAt(g, d, 2, 8)).toBe(2);
    expect(k.P.read(k.U, 8)).toEqual(new Uint8Array(8).fill(9));
    expect(k.GET(0)).toBe(hx('03'));
    expect(() => k.v0.writeManyAt(BigInt(g) as unknown as number, d, 2, 8)).toThrow(TypeError);
  });
});
