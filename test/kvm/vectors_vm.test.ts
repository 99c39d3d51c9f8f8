// KVM acceptance vectors, groups A and B: /dev/kvm, VMs, memslots (docs/conformance.md
// §19.1-§19.3).
import { describe, expect, it } from 'vitest';
import { errno, uapi } from '../../src/index.js';
import { LOG, RO, region, setupK, slotA, withVcpu } from './setup.js';

const { EINVAL, EFAULT, EEXIST, ENOENT, ESRCH, EBADF } = errno;

describe('KVM vectors A: /dev/kvm and VMs', () => {
  it('V1: API version and capabilities on /dev/kvm and on a VM fd', async () => {
    const k = await setupK();
    expect(k.P.ioctl(k.kfd, uapi.KVM_GET_API_VERSION, 0)).toBe(12);
    expect(k.P.ioctl(k.kfd, uapi.KVM_GET_API_VERSION, 1)).toBe(-EINVAL);
    const caps: [number, number][] = [[3, 1], [9, 1024], [10, 32764], [66, 1024], [81, 1], [89, 1], [118, 2],
      [128, 4096], [166, 0], [168, 3], [192, 1048576], [223, 1048576], [225, 0], [231, 0]];
    for (const fd of [k.kfd, k.vm]) {
      for (const [c, a] of caps) expect([c, k.P.ioctl(fd, uapi.KVM_CHECK_EXTENSION, c)]).toEqual([c, a]);
    }
    const s = await setupK({ kvmUserMemSlots: 100, kvmMaxVcpus: 8 });
    for (const [c, a] of [[10, 100], [9, 8], [66, 8], [128, 32]]) {
      expect(s.P.ioctl(s.kfd, uapi.KVM_CHECK_EXTENSION, c)).toBe(a);
      expect(s.P.ioctl(s.vm, uapi.KVM_CHECK_EXTENSION, c)).toBe(a);
    }
  });

  it('V4: usersCount counts the VM file, vCPU files and the KVM device; the last close destroys', async () => {
    const k = await setupK();
    slotA(k);
    expect(k.kvm.usersCount).toBe(1);
    const [c0, v0] = k.vcpu(0);
    expect(k.kvm.usersCount).toBe(2);
    const cd = new Uint8Array([4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(k.P.ioctl(k.vm, uapi.KVM_CREATE_DEVICE, cd)).toBe(0);
    const d = new DataView(cd.buffer).getUint32(4, true);
    expect(k.kvm.usersCount).toBe(3);
    expect(k.P.close(c0)).toBe(0);
    expect(k.kvm.usersCount).toBe(2);
    expect(v0.write(0x100000n, Uint8Array.of(1))).toBe(1);
    expect(k.P.close(d)).toBe(0);
    expect(k.kvm.usersCount).toBe(1);
    expect(k.P.close(k.vm)).toBe(0);
    expect(k.kvm.usersCount).toBe(0);
    expect(k.kvm.writeTrackAddGfn(0x100n)).toBe(-ESRCH);
    expect(v0.read(0n, 1)).toBe(-ESRCH);
    expect(k.P.kvmFromFd(k.vm)).toBe(-EBADF);
  });
});

describe('KVM vectors B: memslots', () => {
  it('V5: alignment and user ranges', async () => {
    const k = await setupK();
    const { U } = k;
    expect(k.RGN(0, 0, 0x100000, 0x10000, U)).toBe(0);
    expect(k.RGN(1, 0, 0x200800, 0x1000, U)).toBe(-EINVAL);
    expect(k.RGN(1, 0, 0x200000, 0x1800, U)).toBe(-EINVAL);
    expect(k.RGN(1, 0, 0x200000, 0x1000, U + 0x800n)).toBe(-EINVAL);
    expect(k.RGN(1, 0, 0x200000, 0x1000, 0x7ffffffff000n)).toBe(-EINVAL);
    expect(k.RGN(1, 0, 0x200000, 0x2000, 0x7fffffffe000n)).toBe(-EINVAL);
    expect(k.RGN(1, 0, 0x200000, 0x1000, 0x7fffffffe000n)).toBe(0);
    expect(k.P.ioctl(k.vm, uapi.KVM_SET_USER_MEMORY_REGION, region(2, 0, 0x300000n, 0x1000n, U, 31))).toBe(-EFAULT);
  });

  it('V6: slot ids, address spaces and flags', async () => {
    const k = await setupK();
    const { U } = k;
    expect(k.RGN(32764, 0, 0x400000, 0x1000, U)).toBe(-EINVAL);
    expect(k.RGN(32763, 0, 0x400000, 0x1000, U)).toBe(0);
    expect(k.RGN(0x00010000, 0, 0x400000, 0x1000, U)).toBe(0);
    expect(k.RGN(0x00020000, 0, 0x500000, 0x1000, U)).toBe(-EINVAL);
    expect(k.RGN(0x00017ffc, 0, 0x500000, 0x1000, U)).toBe(-EINVAL);
    expect(k.RGN(5, 4, 0x600000, 0x1000, U)).toBe(-EINVAL);
    expect(k.RGN(5, 0x80, 0x600000, 0x1000, U)).toBe(-EINVAL);
    expect(k.RGN(5, RO, 0x600000, 0x1000, U)).toBe(0);
    expect(k.RGN(6, LOG | RO, 0x700000, 0x1000, U)).toBe(0);
  });

  it('V7: overlaps within an address space; slots may share host memory', async () => {
    const k = withVcpu(await setupK());
    const { U } = k;
    expect(k.RGN(0, 0, 0x100000, 0x10000, U)).toBe(0);
    expect(k.RGN(1, 0, 0x10f000, 0x2000, U + 0x100000n)).toBe(-EEXIST);
    expect(k.RGN(1, 0, 0xff000, 0x2000, U + 0x100000n)).toBe(-EEXIST);
    expect(k.RGN(1, 0, 0x110000, 0x2000, U + 0x100000n)).toBe(0);
    expect(k.RGN(2, 0, 0x400000, 0x1000, U)).toBe(0);
    expect(k.v0.write(0x400000n, Uint8Array.of(0x5a))).toBe(1);
    expect(k.v0.read(0x100000n, 1)).toEqual(Uint8Array.of(0x5a));
  });

  it('V9: DELETE', async () => {
    const k = await setupK();
    expect(k.RGN(0, 0, 0x100000, 0x10000, k.U)).toBe(0);
    expect(k.RGN(7, 0, 0, 0, 0n)).toBe(-EINVAL);
    expect(k.RGN(0, 0, 0x123, 0, 0n)).toBe(-EINVAL);
    expect(k.RGN(0, 4, 0, 0, 0n)).toBe(-EINVAL);
    expect(k.RGN(0, 0, 0x5000, 0, 0x1000n)).toBe(0);
    expect(k.RGN(0, 0, 0, 0, 0n)).toBe(-EINVAL);
    expect(k.GET(0)).toBe(-ENOENT);
    expect(k.RGN(0, 0, 0x100000, 0x10000, k.U)).toBe(0);
  });
});
