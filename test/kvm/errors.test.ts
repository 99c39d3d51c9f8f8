// One test per rule and invalid input of docs/conformance.md §19.1–§19.9 not already an acceptance
// vector: the exact errno, and the state unchanged afterwards.
import { describe, expect, it } from 'vitest';
import { createEngine, errno, uapi } from '../../src/index.js';
import { hx, LOG, region, RO, setupK, setupKV, slotA, withVcpu, zeros } from './setup.js';

const { EINVAL, EEXIST, ENOTTY, EBADF, EPERM, ENXIO, EFAULT, ENOENT } = errno;

describe('VMs and vCPUs', () => {
  it('KVM_CREATE_VM of a type other than 0 is EINVAL; -1 is 2^64-1', async () => {
    const k = await setupK();
    expect(k.P.ioctl(k.kfd, uapi.KVM_CREATE_VM, 1)).toBe(-EINVAL);
    expect(k.P.ioctl(k.kfd, uapi.KVM_CREATE_VM, -1)).toBe(-EINVAL);
    expect(k.P.ioctl(k.kfd, uapi.KVM_GET_API_VERSION, -1)).toBe(-EINVAL);
    expect(k.P.ioctl(k.kfd, uapi.KVM_GET_API_VERSION)).toBe(12);
  });

  it('KVM_CREATE_VCPU: id too large, too many, duplicate', async () => {
    const k = await setupK({ kvmMaxVcpus: 2 });
    expect(k.P.ioctl(k.vm, uapi.KVM_CREATE_VCPU, 8)).toBe(-EINVAL);
    expect(k.P.ioctl(k.vm, uapi.KVM_CREATE_VCPU, -1)).toBe(-EINVAL);
    expect(k.P.ioctl(k.vm, uapi.KVM_CREATE_VCPU, 7)).toBeGreaterThan(0);
    expect(k.P.ioctl(k.vm, uapi.KVM_CREATE_VCPU, 7)).toBe(-EEXIST);
    const c = k.P.ioctl(k.vm, uapi.KVM_CREATE_VCPU, 0);
    expect(c).toBeGreaterThan(0);
    expect(k.P.ioctl(k.vm, uapi.KVM_CREATE_VCPU, 1)).toBe(-EINVAL);
    k.P.close(c); // a closed vCPU still counts toward the limit
    expect(k.P.ioctl(k.vm, uapi.KVM_CREATE_VCPU, 1)).toBe(-EINVAL);
    expect(k.kvm.usersCount).toBe(2);
  });

  it('unknown requests: EINVAL on /dev/kvm and vCPU fds, ENOTTY on VM and KVM device fds', async () => {
    const k = await setupKV();
    const [c0] = k.vcpu(0);
    expect(k.P.ioctl(k.kfd, 0x1234)).toBe(-EINVAL);
    expect(k.P.ioctl(c0, uapi.KVM_GET_DIRTY_LOG)).toBe(-EINVAL);
    expect(k.P.ioctl(k.vm, 0x40a0ae49)).toBe(-ENOTTY); // KVM_SET_USER_MEMORY_REGION2
    expect(k.P.ioctl(k.kv, 0x1234)).toBe(-ENOTTY);
    expect(k.P.ioctl(k.kv, uapi.KVM_GET_DEVICE_ATTR, new Uint8Array(0))).toBe(-EPERM);
    expect(k.P.ioctl(99, uapi.KVM_CHECK_EXTENSION, 3)).toBe(-EBADF);
  });

  it('kvmFromFd / vcpuFromFd: EBADF and EINVAL; one object per VM and vCPU', async () => {
    const k = withVcpu(await setupK());
    expect(k.P.kvmFromFd(99)).toBe(-EBADF);
    expect(k.P.kvmFromFd(k.kfd)).toBe(-EINVAL);
    expect(k.P.kvmFromFd(k.c0)).toBe(-EINVAL);
    expect(k.P.vcpuFromFd(99)).toBe(-EBADF);
    expect(k.P.vcpuFromFd(k.vm)).toBe(-EINVAL);
    expect(k.P.kvmFromFd(k.vm)).toBe(k.kvm);
    expect(k.P.vcpuFromFd(k.c0)).toBe(k.v0);
    expect(k.v0.id).toBe(0);
  });

  it('createEngine rejects KVM options out of range', async () => {
    for (const o of [{ kvmUserMemSlots: 0 }, { kvmUserMemSlots: 32765 }, { kvmMaxVcpus: 0 }, { kvmMaxVcpus: 4097 }, { kvmMaxVcpus: 1.5 }]) {
      await expect(createEngine(o)).rejects.toThrow(RangeError);
    }
  });

  it('wrong JavaScript types are TypeErrors', async () => {
    const k = withVcpu(await setupK());
    expect(() => k.v0.write(1 as unknown as bigint, Uint8Array.of(1))).toThrow(TypeError);
    expect(() => k.v0.write(-1n, Uint8Array.of(1))).toThrow(TypeError);
    expect(() => k.v0.write(1n << 64n, Uint8Array.of(1))).toThrow(TypeError);
    expect(() => k.v0.read(0n, 1, '0' as unknown as number)).toThrow(TypeError);
    expect(() => k.kvm.writeTrackAddGfn(5 as unknown as bigint)).toThrow(TypeError);
    expect(() => k.kvm.gfnToHva(-1n)).toThrow(TypeError);
    expect(() => k.kvm.gfnIsWriteTracked(1n << 64n)).toThrow(TypeError);
    expect(() => k.v0.writeMany([1n] as unknown as BigUint64Array, Uint8Array.of(1), 1)).toThrow(TypeError);
    expect(() => k.P.ioctl(k.vm, uapi.KVM_SET_USER_MEMORY_REGION, 5)).toThrow(TypeError);
  });
});

describe('§3.1: KVM_SET_USER_MEMORY_REGION, steps in order', () => {
  it('step 8: a slot ending at 2^64 wraps', async () => {
    const k = await setupK();
    expect(k.RGN(0, 0, 0xfffffffffffff000n, 0x1000, k.U)).toBe(-EINVAL);
  });
  it('step 9: more than 2^31-1 pages', async () => {
    const k = await setupK();
    const big = 0x80000000n * 4096n;
    expect(k.RGN(0, 0, 0, big, 0x1000000000n)).toBe(-EINVAL);
  });
  it('step 14: the last gfn above 2^40-1', async () => {
    const k = await setupK();
    expect(k.RGN(0, 0, (1n << 52n) - 0x1000n, 0x2000, k.U)).toBe(-EINVAL);
    expect(k.RGN(0, 0, (1n << 52n) - 0x1000n, 0x1000, k.U)).toBe(0);
  });
  it('step 11: changing uaddr, npages or READONLY of a slot is EINVAL, slot unchanged', async () => {
    const k = withVcpu(await setupK());
    slotA(k);
    k.W(0x101000);
    expect(k.RGN(0, LOG, 0x100000, 0x10000, k.U + 0x1000n)).toBe(-EINVAL);
    expect(k.RGN(0, LOG, 0x100000, 0x20000, k.U)).toBe(-EINVAL);
    expect(k.RGN(0, LOG | RO, 0x100000, 0x10000, k.U)).toBe(-EINVAL);
    expect(k.RGN(0, LOG, 0x100000, 0x10000, k.U)).toBe(0); // no change
    expect(k.GET(0)).toBe(hx('02'));
  });
  it('step 12: a MOVE may overlap its own old range', async () => {
    const k = await setupK();
    slotA(k);
    expect(k.RGN(1, 0, 1n << 52n, 0x1000, k.U)).toBe(-EINVAL);
    expect(k.RGN(0, LOG, 0x108000, 0x10000, k.U)).toBe(0); // MOVE over its own old range
    expect(k.kvm.gfnToHva(0x108n)).toBe(k.U);
  });
  it('a new slot with INITIALLY_SET: all bits set, the padding clear', async () => {
    const k = await setupK();
    expect(k.CAP(168, 3)).toBe(0);
    expect(k.RGN(0, LOG, 0x100000, 0x5000, k.U)).toBe(0);
    expect(k.GET(0)).toBe(hx('1f'));
  });
  it('FLAGS_ONLY with INITIALLY_SET keeps protection; without it protects', async () => {
    const k = withVcpu(await setupK());
    expect(k.CAP(168, 1)).toBe(0);
    expect(k.RGN(0, 0, 0x100000, 0x10000, k.U)).toBe(0);
    k.W(0x101000);
    expect(k.RGN(0, LOG, 0x100000, 0x10000, k.U)).toBe(0);
    expect(k.GET(0)).toBe(zeros(8));
    k.W(0x101000);
    expect(k.GET(0)).toBe(hx('02'));
  });
});

describe('§4.3-§4.4 and §7.2 argument errors', () => {
  it('GET and CLEAR with a ring are ENXIO', async () => {
    const k = await setupK();
    expect(k.CAP(192, 4096)).toBe(0);
    expect(k.GET(0)).toBe(-ENXIO);
    expect(k.CLR(0, 0, 64)).toBe(-ENXIO);
    expect(k.P.ioctl(k.vm, uapi.KVM_RESET_DIRTY_RINGS)).toBe(0);
  });
  it('RESET without a ring is EINVAL', async () => {
    const k = await setupK();
    expect(k.P.ioctl(k.vm, uapi.KVM_RESET_DIRTY_RINGS)).toBe(-EINVAL);
  });
  it('CLEAR: first_page misaligned is checked before the slot; short argument EFAULT', async () => {
    const k = await setupK();
    expect(k.CLR(9, 1, 64)).toBe(-EINVAL);
    expect(k.CLR(9, 0, 64)).toBe(-ENOENT);
    expect(k.P.ioctl(k.vm, uapi.KVM_CLEAR_DIRTY_LOG, new Uint8Array(23))).toBe(-EFAULT);
  });
  it('HAS_DEVICE_ATTR', async () => {
    const k = await setupKV();
    const a = (g: number, attr: bigint, len = 24): number => {
      const b = new Uint8Array(24);
      const v = new DataView(b.buffer);
      v.setUint32(4, g, true);
      v.setBigUint64(8, attr, true);
      return k.P.ioctl(k.kv, uapi.KVM_HAS_DEVICE_ATTR, b.slice(0, len));
    };
    expect(a(1, 1n)).toBe(0);
    expect(a(1, 2n)).toBe(0);
    expect(a(1, 3n)).toBe(-ENXIO);
    expect(a(1, (1n << 32n) | 1n)).toBe(-ENXIO);
    expect(a(2, 1n)).toBe(-ENXIO);
    expect(a(1, 1n, 23)).toBe(-EFAULT);
  });
  it('FILE_DEL of a file not added is ENOENT; of a closed fd EBADF', async () => {
    const k = await setupKV();
    expect(k.DEL(k.gfd)).toBe(-ENOENT);
    expect(k.DEL(k.cfd)).toBe(-ENOENT);
    expect(k.DEL(99)).toBe(-EBADF);
  });
  it('FILE_ADD of a device fd holds the device open past its close', async () => {
    const k = await setupKV();
    const d = k.dfd();
    expect(k.ADD(d)).toBe(0);
    expect(k.ADD(d)).toBe(-EEXIST);
    k.P.close(d);
    expect(k.D.openCount).toBe(1);
    k.P.close(k.kv);
    expect(k.D.openCount).toBe(0);
  });
  it('SET_USER_MEMORY_REGION with a 31-byte argument changes nothing', async () => {
    const k = await setupK();
    expect(k.P.ioctl(k.vm, uapi.KVM_SET_USER_MEMORY_REGION, region(0, 0, 0x100000n, 0x1000n, k.U, 31))).toBe(-EFAULT);
    expect(k.kvm.slots.size).toBe(0);
  });
});
