// KVM acceptance vectors, groups G and H: write tracking and the KVM-VFIO device
// (docs/conformance.md §19.7, §19.9).
import { describe, expect, it } from 'vitest';
import { errno, uapi, type Kvm, type PageTrackNotifierNode } from '../../src/index.js';
import { createDevice, deviceAttr, hx, LOG, setupK, setupKR, setupKV, slotA, withVcpu } from './setup.js';

const { EINVAL, EEXIST, EBADF, EFAULT, ENXIO, EBUSY, ENODEV } = errno;
const h = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
const eight = Uint8Array.of(0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18);

describe('KVM vectors G: write tracking', () => {
  it('V36: counts saturate at 65535 and stop at 0; only address-space-0 slots', async () => {
    const k = await setupK();
    slotA(k);
    const { kvm } = k;
    expect(kvm.writeTrackAddGfn(0x105n)).toBe(0);
    expect([kvm.writeTrackCount(0x105n), kvm.gfnIsWriteTracked(0x105n)]).toEqual([1, true]);
    expect(kvm.writeTrackAddGfn(0x105n)).toBe(0);
    expect(kvm.writeTrackCount(0x105n)).toBe(2);
    expect(kvm.writeTrackRemoveGfn(0x105n)).toBe(0);
    expect([kvm.writeTrackCount(0x105n), kvm.gfnIsWriteTracked(0x105n)]).toEqual([1, true]);
    expect(kvm.writeTrackRemoveGfn(0x105n)).toBe(0);
    expect([kvm.writeTrackCount(0x105n), kvm.gfnIsWriteTracked(0x105n)]).toEqual([0, false]);
    expect(kvm.writeTrackRemoveGfn(0x105n)).toBe(0);
    expect(kvm.writeTrackCount(0x105n)).toBe(0);
    expect(kvm.writeTrackAddGfn(0x500n)).toBe(-EINVAL);
    expect(kvm.writeTrackRemoveGfn(0x500n)).toBe(-EINVAL);
    expect(kvm.writeTrackCount(0x500n)).toBe(-EINVAL);
    expect(kvm.gfnIsWriteTracked(0x500n)).toBe(false);
    for (let i = 0; i < 65535; i++) kvm.writeTrackAddGfn(0x105n);
    expect(kvm.writeTrackCount(0x105n)).toBe(65535);
    expect(kvm.writeTrackAddGfn(0x105n)).toBe(0);
    expect(kvm.writeTrackCount(0x105n)).toBe(65535);
    for (let i = 0; i < 65535; i++) kvm.writeTrackRemoveGfn(0x105n);
    expect(kvm.writeTrackCount(0x105n)).toBe(0);
    expect(k.RGN(0x00010001, 0, 0x600000, 0x1000, k.U)).toBe(0);
    expect(kvm.writeTrackAddGfn(0x600n)).toBe(-EINVAL);
  });

  it('V37: memory, then the record, then trackWrite', async () => {
    for (const mode of ['ring', 'bitmap'] as const) {
      const k = mode === 'ring' ? await setupKR() : withVcpu(await setupK());
      if (mode === 'ring') expect(k.RGN(0, LOG, 0x100000, 0x10000, k.U)).toBe(0);
      else slotA(k);
      const seen: string[] = [];
      const N: PageTrackNotifierNode = {
        trackWrite(gpa, data, bytes) {
          seen.push(`${gpa.toString(16)} ${h(data)} ${bytes}`);
          expect(k.P.read(k.U + 0x5010n, 8)).toEqual(eight);
          if (mode === 'ring') expect(h(k.P.read((k as unknown as { R: bigint }).R, 16))).toBe(hx('01 00 00 00 00 00 00 00 05', 16));
        },
      };
      expect(k.kvm.pageTrackRegisterNotifier(N)).toBe(0);
      expect(k.kvm.writeTrackAddGfn(0x105n)).toBe(0);
      expect(k.v0.write(0x105010n, eight)).toBe(8);
      expect(seen).toEqual([`105010 ${h(eight)} 8`]);
      if (mode === 'bitmap') expect(k.GET(0)).toBe(hx('20'));
    }
  });

  it('V38: tracked pages record on every store; writeGuest notifies nobody', async () => {
    const k = await setupKR();
    expect(k.RGN(0, LOG, 0x100000, 0x10000, k.U)).toBe(0);
    let calls = 0;
    const N = { trackWrite: () => void calls++ };
    expect(k.kvm.pageTrackRegisterNotifier(N)).toBe(0);
    expect(k.kvm.writeTrackAddGfn(0x105n)).toBe(0);
    expect(k.v0.write(0x105010n, eight)).toBe(8);
    expect(k.v0.write(0x105010n, eight)).toBe(8);
    expect(k.v0.write(0x105010n, eight)).toBe(8);
    expect(calls).toBe(3);
    k.W(0x106000); k.W(0x106000);
    expect(k.v0.writeGuest(0x105000n, Uint8Array.of(1))).toBe(0);
    expect(calls).toBe(3);
    expect(k.v0.dirtyRingUsed).toBe(5);
  });

  it('V41: trackRemoveRegion after the slot and its counts are gone', async () => {
    const k = await setupK();
    slotA(k);
    const seen: [bigint, number, number][] = [];
    const N = {
      trackWrite: () => {},
      trackRemoveRegion: (gfn: bigint, n: number) => seen.push([gfn, n, k.kvm.writeTrackCount(0x105n)]),
    };
    expect(k.kvm.pageTrackRegisterNotifier(N)).toBe(0);
    k.kvm.writeTrackAddGfn(0x105n);
    k.kvm.writeTrackAddGfn(0x105n);
    expect(k.RGN(0, 0, 0x100000, 0, k.U)).toBe(0);
    expect(seen).toEqual([[0x100n, 16, -EINVAL]]);
    slotA(k);
    expect(k.kvm.writeTrackCount(0x105n)).toBe(0);
  });

  it('V42: MOVE is refused while a node is registered; after it, counts are zero', async () => {
    const k = await setupK();
    slotA(k);
    expect(k.RGN(1, 0, 0x500000, 0x1000, k.U + 0x100000n)).toBe(0);
    let removes = 0;
    const N = { trackRemoveRegion: () => void removes++ };
    expect(k.kvm.pageTrackRegisterNotifier(N)).toBe(0);
    expect(k.kvm.writeTrackAddGfn(0x105n)).toBe(0);
    expect(k.RGN(0, LOG, 0x4f8000, 0x10000, k.U)).toBe(-EEXIST);
    expect(k.RGN(0, LOG, 0x300000, 0x10000, k.U)).toBe(-EINVAL);
    expect(k.kvm.gfnToHva(0x105n)).toBe(k.U + 0x5000n);
    expect(k.kvm.writeTrackCount(0x105n)).toBe(1);
    k.kvm.pageTrackUnregisterNotifier(N);
    expect(k.RGN(0, LOG, 0x300000, 0x10000, k.U)).toBe(0);
    expect(k.kvm.writeTrackCount(0x305n)).toBe(0);
    expect(k.kvm.writeTrackCount(0x105n)).toBe(-EINVAL);
    expect(removes).toBe(0);
  });
});

describe('KVM vectors H: KVM-VFIO', () => {
  it('V46: KVM_CREATE_DEVICE', async () => {
    const k = await setupK();
    const { P, vm } = k;
    const t = createDevice(4, 0xffffffff, 1);
    expect(P.ioctl(vm, uapi.KVM_CREATE_DEVICE, t)).toBe(0);
    expect(h(t)).toBe('04 00 00 00 ff ff ff ff 01 00 00 00');
    const cd = createDevice(4, 0, 0);
    expect(P.ioctl(vm, uapi.KVM_CREATE_DEVICE, cd)).toBe(0);
    const d = new DataView(cd.buffer).getUint32(4, true);
    expect(d).toBeGreaterThan(0);
    expect(h(cd.subarray(0, 4)) + ' ' + h(cd.subarray(8))).toBe('04 00 00 00 00 00 00 00');
    expect(k.kvm.usersCount).toBe(2);
    expect(P.ioctl(vm, uapi.KVM_CREATE_DEVICE, createDevice(4, 0, 0))).toBe(-EBUSY);
    expect(P.ioctl(vm, uapi.KVM_CREATE_DEVICE, createDevice(4, 0, 1))).toBe(0);
    for (const t2 of [200, 0, 5]) expect(P.ioctl(vm, uapi.KVM_CREATE_DEVICE, createDevice(t2, 0, 0))).toBe(-ENODEV);
    expect(P.ioctl(vm, uapi.KVM_CREATE_DEVICE, createDevice(4, 0, 0, 11))).toBe(-EFAULT);
    expect(P.close(d)).toBe(0);
    expect(k.kvm.usersCount).toBe(1);
    expect(P.ioctl(vm, uapi.KVM_CREATE_DEVICE, createDevice(4, 0, 2))).toBe(0);
  });

  it('V47: FILE_ADD and FILE_DEL arguments', async () => {
    const k = await setupKV();
    const [c0] = k.vcpu(0);
    expect(k.ADD(-1)).toBe(-EBADF);
    expect(k.P.ioctl(k.kv, uapi.KVM_SET_DEVICE_ATTR, deviceAttr(0, 1, 1n, 0x7ffffffffffen))).toBe(-EFAULT);
    for (const fd of [k.kfd, k.cfd, k.vm, k.kv, c0]) expect(k.ADD(fd)).toBe(-EINVAL);
    expect(k.ADD(k.gfd)).toBe(0);
    expect(k.ADD(k.gfd)).toBe(-EEXIST);
    expect(k.ATTR(0, 2, 1, k.gfd)).toBe(-ENXIO);
    expect(k.ATTR(0, 1, 3, k.gfd)).toBe(-ENXIO);
    expect(k.ATTR(0xffffffff, 1, 2, k.gfd)).toBe(0);
    expect(k.P.ioctl(k.kv, uapi.KVM_SET_DEVICE_ATTR, deviceAttr(0, 1, 1n, 0n, 23))).toBe(-EFAULT);
  });

  it('V49: an entry keeps the group file; the release lets it go', async () => {
    const k = await setupKV();
    expect(k.ADD(k.gfd)).toBe(0);
    expect(k.P.close(k.gfd)).toBe(0);
    expect(k.P.open(`/dev/vfio/${k.M.id}`)).toBe(-EBUSY);
    expect(k.MAP(0n, 0x1000n)).toBe(0);
    expect(k.P.close(k.kv)).toBe(0);
    expect(k.MAP(0x1000n, 0x1000n)).toBe(-EINVAL);
    expect(k.P.open(`/dev/vfio/${k.M.id}`)).toBeGreaterThan(0);
  });

  it('V50: dev.kvm at open, the unlink callback at DEL, the reference until close', async () => {
    const k = await setupKV();
    const seen: Kvm[] = [];
    expect(k.kvm.usersCount).toBe(2);
    k.D.registerKvmUnlink((v) => seen.push(v));
    expect(k.ADD(k.gfd)).toBe(0);
    expect(k.kvm.usersCount).toBe(2);
    const dfd = k.dfd();
    expect(k.D.kvm).toBe(k.kvm);
    expect(k.kvm.usersCount).toBe(3);
    const dfd2 = k.dfd();
    expect(k.kvm.usersCount).toBe(3);
    expect(k.DEL(k.gfd)).toBe(0);
    expect(seen).toEqual([k.kvm]);
    expect(k.D.kvm).toBe(k.kvm);
    k.P.close(dfd);
    expect(k.D.kvm).toBe(k.kvm);
    k.P.close(dfd2);
    expect(k.D.kvm).toBe(null);
    expect(k.kvm.usersCount).toBe(2);
    k.dfd();
    expect(k.D.kvm).toBe(null);
    expect(seen.length).toBe(1);
  });

  it('V51: closing the KVM-VFIO device unlinks; the device file keeps the group', async () => {
    const k = await setupKV();
    expect(k.MAP(0n, 0x1000n)).toBe(0);
    expect(k.ADD(k.gfd)).toBe(0);
    const dfd = k.dfd();
    expect(k.D.kvm).toBe(k.kvm);
    expect(k.kvm.usersCount).toBe(3);
    const seen: Kvm[] = [];
    k.D.registerKvmUnlink((v) => seen.push(v));
    expect(k.P.close(k.gfd)).toBe(0);
    expect(k.P.close(k.kv)).toBe(0);
    expect(seen).toEqual([k.kvm]);
    expect(k.kvm.usersCount).toBe(2);
    expect(k.P.open(`/dev/vfio/${k.M.id}`)).toBe(-EBUSY);
    k.P.close(dfd);
    expect(k.D.kvm).toBe(null);
    expect(k.kvm.usersCount).toBe(1);
    expect(k.MAP(0x1000n, 0x1000n)).toBe(-EINVAL);
    expect(k.P.open(`/dev/vfio/${k.M.id}`)).toBeGreaterThan(0);
    expect(seen.length).toBe(1);
  });

  it('V54: the unlink callback removes tracking and unregisters its node', async () => {
    const k = await setupKV();
    slotA(k);
    const [, v0] = k.vcpu(0);
    let writes = 0;
    const N = { trackWrite: () => void writes++ };
    k.D.registerKvmUnlink((kk) => {
      kk.writeTrackRemoveGfn(0x105n);
      kk.pageTrackUnregisterNotifier(N);
    });
    expect(k.ADD(k.gfd)).toBe(0);
    k.dfd();
    const kk = k.D.kvm!;
    expect(kk.pageTrackRegisterNotifier(N)).toBe(0);
    expect(kk.usersCount).toBe(5);
    expect(kk.writeTrackAddGfn(0x105n)).toBe(0);
    expect(v0.write(0x105008n, eight)).toBe(8);
    expect(writes).toBe(1);
    expect(k.GET(0)).toBe(hx('20'));
    expect(k.DEL(k.gfd)).toBe(0);
    expect(kk.writeTrackCount(0x105n)).toBe(0);
    expect(kk.usersCount).toBe(4);
    expect(v0.write(0x105008n, eight)).toBe(8);
    expect(writes).toBe(1);
    expect(k.GET(0)).toBe(hx('20'));
  });
});
