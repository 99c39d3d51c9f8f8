// KVM acceptance vectors, groups C and D: bitmap mode, manual protect, CLEAR (docs/conformance.md
// §19.4).
import { describe, expect, it } from 'vitest';
import { errno, uapi } from '../../src/index.js';
import { dirtyLog, enableCap, hb, hx, LOG, setupK, slotA, slotB, withVcpu, zeros } from './setup.js';

const { EINVAL, EFAULT, ENOENT } = errno;

describe('KVM vectors C: bitmap mode', () => {
  it('V11: fetch-and-clear', async () => {
    const k = withVcpu(await setupK());
    slotA(k);
    k.W(0x100000); k.W(0x103008); k.W(0x10ffff);
    expect(k.GET(0)).toBe(hx('09 80'));
    expect(k.GET(0)).toBe(zeros(8));
    k.W(0x103000);
    expect(k.GET(0)).toBe(hx('08'));
  });

  it('V13: GET without a bitmap, bad slots, short argument', async () => {
    const k = await setupK();
    expect(k.RGN(0, 0, 0x100000, 0x10000, k.U)).toBe(0);
    expect(k.GET(0)).toBe(-ENOENT);
    expect(k.GET(9)).toBe(-ENOENT);
    expect(k.GET(0x00010000)).toBe(-ENOENT);
    expect(k.GET(32764)).toBe(-EINVAL);
    expect(k.GET(0x00020000)).toBe(-EINVAL);
    expect(k.P.ioctl(k.vm, uapi.KVM_GET_DIRTY_LOG, dirtyLog(0, k.buf, 15))).toBe(-EFAULT);
  });

  it('V14: LOG toggled on and off', async () => {
    const k = withVcpu(await setupK());
    const { U } = k;
    expect(k.RGN(0, 0, 0x100000, 0x10000, U)).toBe(0);
    k.W(0x103000);
    expect(k.RGN(0, LOG, 0x100000, 0x10000, U)).toBe(0);
    expect(k.GET(0)).toBe(zeros(8));
    k.W(0x103000);
    expect(k.GET(0)).toBe(hx('08'));
    k.W(0x103000);
    expect(k.RGN(0, 0, 0x100000, 0x10000, U)).toBe(0);
    expect(k.GET(0)).toBe(-ENOENT);
    expect(k.RGN(0, LOG, 0x100000, 0x10000, U)).toBe(0);
    expect(k.GET(0)).toBe(zeros(8));
  });

  it('V15: MOVE keeps the bitmap; bit i names new_base + i', async () => {
    const k = withVcpu(await setupK());
    slotA(k);
    k.W(0x103000);
    expect(k.RGN(0, LOG, 0x300000, 0x10000, k.U)).toBe(0);
    expect(k.GET(0)).toBe(hx('08'));
    expect(k.kvm.gfnToHva(0x303n)).toBe(k.U + 0x3000n);
    expect(k.kvm.gfnToHva(0x103n)).toBe(-14n);
    expect(k.v0.write(0x103000n, Uint8Array.of(1))).toBe(-EFAULT);
    expect(k.v0.read(0x303000n, 1)).toEqual(Uint8Array.of(0xab));
  });

  it('V16: manual protect: GET does not clear, CLEAR does', async () => {
    const k = await setupK();
    expect(k.CAP(168, 1)).toBe(0);
    slotA(k);
    const kk = withVcpu(k);
    kk.W(0x101000); kk.W(0x102000);
    expect(k.GET(0)).toBe(hx('06'));
    expect(k.GET(0)).toBe(hx('06'));
    expect(k.CLR(0, 0, 16, hb('02'))).toBe(0);
    expect(k.GET(0)).toBe(hx('04'));
    kk.W(0x101000);
    expect(k.GET(0)).toBe(hx('06'));
  });

  it('V18: ENABLE_CAP(168) arguments', async () => {
    const k = await setupK();
    for (const a of [2, 4, 5]) expect(k.CAP(168, a)).toBe(-EINVAL);
    expect(k.CAP(168, 1, 1)).toBe(-EINVAL);
    expect(k.CAP(168, 0)).toBe(0);
    expect(k.CAP(168, 3)).toBe(0);
    expect(k.P.ioctl(k.vm, uapi.KVM_ENABLE_CAP, enableCap(168, 0, 1n, 0xffn))).toBe(0);
    expect(k.CAP(166, 1)).toBe(-EINVAL);
    expect(k.P.ioctl(k.vm, uapi.KVM_ENABLE_CAP, enableCap(168, 0, 1n, 0n, 103))).toBe(-EFAULT);
  });

  it('V19: GET to an unwritable destination changes nothing', async () => {
    const k = withVcpu(await setupK());
    slotA(k);
    k.W(0x102000);
    expect(k.GET(0, 0x7ffffffffff8n)).toBe(-EFAULT);
    expect(k.GET(0)).toBe(hx('04'));
  });
});

describe('KVM vectors D: CLEAR', () => {
  it('V20: CLEAR alignment rules and faults', async () => {
    const k = await setupK();
    expect(k.CAP(168, 3)).toBe(0);
    slotB(k);
    const ff = hb('ff ff ff ff ff ff ff ff');
    for (const [s, f, n] of [[1, 32, 64], [1, 64, 32], [1, 64, 37], [1, 128, 0], [1, 96, 4], [9, 1, 64]]) {
      expect([s, f, n, k.CLR(s, f, n, ff)]).toEqual([s, f, n, -EINVAL]);
    }
    expect(k.CLR(9, 0, 64, ff)).toBe(-ENOENT);
    expect(k.CLR(1, 0, 0, 0n)).toBe(0);
    expect(k.CLR(1, 64, 36, 0x7ffffffffffcn)).toBe(-EFAULT);
    expect(k.GET(1)).toBe(hx('ff ff ff ff ff ff ff ff ff ff ff ff 0f', 16));
  });

  it('V22: CLEAR of the first 64 pages', async () => {
    const k = await setupK();
    expect(k.CAP(168, 3)).toBe(0);
    slotB(k);
    expect(k.CLR(1, 0, 64, hb('ff ff ff ff ff ff ff ff'))).toBe(0);
    expect(k.GET(1)).toBe(hx('00 00 00 00 00 00 00 00 ff ff ff ff 0f', 16));
  });
});
