// engine.inspect() beyond type1: exact snapshots of VMs, iommufd contexts, the IOASID allocator
// and accelerators, and that taking one changes nothing.
import { describe, expect, it } from 'vitest';
import { createEngine, uapi, type Kvm } from '../src/index.js';
import { attach, bind, Iommufd } from './devdirty/helpers.js';
import { LOG, setupKR } from './kvm/setup.js';
import { newKvmVfio } from './kvm/setup_cdev.js';
import { deviceAttr } from './kvm/setup.js';

describe('engine.inspect(): subsystems', () => {
  it('a fresh engine: no VM, no context, no accelerator; the IOASID allocator as installed', async () => {
    const e = await createEngine();
    const s = e.inspect();
    expect([s.kvm, s.iommufd, s.accelerators]).toEqual([[], [], []]);
    expect(s.ioasid).toEqual({
      capacity: 1048576, available: 1015808, systemSid: 0,
      sets: [{ sid: 0, owner: 'system', quota: 32768, destroying: false, ids: [] }],
    });
  });

  it('a VM: slots with bitmaps and tracked pages, vCPUs with their rings, nodes, KVM-VFIO entries', async () => {
    const k = await setupKR();
    expect(k.RGN(0, LOG, 0x100000, 0x10000, k.U)).toBe(0);
    expect(k.RGN(0x10001, 0, 0x400000, 0x1000, k.U)).toBe(0);
    expect(k.kvm.writeTrackAddGfn(0x105n)).toBe(0);
    expect(k.kvm.writeTrackAddGfn(0x105n)).toBe(0);
    expect(k.kvm.writeTrackAddGfn(0x107n)).toBe(0);
    expect(k.kvm.pageTrackRegisterNotifier({})).toBe(0);
    expect(k.v0.write(0x103000n, Uint8Array.of(1))).toBe(1);
    const G = k.engine.createGroup({ kind: 'iommu', devices: ['d0'] });
    const C = k.P.open(G.devices[0].cdevPath!);
    const kv = newKvmVfio(k);
    const fdBuf = k.P.mmap(4096);
    k.P.write(fdBuf, new Uint8Array(new Int32Array([C]).buffer));
    expect(k.P.ioctl(kv, uapi.KVM_SET_DEVICE_ATTR, deviceAttr(0, 1, 1n, fdBuf))).toBe(0);
    expect(k.engine.inspect().kvm).toEqual([{
      proc: 0, usersCount: 4, manualProtect: 0, ringSize: 4096,
      slots: [
        { asId: 0, id: 0, flags: 1, gfn: 0x100n, npages: 16, uaddr: k.U, bitmap: null, trackedPages: 2 },
        { asId: 1, id: 1, flags: 0, gfn: 0x400n, npages: 1, uaddr: k.U, bitmap: null, trackedPages: 0 },
      ],
      vcpus: [{ id: 0, ringUsed: 1, softFull: false }],
      nodes: 1,
      kvmVfio: [{ file: 'cdev', group: G.id, device: 'd0' }],
    }]);
  });

  it('a bitmap-mode slot shows the bits GET would return, without clearing them', async () => {
    const e = await createEngine();
    const P = e.createProcess();
    const vm = P.ioctl(P.open('/dev/kvm'), uapi.KVM_CREATE_VM, 0);
    const kvm = P.kvmFromFd(vm) as Kvm;
    const U = P.mmap(0x10000);
    const r = new Uint8Array(32);
    const v = new DataView(r.buffer);
    v.setUint32(4, LOG, true);
    v.setBigUint64(8, 0x100000n, true);
    v.setBigUint64(16, 0x10000n, true);
    v.setBigUint64(24, U, true);
    expect(P.ioctl(vm, uapi.KVM_SET_USER_MEMORY_REGION, r)).toBe(0);
    const c0 = P.ioctl(vm, uapi.KVM_CREATE_VCPU, 0);
    const v0 = P.vcpuFromFd(c0);
    if (typeof v0 === 'number') throw new Error('vcpu');
    expect(v0.write(0x100000n, Uint8Array.of(1))).toBe(1);
    expect(v0.write(0x10f000n, Uint8Array.of(1))).toBe(1);
    expect(e.inspect().kvm[0].slots[0].bitmap).toBe('0180000000000000');
    expect(e.inspect().kvm[0].slots[0].bitmap).toBe('0180000000000000');
    expect(e.inspect({ bitmaps: false }).kvm[0].slots[0].bitmap).toBe(null);
    expect(kvm.usersCount).toBe(2);
    P.close(c0);
    P.close(vm);
    expect(e.inspect().kvm).toEqual([]); // destroyed VMs are not listed
  });

  it('iommufd: objects by id; a context held by a bound device outlives its fd', async () => {
    const e = await createEngine();
    const g = e.createGroup({ kind: 'iommu', iommuDirtyTracking: true });
    const P = e.createProcess();
    const I = P.open('/dev/iommu');
    const fd = new Iommufd(P, I);
    const ioas = fd.ioasAlloc();
    const va = P.mmap(0x4000);
    expect(fd.map(ioas, 0x10000n, 0x4000n, va, 3).ret).toBe(0); // FIXED_IOVA | WRITEABLE
    const C = P.open(g.devices[0].cdevPath!);
    expect(bind(P, C, I)).toBe(2);
    expect(fd.hwptAlloc(2, 2, ioas)).toBe(3);
    expect(attach(P, C, 3)).toBe(3);
    expect(fd.setDirty(3)).toBe(0);
    expect(P.close(I)).toBe(0);
    expect(e.inspect().iommufd).toEqual([{
      fdOpen: false, bindings: 1,
      objects: [
        { id: 1, type: 'ioas', areas: [{ iova: 0x10000n, length: 0x4000n, userVa: va, prot: 2 }] },
        { id: 2, type: 'device', group: g.id, device: g.devices[0].name, hwpt: 3 },
        { id: 3, type: 'hwpt', ioas: 1, auto: false, dirtyCapable: true, tracking: true, devices: [2] },
      ],
    }]);
    expect(P.close(C)).toBe(0);
    expect(e.inspect().iommufd).toEqual([]);
  });

  it('IOASID sets with their IDs; accelerators with queues and bonds', async () => {
    const e = await createEngine();
    const sid = e.ioasid.allocSet({ t: 1 }, 4);
    expect(sid).toBeGreaterThanOrEqual(0);
    expect(e.ioasid.alloc(sid, 10, 20)).toBe(10);
    expect(e.ioasid.alloc(sid, 10, 20)).toBe(11);
    expect(e.ioasid.get(11, sid)).toBe(0);
    const a = e.createAccelerator({ name: 'zip', queues: 2 });
    const P = e.createProcess();
    const q = P.open(a.path);
    expect(q).toBeGreaterThan(0);
    expect(P.ioctl(q, uapi.UACCE_CMD_START_Q)).toBe(0);
    const s = e.inspect();
    const mine = s.ioasid.sets.find((x) => x.sid === sid);
    expect(mine).toEqual({ sid, owner: 'api', quota: 4, destroying: false, ids: [[10, 'active', 0, 'api'], [11, 'active', 1, 'api']] });
    const pasid = e.sva.pasidOf(P);
    expect(s.ioasid.sets.find((x) => x.sid === s.ioasid.systemSid)?.ids).toEqual([[pasid, 'active', 0, 'sva']]);
    expect(s.accelerators).toEqual([{
      path: '/dev/zip-0',
      queues: [{ qid: 0, pasid, state: 2, proc: 0 }],
      bonds: [{ proc: 0, pasid, refs: 1 }],
    }]);
  });
});
