// The safe deviations of docs/conformance.md §19.11, one test each, named after the row. Each shows
// that the bit the kernel would lose (or the state it would corrupt) is kept here.
import { describe, expect, it } from 'vitest';
import { errno, uapi } from '../../src/index.js';
import { hx, LOG, setupK, setupKR, slotA, withVcpu, zeros } from './setup.js';

const { EINVAL, EFAULT, ENOSPC, EEXIST, ESRCH } = errno;

describe('safe deviations (docs/conformance.md §19.11)', () => {
  it('D1: GET_DIRTY_LOG to a faulting destination clears nothing', async () => {
    const k = withVcpu(await setupK());
    slotA(k);
    k.W(0x102000);
    const unmapped = k.buf + 0x100000n - 4n; // runs into the guard page after the buffer
    expect(k.GET(0, unmapped)).toBe(-EFAULT);
    expect(k.GET(0, 0x7ffffffffff8n)).toBe(-EFAULT);
    expect(k.GET(0)).toBe(hx('04'));
    expect(k.GET(0)).toBe(zeros(8));
  });

  it('D2: a full ring is never overwritten: writeGuest fails with ENOSPC, nothing written', async () => {
    const k = await setupKR();
    expect(k.RGN(0, LOG, 0x100000, 0x10000, k.U)).toBe(0);
    for (let i = 0; i < 256; i++) expect(k.v0.writeGuest(0x100000n, Uint8Array.of(i & 0xff))).toBe(0);
    expect(k.v0.dirtyRingUsed).toBe(256);
    const first = k.P.read(k.R, 16);
    expect(k.v0.writeGuest(0x101000n, Uint8Array.of(9))).toBe(-ENOSPC);
    expect(k.P.read(k.U + 0x1000n, 1)).toEqual(Uint8Array.of(0));
    expect(k.P.read(k.R, 16)).toEqual(first);
    expect(k.v0.dirtyRingUsed).toBe(256);
    // A guest store stops at soft-full instead of pushing.
    expect(k.v0.write(0x102000n, Uint8Array.of(1))).toBe(0);
    expect(k.P.read(k.U + 0x2000n, 1)).toEqual(Uint8Array.of(0));
    // Two pages need two free entries: with one free, ENOSPC.
    for (let i = 0; i < 256; i++) k.P.write(k.R + BigInt(16 * i), Uint8Array.of(2));
    expect(k.P.ioctl(k.vm, uapi.KVM_RESET_DIRTY_RINGS)).toBe(256);
    for (let i = 0; i < 255; i++) expect(k.v0.writeGuest(0x100000n, Uint8Array.of(1))).toBe(0);
    expect(k.v0.writeGuest(0x100fffn, Uint8Array.of(1, 2))).toBe(-ENOSPC);
    expect(k.v0.writeGuest(0x100fffn, Uint8Array.of(1))).toBe(0);
  });

  it('D3: RESET stops at dirty_index even when later entries carry RESET', async () => {
    const k = await setupKR();
    expect(k.RGN(0, LOG, 0x100000, 0x10000, k.U)).toBe(0);
    k.W(0x101000);
    k.W(0x102000);
    for (let i = 0; i < 10; i++) k.P.write(k.R + BigInt(16 * i), Uint8Array.of(2));
    expect(k.P.ioctl(k.vm, uapi.KVM_RESET_DIRTY_RINGS)).toBe(2);
    expect(k.v0.dirtyRingUsed).toBe(0);
    expect(k.P.read(k.R + 32n, 1)).toEqual(Uint8Array.of(2)); // never pushed: left alone
    k.W(0x103000);
    expect(k.v0.dirtyRingUsed).toBe(1);
    expect(k.P.read(k.R + 32n, 1)).toEqual(Uint8Array.of(1));
  });

  it('D4: each valid entry re-protects its page, whatever its neighbours hold', async () => {
    const k = await setupKR();
    expect(k.RGN(0, LOG, 0x100000, 0x10000, k.U)).toBe(0);
    k.W(0x105000);
    k.W(0x106000);
    // User space corrupts the second entry's offset (out of the slot), then harvests both.
    const off = new Uint8Array(8);
    new DataView(off.buffer).setBigUint64(0, 0xffffffn, true);
    k.P.write(k.R + 24n, off);
    k.P.write(k.R, Uint8Array.of(2));
    k.P.write(k.R + 16n, Uint8Array.of(2));
    expect(k.P.ioctl(k.vm, uapi.KVM_RESET_DIRTY_RINGS)).toBe(2);
    k.W(0x105000); // protected again: recorded
    expect(k.v0.dirtyRingUsed).toBe(1);
    k.W(0x106000); // its entry named no page: still writable, not recorded
    expect(k.v0.dirtyRingUsed).toBe(1);
  });

  it('D5: enabling the ring while a memslot logs is refused', async () => {
    const k = await setupK();
    slotA(k);
    expect(k.CAP(192, 4096)).toBe(-EINVAL);
    expect(k.GET(0)).toBe(zeros(8));
    expect(k.RGN(0, 0, 0x100000, 0x10000, k.U)).toBe(0);
    expect(k.CAP(192, 4096)).toBe(0);
  });

  it('D6: with a ring, turning LOG on protects every page even with INITIALLY_SET', async () => {
    const k = await setupK();
    expect(k.CAP(192, 4096)).toBe(0);
    expect(k.CAP(168, 3)).toBe(0);
    const kr = withVcpu(k);
    expect(k.RGN(0, 0, 0x100000, 0x10000, k.U)).toBe(0);
    kr.W(0x103000); // unprotects, records nothing (no LOG)
    expect(kr.v0.dirtyRingUsed).toBe(0);
    expect(k.RGN(0, LOG, 0x100000, 0x10000, k.U)).toBe(0);
    kr.W(0x103000);
    expect(kr.v0.dirtyRingUsed).toBe(1);
  });

  it('D7: writeGuest checks every page before writing any', async () => {
    const k = withVcpu(await setupK());
    slotA(k);
    expect(k.v0.writeGuest(0x10fff0n, new Uint8Array(0x20).fill(7))).toBe(-EFAULT);
    expect(k.P.read(k.U + 0xfff0n, 16)).toEqual(new Uint8Array(16));
    expect(k.GET(0)).toBe(zeros(8));
    expect(k.v0.write(0x10fff0n, new Uint8Array(0x20).fill(7))).toBe(-EFAULT);
    expect(k.P.read(k.U + 0xfff0n, 16)).toEqual(new Uint8Array(16));
  });

  it('D8: registering a node twice is EEXIST and takes no second reference', async () => {
    const k = await setupK();
    const N = {};
    expect(k.kvm.pageTrackRegisterNotifier(N)).toBe(0);
    expect(k.kvm.usersCount).toBe(2);
    expect(k.kvm.pageTrackRegisterNotifier(N)).toBe(-EEXIST);
    expect(k.kvm.usersCount).toBe(2);
    k.kvm.pageTrackUnregisterNotifier(N);
    expect(k.kvm.usersCount).toBe(1);
    k.kvm.pageTrackUnregisterNotifier(N);
    expect(k.kvm.usersCount).toBe(1);
  });

  it('D9: every handle method of a destroyed VM answers ESRCH', async () => {
    const k = withVcpu(await setupK());
    slotA(k);
    const { kvm, v0 } = k;
    k.P.close(k.c0);
    k.P.close(k.vm);
    expect(kvm.usersCount).toBe(0);
    expect(kvm.writeTrackAddGfn(0x100n)).toBe(-ESRCH);
    expect(kvm.writeTrackRemoveGfn(0x100n)).toBe(-ESRCH);
    expect(kvm.writeTrackCount(0x100n)).toBe(-ESRCH);
    expect(kvm.gfnIsWriteTracked(0x100n)).toBe(false);
    expect(kvm.pageTrackRegisterNotifier({})).toBe(-ESRCH);
    kvm.pageTrackUnregisterNotifier({});
    expect(kvm.gfnToHva(0x100n)).toBe(-3n);
    expect(v0.write(0x100000n, Uint8Array.of(1))).toBe(-ESRCH);
    expect(v0.writeGuest(0x100000n, Uint8Array.of(1))).toBe(-ESRCH);
    expect(v0.read(0x100000n, 1)).toBe(-ESRCH);
    expect(v0.writeMany(new BigUint64Array([0x100000n]), Uint8Array.of(1), 1)).toBe(-ESRCH);
    expect(v0.dirtyRingUsed).toBe(0);
    expect(v0.dirtyRingSoftFull).toBe(false);
  });

  it('D10: only ring pages map; unmodelled vCPU and /dev/kvm calls answer EINVAL or 0', async () => {
    const k = withVcpu(await setupK());
    expect(k.P.mmapFd(k.c0, 0n, 4096)).toBe(-22n); // kvm_run
    expect(k.P.mmapFd(k.c0, 0x1000n, 4096)).toBe(-22n); // pio page
    expect(k.P.ioctl(k.kfd, 0xae04)).toBe(-EINVAL); // KVM_GET_VCPU_MMAP_SIZE
    expect(k.P.ioctl(k.c0, 0xae80)).toBe(-EINVAL); // KVM_RUN
    expect(k.P.ioctl(k.kfd, uapi.KVM_CHECK_EXTENSION, 182)).toBe(0); // HALT_POLL
    expect(k.CAP(182, 1)).toBe(-EINVAL);
  });
});
