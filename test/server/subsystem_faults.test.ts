// A Python client SIGKILLed while it holds a VM with a page-track node, tracked pages and an unlink
// callback, device DMA logging started, a VM PASID set with a notifier and PASIDs, and an SVA bond
// with a started, mapped queue: the others keep being served, its process exits, and the engine's
// memory returns to where it was.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../../src/server/client.js';
import { testServer, type TestServer } from './helpers.js';
import { eventually } from './setup.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await testServer({
    groups: ['kind=emulated,devices=fx-vgpu', 'kind=iommu,devices=fx-pt,dmaLogging=all', 'kind=iommu,syswidePasid=1,devices=fx-pasid'],
  });
});
afterAll(async () => srv.stop());

const clientDir = join(new URL('.', import.meta.url).pathname, '..', '..', 'clients', 'python');
const holder = `
import struct, sys, time
sys.path.insert(0, ${JSON.stringify(clientDir)})
import vfio_dirty as v
c = v.Client(sys.argv[1])
def ok(got, want):
    assert got == want, (got, want)
# a VM, its vCPU, slot 0, and group 1 added to its KVM-VFIO device; the device model's node
kfd = c.open('/dev/kvm'); vm = c.ioctl(kfd, v.KVM_CREATE_VM, 0)
U = c.mmap(0x200000); buf = c.mmap(0x1000)
ok(c.ioctl(vm, v.KVM_SET_USER_MEMORY_REGION, bytearray(struct.pack('<IIQQQ', 0, 1, 0x100000, 0x10000, U))), 0)
vcpu = c.ioctl(vm, v.KVM_CREATE_VCPU, 0)
cfd = c.open('/dev/vfio/vfio'); gfd = c.open('/dev/vfio/1')
ok(c.ioctl(gfd, v.VFIO_GROUP_SET_CONTAINER, cfd), 0); ok(c.ioctl(cfd, v.VFIO_SET_IOMMU, 3), 0)
cd = bytearray(struct.pack('<III', 4, 0, 0)); ok(c.ioctl(vm, v.KVM_CREATE_DEVICE, cd), 0)
kv = struct.unpack_from('<I', cd, 4)[0]
ok(c.write(buf, struct.pack('<i', gfd)), 0)
ok(c.ioctl(kv, v.KVM_SET_DEVICE_ATTR, bytearray(struct.pack('<IIQQ', 0, 1, 1, buf))), 0)
assert c.ioctl(gfd, v.VFIO_GROUP_GET_DEVICE_FD, 'fx-vgpu') > 0
ok(c.register_kvm_unlink('fx-vgpu', lambda cl: None), 0)
seen = []
ok(c.register_kvm_node('fx-vgpu', track_write=lambda cl, gpa, data: seen.append(gpa)), 0)
ok(c.kvm_track_add('fx-vgpu', 0x105), 0)
ok(c.vcpu_write(vcpu, 0x105000, b'\\x01'), 1); ok(seen, [0x105000])
# device DMA logging on group 2
cfd2 = c.open('/dev/vfio/vfio'); gfd2 = c.open('/dev/vfio/2')
ok(c.ioctl(gfd2, v.VFIO_GROUP_SET_CONTAINER, cfd2), 0); ok(c.ioctl(cfd2, v.VFIO_SET_IOMMU, 3), 0)
mem = c.mmap(1 << 20)
ok(c.ioctl(cfd2, v.VFIO_IOMMU_MAP_DMA, bytearray(struct.pack('<IIQQQ', 32, 3, mem, 0, 1 << 20))), 0)
dfd = c.ioctl(gfd2, v.VFIO_GROUP_GET_DEVICE_FD, 'fx-pt')
ok(c.write(buf + 0x100, struct.pack('<QQ', 0, 1 << 20)), 0)
ok(c.ioctl(dfd, v.VFIO_DEVICE_FEATURE, bytearray(struct.pack('<IIQIIQ', 32, 0x20006, 0x1000, 1, 0, buf + 0x100))), 0)
ok(c.dev_dma_write('fx-pt', 0x3000, b'\\x07'), 0)
# a VM PASID set with a notifier, and two PASIDs
cfd3 = c.open('/dev/vfio/vfio'); gfd3 = c.open('/dev/vfio/3')
ok(c.ioctl(gfd3, v.VFIO_GROUP_SET_CONTAINER, cfd3), 0); ok(c.ioctl(cfd3, v.VFIO_SET_IOMMU, 3), 0)
ok(c.add_ioasid_notifier(lambda cl, e, i, s: 1), 0)
for _ in range(2):
    assert c.ioctl(cfd3, v.VFIO_IOMMU_PASID_REQUEST, bytearray(struct.pack('<IIII', 16, 1, 1, 0xfffff))) > 0
# an SVA bond held by the API, and a started, mapped queue
q = c.open(sys.argv[2]); ok(c.ioctl(q, v.UACCE_CMD_START_Q), 0)
assert c.mmap_fd(q, 0, 4096) > 0
h = c.sva_bind(sys.argv[2]); pasid = c.sva_get_pasid(h)
ok(c.accel_dma_write(sys.argv[2], pasid, U, b'\\x05'), 0)
print('ready', flush=True)
time.sleep(60)
`;

interface Stats { processes: number; heapUsed: number; groups: { open: boolean }[] }

describe('a client killed while holding KVM, logging, PASIDs and a bond', () => {
  it('others are served meanwhile; after the kill nothing is left and the heap is where it was', async () => {
    const obs = await Client.connect(srv.path);
    const accel = await obs.createAccelerator('name=fx,queues=2');
    expect(accel).toBe('/dev/fx-0');
    const mem = await obs.mmap(4096); // the observer's own page, written once before the first measure
    expect(await obs.write(mem, new Uint8Array([1]))).toBe(0);
    const quiet = async () => {
      const s = (await obs.stats()) as unknown as Stats;
      return s.processes === 1 && s.groups.every((g) => !g.open);
    };
    const cycle = async (): Promise<number> => {
      const py = spawn('python3', ['-c', holder, srv.path, accel as string], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((res, rej) => {
        py.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && res());
        py.once('exit', (code) => rej(new Error(`holder exited early (${code})`)));
      });
      try {
        // another client is served while the holder holds everything
        expect(((await obs.stats()) as unknown as Stats).processes).toBe(2);
        expect(await obs.open('/dev/vfio/1')).toBe(-16); // EBUSY: held
        expect(await obs.write(mem, new Uint8Array([1]))).toBe(0);
        expect(await obs.read(mem, 1)).toEqual(new Uint8Array([1]));
      } finally {
        py.kill('SIGKILL');
      }
      await eventually(quiet);
      return ((await obs.stats()) as unknown as Stats).heapUsed;
    };
    const first = await cycle();
    const again = [await cycle(), await cycle()];
    expect(again).toEqual([first, first]);
    // and the groups, the accelerator and the PASIDs serve the next client
    const b = await Client.connect(srv.path);
    expect(await b.open('/dev/vfio/1')).toBe(3);
    expect(await b.open(accel as string)).toBe(4);
    expect(await b.sva('bind', accel as string)).toBe(1);
    expect(await b.sva('getPasid', 1)).toBe(1); // the killed process's PASID was freed
    await b.end();
    await eventually(quiet);
    await obs.end();
  }, 30_000);
});
