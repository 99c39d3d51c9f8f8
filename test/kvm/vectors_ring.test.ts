// KVM acceptance vectors, groups E and F: the dirty ring, ring mappings, guest accesses
// (docs/conformance.md §19.5, §19.6).
import { describe, expect, it } from 'vitest';
import { errno, uapi } from '../../src/index.js';
import { hx, LOG, RO, setupK, setupKR, slotA, withVcpu, zeros } from './setup.js';

const { EINVAL, EFAULT, E2BIG } = errno;

/** An entry {s, o} with flags 1, as hex. */
const entry = (s: number, o: number, flags = 1): string => {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setUint32(0, flags, true);
  v.setUint32(4, s, true);
  v.setBigUint64(8, BigInt(o), true);
  return hx(Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' '), 16);
};
const h = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');

describe('KVM vectors E: dirty ring', () => {
  it('V24: enabling the ring', async () => {
    const k = await setupK();
    expect(k.CAP(192, 0)).toBe(-EINVAL);
    expect(k.CAP(192, 0x3000)).toBe(-EINVAL);
    expect(k.CAP(192, 2048)).toBe(-EINVAL);
    expect(k.CAP(192, 2097152)).toBe(-E2BIG);
    expect(k.CAP(192, 4096)).toBe(0);
    expect(k.CAP(192, 8192)).toBe(-EINVAL);
    expect(k.CAP(223, 4096)).toBe(-EINVAL);
    expect(k.CAP(192, 2097152)).toBe(-E2BIG);
    const a = await setupK({}, k.engine);
    a.vcpu(0);
    expect(a.CAP(192, 4096)).toBe(-EINVAL);
    const b = await setupK({}, k.engine);
    slotA(b);
    expect(b.CAP(192, 4096)).toBe(-EINVAL);
    const c = await setupK({}, k.engine);
    expect(c.RGN(0, 0, 0x100000, 0x10000, c.U)).toBe(0);
    expect(c.CAP(192, 4096)).toBe(0);
  });

  it('V26: entries name the slot and its address space', async () => {
    const k = await setupKR();
    expect(k.RGN(3, LOG, 0x100000, 0x10000, k.U)).toBe(0);
    k.W(0x105000);
    expect(h(k.P.read(k.R, 16))).toBe(entry(3, 5));
    expect(k.RGN(0x00010003, LOG, 0x100000, 0x10000, k.U + 0x10000n)).toBe(0);
    expect(k.v0.write(0x105000n, Uint8Array.of(1), 1)).toBe(1);
    expect(h(k.P.read(k.R + 16n, 16))).toBe(entry(0x10003, 5));
    expect(k.v0.dirtyRingUsed).toBe(2);
    expect(k.P.read(k.U + 0x15000n, 1)).toEqual(Uint8Array.of(1));
  });

  it('V27: once per protect cycle; writeGuest every time; RESET by flags', async () => {
    const k = await setupKR();
    expect(k.RGN(3, LOG, 0x100000, 0x10000, k.U)).toBe(0);
    k.W(0x105000); k.W(0x105000);
    expect(k.v0.dirtyRingUsed).toBe(1);
    expect(k.v0.writeGuest(0x105000n, Uint8Array.of(1))).toBe(0);
    expect(k.v0.writeGuest(0x105000n, Uint8Array.of(1))).toBe(0);
    expect(k.v0.dirtyRingUsed).toBe(3);
    for (let i = 0; i < 3; i++) expect(h(k.P.read(k.R + BigInt(16 * i), 16))).toBe(entry(3, 5));
    for (let i = 0; i < 3; i++) k.P.write(k.R + BigInt(16 * i), Uint8Array.of(2));
    expect(k.P.ioctl(k.vm, uapi.KVM_RESET_DIRTY_RINGS)).toBe(3);
    for (let i = 0; i < 3; i++) expect(h(k.P.read(k.R + BigInt(16 * i), 16))).toBe(entry(3, 5, 0));
    expect(k.v0.dirtyRingUsed).toBe(0);
    k.W(0x105000);
    expect(h(k.P.read(k.R + 48n, 16))).toBe(entry(3, 5));
    expect(k.v0.dirtyRingUsed).toBe(1);
  });

  it('V29: soft-full stops guest stores; writeGuest goes on; a reset resumes', async () => {
    const k = await setupKR();
    expect(k.RGN(3, LOG, 0x100000, 0x100000, k.U)).toBe(0);
    expect(k.v0.write(0x100000n, new Uint8Array(0xc8000).fill(0xab))).toBe(0xc0000);
    expect(k.v0.dirtyRingUsed).toBe(192);
    expect(k.v0.dirtyRingSoftFull).toBe(true);
    expect(k.v0.read(0x1c0000n, 1)).toEqual(Uint8Array.of(0));
    expect(k.v0.write(0x1c0000n, Uint8Array.of(1))).toBe(0);
    expect(k.v0.writeGuest(0x1fa000n, Uint8Array.of(1))).toBe(0);
    expect(k.v0.dirtyRingUsed).toBe(193);
    for (let i = 0; i < 193; i++) k.P.write(k.R + BigInt(16 * i), Uint8Array.of(2));
    expect(k.P.ioctl(k.vm, uapi.KVM_RESET_DIRTY_RINGS)).toBe(193);
    expect(k.v0.dirtyRingSoftFull).toBe(false);
    expect(k.v0.write(0x1c0000n, new Uint8Array(0x8000))).toBe(0x8000);
    expect(k.v0.dirtyRingUsed).toBe(8);
  });

  it('V32: ring mappings', async () => {
    const k = await setupK();
    expect(k.CAP(192, 8192)).toBe(0);
    const [c0] = k.vcpu(0);
    const { P } = k;
    const A1 = P.mmapFd(c0, 0x40000n, 8192);
    expect(A1).toBeGreaterThan(0n);
    const A2 = P.mmapFd(c0, 0x41000n, 4096);
    expect(A2).toBeGreaterThan(0n);
    expect(P.mmapFd(c0, 0x40000n, 100)).toBeGreaterThan(0n);
    for (const [o, l] of [[0x41000n, 8192], [0x3f000n, 4096], [0n, 4096], [0x40800n, 4096], [0x40000n, 0]] as const) {
      expect(P.mmapFd(c0, o, l)).toBe(-22n);
    }
    expect(P.mmapFd(k.vm, 0n, 4096)).toBe(-19n);
    expect(P.mmapFd(k.kfd, 0n, 4096)).toBe(-19n);
    expect(P.mmapFd(99, 0n, 4096)).toBe(-9n);
    P.write(A1 + 0x1000n, Uint8Array.of(7));
    expect(P.read(A2, 1)).toEqual(Uint8Array.of(7));
    const n = await setupK({}, k.engine);
    const [c] = n.vcpu(0);
    expect(n.P.mmapFd(c, 0x40000n, 4096)).toBe(-22n);
  });
});

describe('KVM vectors F: guest accesses', () => {
  it('V34: faults and bad arguments', async () => {
    const k = withVcpu(await setupK());
    slotA(k);
    expect(k.RGN(2, RO, 0x400000, 0x1000, k.U + 0x20000n)).toBe(0);
    const { v0 } = k;
    expect(v0.write(0x400000n, Uint8Array.of(1))).toBe(-EFAULT);
    expect(v0.read(0x400000n, 2)).toEqual(Uint8Array.of(0, 0));
    expect(v0.write(0x500000n, Uint8Array.of(1))).toBe(-EFAULT);
    expect(v0.write(0x10ffffn, Uint8Array.of(1, 2))).toBe(-EFAULT);
    expect(k.P.read(k.U + 0xffffn, 1)).toEqual(Uint8Array.of(0));
    expect(k.GET(0)).toBe(zeros(8));
    expect(v0.write(0x100000n, new Uint8Array(0))).toBe(-EINVAL);
    expect(v0.write(0x100000n, Uint8Array.of(1), 2)).toBe(-EINVAL);
    expect(v0.write(0x100000n, Uint8Array.of(1), 1)).toBe(-EFAULT);
    expect(v0.write(0xffffffffffffffffn, Uint8Array.of(1, 2))).toBe(-EINVAL);
    expect(v0.read(0x100000n, 0)).toBe(-EINVAL);
  });
});
