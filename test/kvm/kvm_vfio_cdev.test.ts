// The KVM-VFIO device with a device cdev as its file (docs/conformance.md §19.9, §20.1, §21.2): the
// cdev file is the token, `dev.kvm` is taken at the BIND that opens the device, an entry keeps the
// cdev file (and so the binding, the device and its iommufd context) alive after its fd closes,
// and the unlink callback runs before the file's reference is dropped.
import { describe, expect, it } from 'vitest';
import { errno, uapi, type Kvm } from '../../src/index.js';
import { attach, bind } from '../devdirty/helpers.js';
import { newKvmVfio, setupKC } from './setup_cdev.js';

const { EBADF, EBUSY, EEXIST, EINVAL, ENOENT } = errno;

describe('FILE_ADD and FILE_DEL: a device cdev fd as the file', () => {
  it('FILE_ADD: an unbound cdev fd is a VFIO file; /dev/iommu is not; the same file twice is EEXIST', async () => {
    const s = await setupKC();
    const C = s.cdev();
    expect(s.ADD(s.I)).toBe(-EINVAL);
    expect(s.ADD(C)).toBe(0);
    expect(s.file(C).kvm).toBe(s.kvm);
    expect(s.file(C).kvmRefs).toBe(1);
    expect(s.kvm.usersCount).toBe(2); // the file's KVM holds no VM reference
    expect(s.ADD(C)).toBe(-EEXIST);
    expect(s.file(C).kvmRefs).toBe(1);
    const C2 = s.cdev(); // another open of the same cdev is another file
    expect(s.ADD(C2)).toBe(0);
    expect(s.file(C2).kvm).toBe(s.kvm);
  });

  it('FILE_ADD: a bound cdev fd is a VFIO file too', async () => {
    const s = await setupKC();
    const C = s.cdev();
    expect(bind(s.P, C, s.I)).toBe(1 + 1); // the IOAS holds id 1
    expect(s.ADD(C)).toBe(0);
    expect(s.file(C).kvm).toBe(s.kvm);
  });

  it('FILE_DEL of a cdev never added is ENOENT, of a closed fd EBADF, and changes nothing', async () => {
    const s = await setupKC();
    const C = s.cdev();
    expect(s.DEL(C)).toBe(-ENOENT);
    expect(s.DEL(s.I)).toBe(-ENOENT);
    expect(s.ADD(C)).toBe(0);
    expect(s.DEL(99)).toBe(-EBADF);
    expect(s.file(C).kvm).toBe(s.kvm);
    expect(s.file(C).kvmRefs).toBe(1);
    expect(s.DEL(C)).toBe(0);
    expect(s.file(C).kvm).toBe(null);
    expect(s.file(C).kvmRefs).toBe(0);
    expect(s.DEL(C)).toBe(-ENOENT);
    expect(s.P.close(C)).toBe(0); // FILE_DEL released nothing: the fd still held the file
  });
});

describe('dev.kvm at the BIND that opens the device', () => {
  it('BIND takes the cdev file KVM with a VM reference; close drops it after the unbind', async () => {
    const s = await setupKC();
    const C = s.cdev();
    expect(s.ADD(C)).toBe(0);
    expect(s.D.kvm).toBe(null); // an unbound cdev has not opened the device
    expect(bind(s.P, C, s.I)).toBe(2);
    expect(s.D.kvm).toBe(s.kvm);
    expect(s.kvm.usersCount).toBe(3);
    expect(s.DEL(C)).toBe(0);
    expect(s.D.kvm).toBe(s.kvm); // kept until the device closes
    expect(s.kvm.usersCount).toBe(3);
    expect(s.P.close(C)).toBe(0);
    expect(s.D.kvm).toBe(null);
    expect(s.kvm.usersCount).toBe(2);
  });

  it('a device bound without a KVM stays without one; ADD after BIND notifies nobody', async () => {
    const s = await setupKC();
    const seen: Kvm[] = [];
    s.D.registerKvmUnlink((v) => seen.push(v));
    const C = s.cdev();
    expect(bind(s.P, C, s.I)).toBe(2);
    expect(s.ADD(C)).toBe(0);
    expect(s.file(C).kvm).toBe(s.kvm);
    expect(s.D.kvm).toBe(null);
    expect(s.kvm.usersCount).toBe(2);
    expect(s.DEL(C)).toBe(0);
    expect(seen).toEqual([]);
  });

  it('the KVM of another, unbound cdev file of the device is not taken', async () => {
    const s = await setupKC();
    const C2 = s.cdev();
    expect(s.ADD(C2)).toBe(0);
    const C = s.cdev();
    expect(bind(s.P, C, s.I)).toBe(2);
    expect(s.D.kvm).toBe(null);
  });

  it('a group-path device fd of another group keeps taking the group KVM (the rules are per file)', async () => {
    const s = await setupKC();
    const M = s.engine.createGroup({ kind: 'emulated', devices: ['vgpu0'] });
    const gfd = s.P.open(`/dev/vfio/${M.id}`);
    const cfd = s.P.open('/dev/vfio/vfio');
    expect(s.P.ioctl(gfd, uapi.VFIO_GROUP_SET_CONTAINER, cfd)).toBe(0);
    expect(s.P.ioctl(cfd, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU)).toBe(0);
    const C = s.cdev();
    expect(s.ADD(gfd)).toBe(0);
    expect(s.ADD(C)).toBe(0);
    expect(s.P.ioctl(gfd, uapi.VFIO_GROUP_GET_DEVICE_FD, 'vgpu0')).toBeGreaterThan(0);
    expect(bind(s.P, C, s.I)).toBe(2);
    expect([M.devices[0].kvm, s.D.kvm]).toEqual([s.kvm, s.kvm]);
    expect(s.kvm.usersCount).toBe(4);
  });
});

describe('the unlink notification of a cdev-bound device', () => {
  it('DEL of the bound file: the callback once, dev.kvm still the VM during and after it', async () => {
    const s = await setupKC();
    const seen: [Kvm, Kvm | null, number, boolean][] = [];
    s.D.registerKvmUnlink((v) => seen.push([v, s.D.kvm, v.usersCount, s.file(C).kvmRefs === 1]));
    const C = s.cdev();
    expect(s.ADD(C)).toBe(0);
    expect(bind(s.P, C, s.I)).toBe(2);
    expect(s.DEL(C)).toBe(0);
    // During the call: dev.kvm is the VM, its reference held, the entry's reference not yet dropped.
    expect(seen).toEqual([[s.kvm, s.kvm, 3, true]]);
    expect(s.D.kvm).toBe(s.kvm);
    expect(s.P.close(C)).toBe(0);
    expect(seen.length).toBe(1);
  });

  it('DEL of another, unbound cdev file of the device notifies nobody', async () => {
    const s = await setupKC();
    let calls = 0;
    s.D.registerKvmUnlink(() => void calls++);
    const C = s.cdev();
    const C2 = s.cdev();
    expect(s.ADD(C)).toBe(0);
    expect(s.ADD(C2)).toBe(0);
    expect(bind(s.P, C, s.I)).toBe(2);
    expect(s.DEL(C2)).toBe(0);
    expect(calls).toBe(0);
    expect(s.DEL(C)).toBe(0);
    expect(calls).toBe(1);
  });

  it('the last writer wins: ADD on a second VM unlinks the first; the first VM\'s DEL is silent', async () => {
    const s = await setupKC();
    const vm2 = s.P.ioctl(s.kfd, uapi.KVM_CREATE_VM, 0);
    const kvm2 = s.P.kvmFromFd(vm2) as Kvm;
    const kv2 = newKvmVfio({ ...s, vm: vm2, kvm: kvm2 });
    const seen: Kvm[] = [];
    s.D.registerKvmUnlink((v) => seen.push(v));
    const C = s.cdev();
    expect(s.ADD(C)).toBe(0);
    expect(bind(s.P, C, s.I)).toBe(2);
    expect(s.ADD(C, kv2)).toBe(0);
    expect(seen).toEqual([s.kvm]);
    expect(s.file(C).kvm).toBe(kvm2);
    expect(s.D.kvm).toBe(s.kvm);
    expect(s.DEL(C)).toBe(0); // the file's KVM (kvm2) is cleared, but dev.kvm is the first VM
    expect(seen).toEqual([s.kvm]);
    expect(s.file(C).kvm).toBe(null);
    expect(s.DEL(C, kv2)).toBe(0);
    expect(seen).toEqual([s.kvm]);
    expect([s.kvm.usersCount, kvm2.usersCount]).toEqual([3, 2]);
  });

  it('no callback: the association still ends, the KVM is kept until close', async () => {
    const s = await setupKC();
    const C = s.cdev();
    expect(s.ADD(C)).toBe(0);
    expect(bind(s.P, C, s.I)).toBe(2);
    expect(s.P.close(s.kv)).toBe(0);
    expect([s.file(C).kvm, s.D.kvm, s.kvm.usersCount]).toEqual([null, s.kvm, 2]);
  });

  it('a throwing callback: the release completes, then the exception reaches the caller', async () => {
    const s = await setupKC();
    const C = s.cdev();
    expect(s.ADD(C)).toBe(0);
    expect(bind(s.P, C, s.I)).toBe(2);
    s.D.registerKvmUnlink(() => {
      throw new Error('driver bug');
    });
    expect(s.P.close(C)).toBe(0);
    expect(() => s.P.close(s.kv)).toThrow('driver bug');
    expect([s.D.kvm, s.D.state.binding, s.kvm.usersCount]).toEqual([null, null, 1]);
    expect(s.P.open(`/dev/vfio/${s.G.id}`)).toBeGreaterThan(0);
  });
});

describe('an entry keeps the cdev file; the release tears down in order', () => {
  it('closing a held bound cdev fd releases nothing: bound, attached, the group blocked, DMA translating', async () => {
    const s = await setupKC();
    const C = s.cdev();
    expect(s.ADD(C)).toBe(0);
    expect(bind(s.P, C, s.I)).toBe(2);
    expect(attach(s.P, C, s.ioas)).toBe(3);
    expect(s.P.close(C)).toBe(0);
    expect(s.D.state.binding?.id).toBe(2);
    expect(s.D.kvm).toBe(s.kvm);
    expect(s.P.open(`/dev/vfio/${s.G.id}`)).toBe(-EBUSY);
    expect(bind(s.P, s.cdev(), s.I)).toBe(-EINVAL); // already bound through the held file
    expect(s.D.dmaWrite(0x10n, Uint8Array.of(7))).toBe(0);
    expect(s.P.read(s.va + 0x10n, 1)).toEqual(Uint8Array.of(7));
    expect(s.fd.destroy(3)).toBe(-EBUSY); // the automatic HWPT still has the device
  });

  it('the release: KVM cleared, callback (still bound), reference dropped: unbind, close, dev.kvm null', async () => {
    const s = await setupKC();
    const C = s.cdev();
    const file = s.file(C);
    const during: unknown[] = [];
    s.D.registerKvmUnlink((v) => during.push({
      fileKvm: file.kvm, devKvm: s.D.kvm === v, bound: s.D.state.binding !== null,
      dma: s.D.dmaWrite(0x20n, Uint8Array.of(9)), users: v.usersCount,
    }));
    expect(s.ADD(C)).toBe(0);
    expect(bind(s.P, C, s.I)).toBe(2);
    expect(attach(s.P, C, s.ioas)).toBe(3);
    expect(s.P.close(C)).toBe(0);
    expect(s.P.close(s.kv)).toBe(0);
    expect(during).toEqual([{ fileKvm: null, devKvm: true, bound: true, dma: 0, users: 3 }]);
    expect([file.kvm, file.kvmRefs, file.binding, s.D.state.binding, s.D.kvm]).toEqual([null, 0, null, null, null]);
    expect(s.kvm.usersCount).toBe(1);
    expect(s.D.dmaWrite(0x20n, Uint8Array.of(9))).toBe(-errno.EFAULT); // detached: DMA is blocked
    expect(s.fd.destroy(3)).toBe(-ENOENT); // the automatic HWPT went with its last device
    expect(s.fd.destroy(2)).toBe(-ENOENT); // the device object too
    expect(s.P.open(`/dev/vfio/${s.G.id}`)).toBeGreaterThan(0);
  });

  it('a held cdev keeps the iommufd context after its fd closed; the release frees it', async () => {
    const s = await setupKC();
    const C = s.cdev();
    expect(s.ADD(C)).toBe(0);
    expect(bind(s.P, C, s.I)).toBe(2);
    expect(attach(s.P, C, s.ioas)).toBe(3);
    expect(s.P.close(C)).toBe(0);
    const ctx = s.D.state.binding!.ctx;
    expect(s.P.close(s.I)).toBe(0);
    expect([...ctx.objects.keys()]).toEqual([1, 2, 3]);
    expect(s.D.dmaWrite(0n, Uint8Array.of(1))).toBe(0);
    expect(s.P.close(s.kv)).toBe(0);
    expect(ctx.objects.size).toBe(0);
  });

  it('a held cdev keeps DMA logging of its device; the release stops it and discards the log', async () => {
    const s = await setupKC();
    const C = s.cdev(s.D1);
    expect(s.ADD(C)).toBe(0);
    expect(bind(s.P, C, s.I)).toBe(2);
    const ranges = s.P.mmap(4096);
    s.P.write(ranges, new Uint8Array(new BigUint64Array([0n, 0x10000n]).buffer));
    const start = new Uint8Array(32);
    const v = new DataView(start.buffer);
    v.setUint32(0, 32, true);
    v.setUint32(4, 0x00020006, true);
    v.setBigUint64(8, 0x1000n, true);
    v.setUint32(16, 1, true);
    v.setBigUint64(24, ranges, true);
    expect(s.P.ioctl(C, uapi.VFIO_DEVICE_FEATURE, start)).toBe(0);
    expect(s.P.close(C)).toBe(0);
    expect(s.D1.state.log).not.toBe(null);
    expect(s.P.close(s.kv)).toBe(0);
    expect(s.D1.state.log).toBe(null);
  });

  it('an unbound held cdev: closing its fd and the release change no device', async () => {
    const s = await setupKC();
    let calls = 0;
    s.D.registerKvmUnlink(() => void calls++);
    const C = s.cdev();
    expect(s.ADD(C)).toBe(0);
    const file = s.file(C);
    expect(s.P.close(C)).toBe(0);
    expect(file.kvmRefs).toBe(1);
    expect(s.P.open(`/dev/vfio/${s.G.id}`)).toBeGreaterThan(0); // an unbound cdev blocks nothing
    expect(s.P.close(s.kv)).toBe(0);
    expect([file.kvm, file.kvmRefs, calls, s.D.kvm]).toEqual([null, 0, 0, null]);
  });

  it('proc.exit: the release runs with the KVM-VFIO fd, callback included; everything is let go', async () => {
    const s = await setupKC();
    const seen: Kvm[] = [];
    s.D.registerKvmUnlink((v) => seen.push(v));
    const C = s.cdev();
    expect(s.ADD(C)).toBe(0);
    expect(bind(s.P, C, s.I)).toBe(2);
    expect(attach(s.P, C, s.ioas)).toBe(3);
    expect(s.P.exit()).toBe(0);
    expect(seen).toEqual([s.kvm]);
    expect([s.D.kvm, s.D.state.binding, s.kvm.usersCount, s.kvm.destroyed]).toEqual([null, null, 0, true]);
    const P2 = s.engine.createProcess();
    expect(P2.open(`/dev/vfio/${s.G.id}`)).toBeGreaterThan(0);
  });

  it('a VM with a cdev entry outlives its fd until the KVM-VFIO device is released', async () => {
    const s = await setupKC();
    const C = s.cdev();
    expect(s.ADD(C)).toBe(0);
    expect(bind(s.P, C, s.I)).toBe(2);
    expect(s.P.close(s.vm)).toBe(0);
    expect([s.kvm.destroyed, s.kvm.usersCount, s.D.kvm]).toEqual([false, 2, s.kvm]);
    expect(s.P.close(C)).toBe(0);
    expect(s.kvm.usersCount).toBe(2);
    expect(s.P.close(s.kv)).toBe(0);
    expect([s.kvm.destroyed, s.kvm.usersCount]).toEqual([true, 0]);
  });
});
