// iommufd (docs/conformance.md §21.2, §21.3): replacing attachments, the group rule, reservations
// in IOVA_RANGES, DESTROY of an IOAS, and the context's release returning every Wasm block.
import { describe, expect, it } from 'vitest';
import { createEngine, errno, uapi } from '../../src/index.js';
import { attach, bind, detach, dv, Iommufd, rep, setupF, struct, userBuffer } from '../devdirty/helpers.js';

const { EINVAL, EBUSY, ENOENT } = errno;

function ranges(fd: Iommufd, ioas: number): { ret: number; entries: [bigint, bigint][]; align: bigint } {
  const arr = fd.proc.mmap(16 * 8);
  const b = struct(32, [[0, 32], [4, ioas], [8, 8], [16, arr, 8]]);
  const ret = fd.call(uapi.IOMMU_IOAS_IOVA_RANGES, b);
  const n = dv(b).getUint32(8, true);
  const raw = fd.proc.read(arr, 16 * 8);
  const entries: [bigint, bigint][] = [];
  for (let i = 0; i < Math.min(n, 8); i++) entries.push([dv(raw).getBigUint64(16 * i, true), dv(raw).getBigUint64(16 * i + 8, true)]);
  return { ret, entries, align: dv(b).getBigUint64(24, true) };
}

describe('attachments', () => {
  it('IOVA_RANGES shows the aperture and the attached group\'s reserved ranges, alignment 4096', async () => {
    const s = await setupF();
    expect(ranges(s.fd, 1)).toEqual({
      ret: 0, align: 0x1000n, entries: [[0n, 0xfedfffffn], [0xfef00000n, 0xffffffffffffn]],
    });
    expect(detach(s.proc, s.C)).toBe(0);
    expect(ranges(s.fd, 1).entries).toEqual([[0n, 0xffffffffffffn]]);
  });

  it('a replace moves the device; the old HWPT can then be destroyed; IOAS attach makes an automatic HWPT', async () => {
    const s = await setupF();
    expect(s.fd.hwptAlloc(0, 2, 1)).toBe(4);
    expect(s.ENABLE()).toBe(0);
    expect(attach(s.proc, s.C, 4)).toBe(4);
    expect(s.D(0x100000n)).toBe(0);
    expect(s.GET(0x100000n, 0x1000n, 0x1000n).hex).toBe(rep(0, 8));
    expect(s.fd.destroy(3)).toBe(0);
    expect(attach(s.proc, s.C, 1)).toBe(3); // no automatic HWPT yet: a new one, lowest free id
    expect(s.fd.destroy(4)).toBe(0);
    expect(detach(s.proc, s.C)).toBe(0);
    expect(s.fd.destroy(3)).toBe(-ENOENT); // the automatic HWPT went with its last device
    expect(s.fd.destroy(1)).toBe(0);
  });

  it('devices of one group share a HWPT; a replace moves them all', async () => {
    const engine = await createEngine();
    const g = engine.createGroup({ kind: 'iommu', devices: ['a', 'b'] });
    const proc = engine.createProcess();
    const I = proc.open('/dev/iommu');
    const fd = new Iommufd(proc, I);
    expect(fd.ioasAlloc()).toBe(1);
    const A = proc.open(g.devices[0].cdevPath!);
    const B = proc.open(g.devices[1].cdevPath!);
    expect(bind(proc, A, I)).toBe(2);
    expect(bind(proc, B, I)).toBe(3);
    expect(fd.hwptAlloc(0, 2, 1)).toBe(4);
    expect(fd.hwptAlloc(0, 2, 1)).toBe(5);
    expect(attach(proc, A, 4)).toBe(4);
    expect(attach(proc, B, 5)).toBe(-EINVAL);
    expect(attach(proc, B, 4)).toBe(4);
    expect(attach(proc, A, 5)).toBe(5);
    expect(fd.destroy(4)).toBe(0); // B moved with A
    expect(fd.destroy(5)).toBe(-EBUSY);
  });

  it('a device of a group bound to another context is EPERM; a non-viable group is EPERM', async () => {
    const engine = await createEngine();
    const g = engine.createGroup({ kind: 'iommu', devices: ['a', 'b'] });
    const nv = engine.createGroup({ kind: 'iommu', viable: false });
    const proc = engine.createProcess();
    const I1 = proc.open('/dev/iommu');
    const I2 = proc.open('/dev/iommu');
    const A = proc.open(g.devices[0].cdevPath!);
    const B = proc.open(g.devices[1].cdevPath!);
    expect(bind(proc, A, I1)).toBe(1);
    expect(bind(proc, B, I2)).toBe(-errno.EPERM);
    expect(bind(proc, B, I1)).toBe(2);
    expect(bind(proc, proc.open(nv.devices[0].cdevPath!), I1)).toBe(-errno.EPERM);
  });

  it('DESTROY of an IOAS drops its areas', async () => {
    const engine = await createEngine();
    const proc = engine.createProcess();
    const fd = new Iommufd(proc, proc.open('/dev/iommu'));
    expect(fd.ioasAlloc()).toBe(1);
    expect(fd.map(1, 0x100000n, 0x1000n, proc.mmap(0x1000)).ret).toBe(0);
    expect(fd.destroy(1)).toBe(0);
    expect(fd.unmap(1, 0n, (1n << 64n) - 1n).ret).toBe(-ENOENT);
  });

  it('closing the fds releases every object and returns every Wasm block', async () => {
    const engine = await createEngine();
    const g = engine.createGroup({ kind: 'iommu', iommuDirtyTracking: true, devices: [{ name: 'd', dmaLogging: true }] });
    const proc = engine.createProcess();
    const V = proc.mmap(0x80000);
    proc.write(V, new Uint8Array(0x80000));
    const data = userBuffer(proc, 64);
    const rng = proc.mmap(16);
    proc.write(rng, struct(16, [[0, 0x100000n], [8, 0x80000n]]));
    const live = engine.core.x.heap_live();
    const I = proc.open('/dev/iommu');
    const fd = new Iommufd(proc, I);
    fd.ioasAlloc();
    const C = proc.open(g.devices[0].cdevPath!);
    expect(bind(proc, C, I)).toBe(2);
    expect(fd.hwptAlloc(2, 2, 1)).toBe(3);
    expect(attach(proc, C, 3)).toBe(3);
    expect(fd.map(1, 0x100000n, 0x80000n, V).ret).toBe(0);
    expect(fd.setDirty(3)).toBe(0);
    const beforeStart = engine.core.x.heap_live();
    expect(proc.ioctl(C, uapi.VFIO_DEVICE_FEATURE, struct(32, [[0, 32], [4, 0x00020006], [8, 0x1000n], [16, 1], [24, rng]]))).toBe(0);
    expect(engine.core.x.heap_live()).toBeGreaterThan(beforeStart);
    expect(g.devices[0].dmaWrite(0x100000n, new Uint8Array(1))).toBe(0);
    expect(fd.get(3, 0x100000n, 0x80000n, 0x1000n, { data }).ret).toBe(0);
    expect(proc.close(I)).toBe(0);
    expect(proc.close(C)).toBe(0);
    expect(engine.core.x.heap_live()).toBe(live);
  });
});
