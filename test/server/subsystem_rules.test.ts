// The other subsystems through the server: every file reachable by the generic requests, each
// invalid input of the new requests with its errno and nothing changed, ownership between
// connections, and the callback rules (EDEADLK) inside the new events.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../../src/server/client.js';
import { Op, Writer } from '../../src/server/protocol.js';
import { uapi } from '../../src/uapi.js';
import { IOMMU_IOAS_ALLOC } from '../../src/iommufd/uapi.js';
import { dmaMap } from '../helpers/uapi_structs.js';
import { createDevice, deviceAttr, region } from '../kvm/setup.js';
import { testServer, type TestServer } from './helpers.js';
import { eventually } from './setup.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await testServer({
    groups: ['kind=emulated,devices=r-vgpu', 'kind=iommu,devices=r-pt', 'kind=iommu,syswidePasid=1,devices=r-pasid',
      'kind=emulated,devices=r-plain'],
  });
});
afterAll(async () => srv.stop());
// each test starts when the previous test's processes have exited (their groups are free)
afterEach(async () => {
  const obs = await Client.connect(srv.path);
  await eventually(async () => ((await obs.stats()) as { processes: number }).processes === 1);
  await obs.end();
});

const EPERM = -1, ENOENT = -2, ESRCH = -3, EBADF = -9, EEXIST = -17, ENODEV = -19, EINVAL = -22, EDEADLK = -35,
  EBADMSG = -74;
const MEM = 0x10_0000_0000n;

/** A VM with slot 0 (16 pages at gpa 0x100000, LOG) and vCPU 0, and the emulated group 1 added to
 * its KVM-VFIO device; fds: 3 kvm, 4 vm, 5 vcpu, 6 container, 7 group, 8 kvm device, 9 device. */
async function vmWithDevice(c: Client): Promise<void> {
  const ok = (got: number | bigint, want: number | bigint) => expect(BigInt(got)).toBe(BigInt(want));
  ok(await c.open('/dev/kvm'), 3);
  ok(await c.ioctl(3, uapi.KVM_CREATE_VM, 0), 4);
  ok(await c.mmap(0x200000), MEM);
  ok(await c.mmap(4096), MEM + 0x201000n);
  ok(await c.ioctl(4, uapi.KVM_SET_USER_MEMORY_REGION, region(0, 1, 0x100000n, 0x10000n, MEM)), 0);
  ok(await c.ioctl(4, uapi.KVM_CREATE_VCPU, 0), 5);
  ok(await c.open('/dev/vfio/vfio'), 6);
  ok(await c.open('/dev/vfio/1'), 7);
  ok(await c.ioctl(7, uapi.VFIO_GROUP_SET_CONTAINER, 6), 0);
  ok(await c.ioctl(6, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU), 0);
  ok(await c.ioctl(4, uapi.KVM_CREATE_DEVICE, createDevice(4, 0, 0)), 0);
  ok(await c.write(MEM + 0x201000n, new Uint8Array([7, 0, 0, 0])), 0);
  ok(await c.ioctl(8, uapi.KVM_SET_DEVICE_ATTR, deviceAttr(0, 1, 1n, MEM + 0x201000n)), 0);
  ok(await c.ioctl(7, uapi.VFIO_GROUP_GET_DEVICE_FD, 'r-vgpu'), 9);
}

/** Group `gid` at fd `gfd` set to a TYPE1v2 container at fd `cfd` (the next two fds). */
async function attached(c: Client, gid: number, cfd: number, gfd: number): Promise<void> {
  expect(await c.open('/dev/vfio/vfio')).toBe(cfd);
  expect(await c.open(`/dev/vfio/${gid}`)).toBe(gfd);
  expect(await c.ioctl(gfd, uapi.VFIO_GROUP_SET_CONTAINER, cfd)).toBe(0);
  expect(await c.ioctl(cfd, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU)).toBe(0);
}

describe('files of every subsystem through OPEN, IOCTL and MMAP_FD', () => {
  it('/dev/iommu, a device cdev, an accelerator queue and a vCPU ring', async () => {
    const c = await Client.connect(srv.path);
    expect(await c.open('/dev/iommu')).toBe(3);
    const ioas = new Uint8Array(12);
    ioas[0] = 12;
    expect(await c.ioctl(3, IOMMU_IOAS_ALLOC, ioas)).toBe(0);
    expect(ioas[8]).toBe(1); // the new IOAS id, written back
    expect(await c.open('/dev/vfio/devices/vfio1')).toBe(4); // r-pt (emulated r-vgpu is index 0)
    expect(await c.ioctl(4, uapi.VFIO_DEVICE_RESET)).toBe(EINVAL); // an unbound cdev's access gate
    expect(await c.devDmaRead('r-pt', 0n, 1)).toBe(EPERM); // an unbound cdev fd holds nothing
    const bind = new Uint8Array(16);
    bind.set([16, 0, 0, 0, 0, 0, 0, 0, 3]);
    expect(await c.ioctl(4, uapi.VFIO_DEVICE_BIND_IOMMUFD, bind)).toBe(0);
    expect(await c.devDmaRead('r-pt', 0n, 1)).toBe(-14); // held now: blocked DMA is an IOMMU fault
    expect(await c.open('/dev/vfio/devices/vfio0')).toBe(ENOENT);
    const path = await c.createAccelerator('name=rq,queues=1');
    expect(path).toBe('/dev/rq-0');
    expect(await c.open('/dev/rq-0')).toBe(5);
    expect(await c.ioctl(5, uapi.UACCE_CMD_START_Q)).toBe(0);
    expect(await c.mmapFd(5, 0n, 4096)).toBeGreaterThan(0n);
    expect(await c.open('/dev/kvm')).toBe(6);
    expect(await c.ioctl(6, uapi.KVM_CREATE_VM, 0)).toBe(7);
    expect(await c.ioctl(7, uapi.KVM_ENABLE_CAP, new Uint8Array([192, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, ...new Uint8Array(88)]))).toBe(0);
    expect(await c.ioctl(7, uapi.KVM_CREATE_VCPU, 0)).toBe(8);
    expect(await c.mmapFd(8, 0x40000n, 4096)).toBeGreaterThan(0n);
    expect(await c.ioctl(7, uapi.KVM_RESET_DIRTY_RINGS)).toBe(0);
    await c.end();
    const a = await Client.connect(srv.path);
    expect(await a.sva('bind', '/dev/rq-0')).toBe(1);
    await a.end();
  });
});

describe('KVM requests', () => {
  it('bad inputs: each errno, nothing changed', async () => {
    const c = await Client.connect(srv.path);
    await vmWithDevice(c);
    expect(await c.vcpuWrite(4, 0x100000n, new Uint8Array([1]))).toBe(EINVAL); // a VM fd, not a vCPU fd
    expect(await c.vcpuWrite(40, 0x100000n, new Uint8Array([1]))).toBe(EBADF);
    expect(await c.vcpuWrite(5, 0x100000n, new Uint8Array(0))).toBe(EINVAL);
    expect(await c.vcpuWrite(5, 0x100000n, new Uint8Array([1]), 2)).toBe(EINVAL);
    expect(await c.vcpuWrite(5, 0x500000n, new Uint8Array([1]))).toBe(-14);
    expect(await c.vcpuRead(5, 0x100000n, 1)).toEqual(new Uint8Array([0])); // nothing was stored
    expect(await c.vcpuWriteMany(5, new BigUint64Array([0x100000n, 0x100ffen]), new Uint8Array(8), 4)).toBe(EINVAL);
    expect(await c.vcpuWriteMany(5, new BigUint64Array([0x100000n, 0x101000n]), new Uint8Array(8), 4)).toBe(2);
    const short = await c.request(Op.VCPU_READ, new Writer().u32(5).u32(0).u64(0x100000n).done());
    expect(short.ret).toBe(BigInt(EBADMSG));
    expect(await c.deviceKvm('trackAdd', 'nope', 0x105n)).toBe(BigInt(ENODEV));
    expect(await c.deviceKvm('trackAdd', 'r-plain', 0x105n)).toBe(BigInt(EPERM)); // group not held
    expect(await c.deviceKvm('trackAdd', 'r-vgpu', 0x500n)).toBe(BigInt(EINVAL)); // no slot
    expect(await c.deviceKvm('trackCount', 'r-vgpu', 0x105n)).toBe(0n);
    expect(await c.deviceKvm('gfnToHva', 'r-vgpu', 0x103n)).toBe(MEM + 0x3000n);
    expect(await c.registerKvmNode('r-vgpu', {})).toBe(0);
    expect(await c.registerKvmNode('r-vgpu', {})).toBe(EEXIST);
    expect(await c.request(Op.DEV_KVM_REGISTER_NODE, new Writer().str('r-vgpu').u32(4).done())).toMatchObject({ ret: BigInt(EINVAL) });
    expect(await c.unregisterKvmNode('r-vgpu')).toBe(0);
    expect(await c.unregisterKvmNode('r-vgpu')).toBe(0); // an unregistered node: no effect
    expect(await c.request(Op.DEV_REGISTER_KVM_UNLINK, new Writer().str('r-vgpu').u32(2).done())).toMatchObject({ ret: BigInt(EINVAL) });
    await c.end();
  });

  it('a device without a KVM: ESRCH', async () => {
    const c = await Client.connect(srv.path);
    expect(await c.open('/dev/vfio/4')).toBe(3);
    expect(await c.ioctl(3, uapi.VFIO_GROUP_GET_DEVICE_FD, 'r-plain')).toBe(EINVAL); // not in a container
    expect(await c.deviceKvm('trackAdd', 'r-plain', 0x105n)).toBe(BigInt(ESRCH));
    expect(await c.registerKvmNode('r-plain', {})).toBe(ESRCH);
    await c.end();
  });

  it('inside a trackWrite event, registering or unregistering a node is EDEADLK; tracking calls run', async () => {
    const c = await Client.connect(srv.path);
    await vmWithDevice(c);
    const inside: (number | bigint)[] = [];
    expect(await c.registerKvmNode('r-vgpu', {
      trackWrite: async (i) => {
        inside.push(await i.registerKvmNode('r-vgpu', {}), await i.unregisterKvmNode('r-vgpu'));
        inside.push(await i.deviceKvm('trackRemove', 'r-vgpu', 0x105n), await i.ioctl(4, uapi.KVM_CREATE_VCPU, 1));
      },
    })).toBe(0);
    expect(await c.deviceKvm('trackAdd', 'r-vgpu', 0x105n)).toBe(0n);
    expect(await c.vcpuWrite(5, 0x105000n, new Uint8Array([1]))).toBe(1);
    expect(inside).toEqual([EDEADLK, EDEADLK, 0n, EDEADLK]);
    expect(await c.deviceKvm('trackCount', 'r-vgpu', 0x105n)).toBe(0n);
    expect(await c.vcpuWrite(5, 0x105000n, new Uint8Array([1]))).toBe(1); // no event: untracked
    expect(inside).toHaveLength(4);
    await c.end();
  });
});

describe('large events', () => {
  it('a trackWrite event carrying a whole page arrives intact (the reply buffer grows for it)', async () => {
    const c = await Client.connect(srv.path);
    await vmWithDevice(c);
    const got: Uint8Array[] = [];
    expect(await c.registerKvmNode('r-vgpu', { trackWrite: (_i, _gpa, data) => void got.push(data) })).toBe(0);
    expect(await c.deviceKvm('trackAdd', 'r-vgpu', 0x105n)).toBe(0n);
    const page = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7 + 1) & 0xff);
    expect(await c.vcpuWrite(5, 0x105000n, page)).toBe(4096);
    expect(got).toEqual([page]);
    await c.end();
  });
});

describe('ownership between connections', () => {
  it('another connection\'s device, vCPU, PASID and handle are EPERM / EBADF / EINVAL', async () => {
    const a = await Client.connect(srv.path);
    await vmWithDevice(a);
    const b = await Client.connect(srv.path);
    expect(await b.vcpuWrite(5, 0x100000n, new Uint8Array([1]))).toBe(EBADF);
    expect(await b.deviceKvm('trackAdd', 'r-vgpu', 0x105n)).toBe(BigInt(EPERM));
    expect(await b.registerKvmNode('r-vgpu', {})).toBe(EPERM);
    expect(await b.registerKvmUnlink('r-vgpu', () => {})).toBe(EPERM);
    expect(await b.devDmaWrite('r-vgpu', 0n, new Uint8Array([1]))).toBe(EPERM);
    expect(await b.devDmaRead('r-pt', 0n, 1)).toBe(EPERM);
    expect(await b.sva('unbind', 1)).toBe(EINVAL);
    // PASIDs: a's VM set and a's SVA PASID
    await attached(a, 3, 10, 11);
    const req = new Uint8Array([16, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0, 0]);
    const id = await a.ioctl(10, uapi.VFIO_IOMMU_PASID_REQUEST, req);
    expect(id).toBeGreaterThan(0);
    expect(await b.ioasidNotify(id, uapi.IOASID_BIND)).toBe(EPERM);
    expect(await a.ioasidNotify(id, uapi.IOASID_BIND)).toBe(0);
    expect(await b.ioasidNotifier(() => 1)).toBe(ENOENT); // b has no VM set
    const path = await a.createAccelerator('name=own');
    const h = await a.sva('bind', path as string);
    const pasid = await a.sva('getPasid', h);
    expect(await a.accelDmaWrite(path as string, pasid, MEM, new Uint8Array([9]))).toBe(0);
    expect(await b.accelDmaWrite(path as string, pasid, MEM, new Uint8Array([9]))).toBe(EPERM);
    expect(await b.accelDmaRead(path as string, pasid, MEM, 1)).toBe(EPERM);
    expect(await b.accelDmaRead('/dev/none-9', pasid, MEM, 1)).toBe(ENODEV);
    expect(await a.read(MEM, 1)).toEqual(new Uint8Array([9]));
    expect(await a.open(path as string)).toBe(12); // a queue: hardware queue 0
    expect(await a.accelRegionRead(path as string, 0, 0, 0, 4)).toEqual(new Uint8Array(4));
    expect(await b.accelRegionRead(path as string, 0, 0, 0, 4)).toBe(EPERM);
    expect(await b.accelRegionWrite(path as string, 0, 0, 0, new Uint8Array([1]))).toBe(EPERM);
    expect(await a.accelRegionRead(path as string, 0, 0, 0, 1)).toEqual(new Uint8Array(1));
    await b.end();
    await a.end();
  });
});

describe('IOASID notifier events', () => {
  it('inside the event, IOCTL and adding a notifier are EDEADLK; EVENT_DONE sets the result', async () => {
    const c = await Client.connect(srv.path);
    await attached(c, 3, 3, 4);
    const inside: number[] = [];
    const req = () => new Uint8Array([16, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0, 0]);
    expect(await c.ioasidNotifier(async (i, event) => {
      if (event === 1) inside.push(await i.ioctl(3, uapi.VFIO_IOMMU_PASID_REQUEST, req()), await i.ioasidNotifier(() => 0));
      return event === 3 ? 0x8001 : 1;
    })).toBe(0);
    expect(await c.ioasidNotifier(() => 0)).toBe(EEXIST);
    expect(await c.ioctl(3, uapi.VFIO_IOMMU_PASID_REQUEST, req())).toBe(1);
    expect(inside).toEqual([EDEADLK, EDEADLK]);
    expect(await c.ioasidNotify(1, uapi.IOASID_BIND)).toBe(0x8001);
    expect(await c.ioasidNotify(1, 9)).toBe(EINVAL);
    expect(await c.ioasidNotifier(null)).toBe(0);
    expect(await c.ioasidNotifier(null)).toBe(ENOENT);
    expect(await c.ioasidNotify(1, uapi.IOASID_BIND)).toBe(0); // nobody on the set chain
    await c.end();
  });
});

describe('host administration of the new options', () => {
  it('CREATE_GROUP and CREATE_ACCELERATOR: bad specs are EINVAL and create nothing', async () => {
    const c = await Client.connect(srv.path);
    const before = ((await c.stats()) as { groups: unknown[] }).groups.length;
    for (const spec of ['kind=emulated,devices=e1,dmaLogging=all', 'devices=e2,maxRanges=4', 'devices=e3,dmaLogging=e4',
      'dmaLogging=all', 'kind=iommu,devices=e5,dmaLogging=all,maxRanges=0', 'kind=emulated,syswidePasid=1',
      'devices=e6,iommuDirtyTracking=2', 'devices=e7,migrationFlags=2']) {
      expect([spec, await c.createGroup(spec)]).toEqual([spec, EINVAL]);
    }
    expect(((await c.stats()) as { groups: unknown[] }).groups.length).toBe(before);
    expect(await c.createGroup('devices=ok1+ok2,dmaLogging=ok2,maxRanges=2,iommuDirtyTracking=1')).toBeGreaterThan(0);
    for (const spec of ['queues=x', 'name=a/b', 'mmioSize=100', 'colour=red', 'sva=2']) {
      expect([spec, await c.createAccelerator(spec)]).toEqual([spec, EINVAL]);
    }
    expect(await c.request(Op.REMOVE_ACCELERATOR, new Writer().str('/dev/none-0').done())).toMatchObject({ ret: BigInt(ENOENT) });
    await c.end();
  });
});

describe('a passthrough device\'s DMA', () => {
  it('bad inputs: EINVAL (emulated, length 0), EFAULT (no mapping), ENODEV; nothing written', async () => {
    const c = await Client.connect(srv.path);
    await attached(c, 2, 3, 4);
    const mem = await c.mmap(0x2000);
    expect(await c.ioctl(3, uapi.VFIO_IOMMU_MAP_DMA, dmaMap({ flags: 3, vaddr: mem, iova: 0n, size: 0x2000n }))).toBe(0);
    expect(await c.devDmaWrite('r-pt', 0x1fffn, new Uint8Array([1, 2]))).toBe(-14);
    expect(await c.devDmaRead('r-pt', 0x1fffn, 1)).toEqual(new Uint8Array([0]));
    expect(await c.devDmaRead('r-pt', 0n, 0)).toBe(EINVAL);
    expect(await c.devDmaWrite('r-none', 0n, new Uint8Array([1]))).toBe(ENODEV);
    expect(await c.devDmaWrite('r-pt', 0x1000n, new Uint8Array([5]))).toBe(0);
    expect(await c.read(mem + 0x1000n, 1)).toEqual(new Uint8Array([5]));
    await c.end();
  });
});
