// iommufd acceptance vectors, groups G-H: device cdevs, HWPTs and HWPT dirty tracking (setup F;
// docs/conformance.md §21.2, §21.4).
import { describe, expect, it } from 'vitest';
import { createEngine, errno, uapi } from '../../src/index.js';
import { attach, bind, detach, dv, hex, Iommufd, P, rep, setupF, struct, U64_MAX } from '../devdirty/helpers.js';

const { EINVAL, EBADF, EBADFD, E2BIG, ENOTTY, EOPNOTSUPP, ENOENT, EBUSY, EOVERFLOW, EFAULT } = errno;

describe('§5 G devices and HWPTs', () => {
  it('V40 the unbound cdev gate and BIND', async () => {
    const engine = await createEngine();
    const g = engine.createGroup({ kind: 'iommu', iommuDirtyTracking: true });
    const dev = g.devices[0];
    expect(dev.cdevPath).toBe('/dev/vfio/devices/vfio0');
    const proc = engine.createProcess();
    const I = proc.open('/dev/iommu');
    expect(new Iommufd(proc, I).ioasAlloc()).toBe(1);
    const C = proc.open(dev.cdevPath!);
    const feat = struct(8, [[0, 8], [4, 0x00040006]]);
    expect(proc.ioctl(C, uapi.VFIO_DEVICE_FEATURE, feat)).toBe(-EINVAL);
    expect(attach(proc, C, 1)).toBe(-EINVAL);
    expect(proc.ioctl(C, uapi.VFIO_DEVICE_RESET)).toBe(-EINVAL);
    expect(bind(proc, C, I, 15)).toBe(-EINVAL);
    expect(proc.ioctl(C, uapi.VFIO_DEVICE_BIND_IOMMUFD, struct(16, [[0, 16], [4, 2], [8, I]]))).toBe(-EINVAL);
    expect(bind(proc, C, -1)).toBe(-EINVAL);
    expect(bind(proc, C, 99)).toBe(-EBADF);
    const cont = proc.open('/dev/vfio/vfio');
    expect(bind(proc, C, cont)).toBe(-EBADFD);
    expect(proc.ioctl(C, uapi.VFIO_DEVICE_BIND_IOMMUFD, struct(32, [[0, 32], [8, I], [24, 1, 1]]))).toBe(-E2BIG);
    expect(proc.ioctl(C, uapi.VFIO_DEVICE_BIND_IOMMUFD, struct(16, [[0, 16], [4, 1], [8, I]]))).toBe(-EINVAL);
    const b = struct(16, [[0, 16], [8, I]]);
    expect(proc.ioctl(C, uapi.VFIO_DEVICE_BIND_IOMMUFD, b)).toBe(0);
    expect(hex(b.subarray(12, 16))).toBe('02 00 00 00');
    expect(bind(proc, C, I)).toBe(-EINVAL);
    const C2 = proc.open(dev.cdevPath!);
    expect(bind(proc, C2, I)).toBe(-EINVAL);
    expect(proc.ioctl(C, uapi.VFIO_DEVICE_FEATURE, feat)).toBe(-ENOTTY);
    expect(detach(proc, C)).toBe(0);
  });

  it('V40 group and cdev exclusivity (§2.3)', async () => {
    const engine = await createEngine();
    const g = engine.createGroup({ kind: 'iommu' });
    const proc = engine.createProcess();
    const I = proc.open('/dev/iommu');
    const gfd = proc.open(`/dev/vfio/${g.id}`);
    const C = proc.open(g.devices[0].cdevPath!);
    expect(bind(proc, C, I)).toBe(-EBUSY);
    expect(proc.close(gfd)).toBe(0);
    expect(bind(proc, C, I)).toBe(1);
    expect(proc.open(`/dev/vfio/${g.id}`)).toBe(-EBUSY);
    expect(proc.close(C)).toBe(0);
    expect(proc.open(`/dev/vfio/${g.id}`)).toBeGreaterThan(0);
  });

  it('device indexes count every device in creation order; emulated devices have no cdev', async () => {
    const engine = await createEngine();
    const a = engine.createGroup({ kind: 'iommu', devices: ['a0', 'a1'] });
    const m = engine.createGroup({ kind: 'emulated' });
    const b = engine.createGroup({ kind: 'iommu' });
    expect(a.devices.map((d) => d.cdevPath)).toEqual(['/dev/vfio/devices/vfio0', '/dev/vfio/devices/vfio1']);
    expect(m.devices[0].cdevPath).toBeNull();
    expect(b.devices[0].cdevPath).toBe('/dev/vfio/devices/vfio3');
    const proc = engine.createProcess();
    expect(proc.open('/dev/vfio/devices/vfio2')).toBe(-ENOENT);
    expect(proc.open('/dev/vfio/devices/vfio4')).toBe(-ENOENT);
    expect(proc.open('/dev/vfio/devices/vfio03')).toBe(-ENOENT);
  });

  it('V43 GET_HW_INFO', async () => {
    const s = await setupF();
    const B = s.proc.mmap(16);
    s.proc.write(B, new Uint8Array(16).fill(0xee));
    const info = (o: { size?: number; flags?: number; dev?: number; b29?: number } = {}): [number, Uint8Array] => {
      const b = struct(40, [[0, o.size ?? 40], [4, o.flags ?? 0], [8, o.dev ?? 2], [12, 16], [16, B, 8], [29, o.b29 ?? 0, 1]]);
      if ((o.size ?? 40) < 40) b.fill(0x77, 32);
      return [s.fd.call(uapi.IOMMU_GET_HW_INFO, b), b];
    };
    const [r, b] = info();
    expect(r).toBe(0);
    expect(dv(b).getUint32(12, true)).toBe(0);
    expect(dv(b).getUint32(24, true)).toBe(0);
    expect(b[28]).toBe(0);
    expect(hex(b.subarray(32))).toBe('01 00 00 00 00 00 00 00');
    expect(hex(s.proc.read(B, 16))).toBe(rep(0, 16));
    expect(info({ flags: 2 })[0]).toBe(-EOPNOTSUPP);
    expect(info({ b29: 1 })[0]).toBe(-EOPNOTSUPP);
    expect(info({ dev: 1 })[0]).toBe(-ENOENT);
    expect(info({ size: 31 })[0]).toBe(-EINVAL);
    const [r32, b32] = info({ size: 32 });
    expect(r32).toBe(0);
    expect(hex(b32.subarray(32))).toBe(rep(0x77, 8));
  });

  it('V43 a group without iommuDirtyTracking reports no capability', async () => {
    const engine = await createEngine();
    const g = engine.createGroup({ kind: 'iommu' });
    const proc = engine.createProcess();
    const I = proc.open('/dev/iommu');
    const C = proc.open(g.devices[0].cdevPath!);
    expect(bind(proc, C, I)).toBe(1);
    const b = struct(40, [[0, 40], [8, 1]]);
    expect(proc.ioctl(I, uapi.IOMMU_GET_HW_INFO, b)).toBe(0);
    expect(hex(b.subarray(32))).toBe(rep(0, 8));
  });

  it('V44 HWPT_ALLOC checks', async () => {
    const engine = await createEngine();
    const g = engine.createGroup({ kind: 'iommu', iommuDirtyTracking: true });
    const proc = engine.createProcess();
    const I = proc.open('/dev/iommu');
    const fd = new Iommufd(proc, I);
    fd.ioasAlloc();
    const C = proc.open(g.devices[0].cdevPath!);
    expect(bind(proc, C, I)).toBe(2);
    const alloc = (o: { size?: number; flags?: number; dev?: number; pt?: number; b20?: number; type?: number; len?: number }): [number, Uint8Array] => {
      const b = struct(48, [[0, o.size ?? 48], [4, o.flags ?? 2], [8, o.dev ?? 2], [12, o.pt ?? 1], [20, o.b20 ?? 0], [24, o.type ?? 0], [28, o.len ?? 0]]);
      return [fd.call(uapi.IOMMU_HWPT_ALLOC, b), b];
    };
    expect(alloc({ b20: 1 })[0]).toBe(-EOPNOTSUPP);
    expect(alloc({ len: 4 })[0]).toBe(-EINVAL);
    expect(alloc({ type: 1 })[0]).toBe(-EINVAL);
    expect(alloc({ type: 1, len: 4 })[0]).toBe(-EOPNOTSUPP);
    expect(alloc({ dev: 1 })[0]).toBe(-ENOENT);
    expect(alloc({ pt: 9 })[0]).toBe(-EINVAL);
    expect(alloc({ pt: 2 })[0]).toBe(-EINVAL);
    for (const f of [0x10, 1, 8]) expect(alloc({ flags: f })[0]).toBe(-EOPNOTSUPP);
    expect(alloc({ flags: 6 })[0]).toBe(-ENOENT);
    expect(alloc({ size: 23 })[0]).toBe(-EINVAL);
    const [r, b] = alloc({ size: 24 });
    expect(r).toBe(0);
    expect(hex(b.subarray(16, 20))).toBe('03 00 00 00');
    expect(alloc({ pt: 3 })[0]).toBe(-EOPNOTSUPP);
    const g2 = engine.createGroup({ kind: 'iommu' });
    const C2 = proc.open(g2.devices[0].cdevPath!);
    expect(bind(proc, C2, I)).toBe(4);
    expect(fd.hwptAlloc(2, 4, 1)).toBe(-EOPNOTSUPP);
    expect(fd.hwptAlloc(0, 4, 1)).toBe(5);
  });

  it('V46 attach to HWPTs and IOASes, automatic HWPTs, DESTROY', async () => {
    const s = await setupF();
    const { engine, proc, fd, I } = s;
    const g2 = engine.createGroup({ kind: 'iommu' });
    const g3 = engine.createGroup({ kind: 'iommu' });
    const C2 = proc.open(g2.devices[0].cdevPath!);
    expect(bind(proc, C2, I)).toBe(4);
    expect(attach(proc, C2, 3)).toBe(-EINVAL);
    expect(attach(proc, C2, 1)).toBe(5);
    const C3 = proc.open(g3.devices[0].cdevPath!);
    expect(bind(proc, C3, I)).toBe(6);
    expect(attach(proc, C3, 1)).toBe(5);
    expect(fd.destroy(5)).toBe(-EBUSY);
    expect(detach(proc, C2)).toBe(0);
    expect(detach(proc, C3)).toBe(0);
    expect(fd.destroy(5)).toBe(-ENOENT);
    expect(fd.destroy(1)).toBe(-EBUSY);
    expect(fd.destroy(2)).toBe(-EBUSY);
    expect(fd.destroy(3)).toBe(-EBUSY);
  });

  it('ATTACH errors: short buffer, argsz, flags, PASID, unknown id, a device id', async () => {
    const s = await setupF();
    const { proc, C } = s;
    expect(proc.ioctl(C, uapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT, new Uint8Array(11))).toBe(-EFAULT);
    expect(proc.ioctl(C, uapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT, struct(12, [[0, 11], [8, 3]]))).toBe(-EINVAL);
    expect(attach(proc, C, 3, 2)).toBe(-EINVAL);
    expect(attach(proc, C, 3, 1)).toBe(-EOPNOTSUPP);
    expect(attach(proc, C, 9)).toBe(-ENOENT);
    expect(attach(proc, C, 2)).toBe(-EINVAL);
    expect(attach(proc, C, 3)).toBe(3); // the same HWPT again: no-op
    expect(detach(proc, C, 1)).toBe(-EOPNOTSUPP);
    expect(detach(proc, C, 2)).toBe(-EINVAL);
  });

  it('ATTACH to a HWPT whose IOAS maps the group reserved range is EADDRINUSE', async () => {
    const s = await setupF();
    const { engine, proc, fd, I } = s;
    const V = proc.mmap(0x1000);
    expect(fd.map(1, 0xfee00000n, 0x1000n, V).ret).toBe(-EINVAL); // reserved by C's group
    const g2 = engine.createGroup({ kind: 'iommu', reserved: [[0x200000n, 0x200fffn]] });
    expect(fd.map(1, 0x200000n, 0x1000n, V).ret).toBe(0);
    const C2 = proc.open(g2.devices[0].cdevPath!);
    expect(bind(proc, C2, I)).toBe(4);
    expect(attach(proc, C2, 1)).toBe(-errno.EADDRINUSE);
    expect(fd.destroy(5)).toBe(-ENOENT); // nothing made
  });
});

describe('§5 H HWPT dirty tracking', () => {
  it('V49 SET_DIRTY_TRACKING', async () => {
    const s = await setupF();
    const { fd } = s;
    expect(fd.call(uapi.IOMMU_HWPT_SET_DIRTY_TRACKING, struct(16, [[0, 15], [4, 1], [8, 3]]))).toBe(-EINVAL);
    expect(fd.setDirty(3, 2)).toBe(-EOPNOTSUPP);
    for (const h of [1, 2, 9]) expect(fd.setDirty(h, 1)).toBe(-ENOENT);
    expect(fd.call(uapi.IOMMU_HWPT_SET_DIRTY_TRACKING, struct(16, [[0, 16], [4, 1], [8, 3], [12, 0xffffffff]]))).toBe(0);
    expect(fd.hwptAlloc(0, 2, 1)).toBe(4);
    expect(fd.setDirty(4, 1)).toBe(-EOPNOTSUPP);
    expect(fd.setDirty(4, 0)).toBe(-EOPNOTSUPP);
  });

  it('V51 GET_DIRTY_BITMAP argument errors', async () => {
    const s = await setupF();
    expect(s.ENABLE()).toBe(0);
    expect(s.GET(0x100800n, 0x1000n, 0x1000n).ret).toBe(-EINVAL);
    expect(s.GET(0x100000n, 0x800n, 0x1000n).ret).toBe(-EINVAL);
    expect(s.GET(0x100000n, 0x1000n, 0n, { n: 8 }).ret).toBe(-EINVAL);
    expect(s.GET(0x101000n, 0x2000n, 0x2000n).ret).toBe(-EINVAL);
    expect(s.GET(0xfffffffffffff000n, 0x2000n, 0x1000n).ret).toBe(-EOVERFLOW);
    expect(s.GET(0x100000n, 0n, 0x1000n, { n: 8 }).ret).toBe(-EOVERFLOW);
    expect(s.GET(0x100000n, 0x4000n, 0x3000n, { n: 8 }).ret).toBe(-EINVAL);
    expect(s.fd.hwptAlloc(0, 2, 1)).toBe(4);
    expect(s.fd.get(4, 0x100000n, 0x1000n, 0x1000n).ret).toBe(-EOPNOTSUPP);
    expect(s.fd.get(4, 0x100000n, 0x800n, 0x1000n).ret).toBe(-EINVAL);
  });

  it('V51 flags, __reserved and unknown ids', async () => {
    const s = await setupF();
    const data = s.proc.mmap(8);
    const get = (o: { flags?: number; res?: number; id?: number }): number => s.fd.call(uapi.IOMMU_HWPT_GET_DIRTY_BITMAP,
      struct(48, [[0, 48], [4, o.id ?? 3], [8, o.flags ?? 0], [12, o.res ?? 0], [16, 0x100000n, 8], [24, 0x1000n, 8], [32, 0x1000n, 8], [40, data, 8]]));
    expect(get({ flags: 2 })).toBe(-EOPNOTSUPP);
    expect(get({ res: 1 })).toBe(-EOPNOTSUPP);
    expect(get({ id: 1 })).toBe(-ENOENT);
    expect(get({ id: 2 })).toBe(-ENOENT);
    expect(get({})).toBe(0);
  });

  it('V52 GET reads and clears', async () => {
    const s = await setupF();
    expect(s.ENABLE()).toBe(0);
    for (const a of [0x100000n, 0x102000n, 0x140000n]) expect(s.D(a)).toBe(0);
    expect(s.GET(0x100000n, 0x80000n, 0x1000n).hex).toBe('05 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00');
    expect(s.GET(0x100000n, 0x80000n, 0x1000n).hex).toBe(rep(0, 16));
  });

  it('V53 NO_CLEAR', async () => {
    const s = await setupF();
    expect(s.ENABLE()).toBe(0);
    expect(s.D(P(0x100))).toBe(0);
    expect(s.D(P(0x103))).toBe(0);
    const want = `09 ${rep(0, 7)}`;
    expect(s.GET(0x100000n, 0x40000n, 0x1000n, { noClear: true }).hex).toBe(want);
    expect(s.GET(0x100000n, 0x40000n, 0x1000n, { noClear: true }).hex).toBe(want);
    expect(s.GET(0x100000n, 0x40000n, 0x1000n).hex).toBe(want);
    expect(s.GET(0x100000n, 0x40000n, 0x1000n).hex).toBe(rep(0, 8));
  });

  it('V56 a report page larger than the IOPTE', async () => {
    const s = await setupF();
    expect(s.ENABLE()).toBe(0);
    for (const n of [0x101, 0x102, 0x10d]) expect(s.D(P(n))).toBe(0);
    expect(s.GET(0x100000n, 0x20000n, 0x4000n).hex).toBe(`09 ${rep(0, 7)}`);
    expect(s.GET(0x101000n, 0x20000n, 0x4000n).ret).toBe(-EINVAL);
  });

  it('V58 every area of a range with holes is walked (§6 rows 9, 14)', async () => {
    const s = await setupF();
    const { fd, V } = s;
    expect(fd.unmap(1, 0n, U64_MAX).ret).toBe(0);
    expect(fd.map(1, 0x100000n, 0x4000n, V).ret).toBe(0);
    expect(fd.map(1, 0x108000n, 0x4000n, V + 0x8000n).ret).toBe(0);
    expect(s.ENABLE()).toBe(0);
    expect(s.D(0x101000n)).toBe(0);
    expect(s.D(0x108000n)).toBe(0);
    expect(s.GET(0x100000n, 0x10000n, 0x1000n).hex).toBe('02 01 00 00 00 00 00 00');
    expect(s.GET(0x108000n, 0x4000n, 0x1000n).hex).toBe(rep(0, 8));
    expect(s.GET(0xf0000n, 0x20000n, 0x1000n, { fill: 0xee }).hex).toBe(rep(0xee, 8));
  });

  it('V59 ENABLE when enabled changes nothing (§6 row 11)', async () => {
    const s = await setupF();
    expect(s.ENABLE()).toBe(0);
    expect(s.D(0x100000n)).toBe(0);
    expect(s.ENABLE()).toBe(0);
    expect(s.GET(0x100000n, 0x40000n, 0x1000n).hex).toBe(`01 ${rep(0, 7)}`);
  });

  it('V60 GET with tracking disabled reads the kept bits (§6 row 10)', async () => {
    const s = await setupF();
    expect(s.ENABLE()).toBe(0);
    expect(s.D(0x100000n)).toBe(0);
    expect(s.fd.setDirty(3, 0)).toBe(0);
    expect(s.D(0x101000n)).toBe(0);
    expect(s.GET(0x100000n, 0x40000n, 0x1000n, { fill: 0x5a }).hex).toBe(`5b ${rep(0x5a, 7)}`);
    expect(s.GET(0x100000n, 0x40000n, 0x1000n).hex).toBe(rep(0, 8));
  });

  it('disable then enable wipes the dirty bits', async () => {
    const s = await setupF();
    expect(s.ENABLE()).toBe(0);
    expect(s.D(0x100000n)).toBe(0);
    expect(s.fd.setDirty(3, 0)).toBe(0);
    expect(s.ENABLE()).toBe(0);
    expect(s.GET(0x100000n, 0x40000n, 0x1000n).hex).toBe(rep(0, 8));
  });

  it('V63 unmap drops the dirty bits; faults; read-only areas', async () => {
    const s = await setupF();
    const { fd, V, dev } = s;
    expect(s.ENABLE()).toBe(0);
    expect(s.D(0x100000n)).toBe(0);
    expect(fd.unmap(1, 0x100000n, 0x80000n)).toEqual({ ret: 0, length: 0x80000n });
    expect(s.D(0x100000n)).toBe(-EFAULT);
    expect(fd.map(1, 0x100000n, 0x80000n, V).ret).toBe(0);
    expect(s.GET(0x100000n, 0x80000n, 0x1000n).hex).toBe(rep(0, 16));
    expect(fd.map(1, 0x200000n, 0x1000n, V, 5).ret).toBe(0);
    expect(s.D(0x200000n)).toBe(-EFAULT);
    const r = dev.dmaRead(0x200000n, 8);
    expect(r).toBeInstanceOf(Uint8Array);
    expect((r as Uint8Array).length).toBe(8);
    expect(s.GET(0x200000n, 0x1000n, 0x1000n).hex).toBe(rep(0, 8));
  });

  it('V65 huge IOPTEs: one dirty bit per 2 MiB', async () => {
    const s = await setupF({ huge: true });
    expect(s.ENABLE()).toBe(0);
    expect(s.D(0x1201000n)).toBe(0);
    expect(s.GET(0x1000000n, 0x400000n, 0x1000n).hex).toBe(`${rep(0, 64)} ${rep(0xff, 64)}`);
    expect(s.GET(0x1000000n, 0x400000n, 0x1000n).hex).toBe(rep(0, 128));
  });

  it('an IOPTE straddling the GET range is reported for its inside part and kept (§6 row 7)', async () => {
    const s = await setupF({ huge: true });
    expect(s.ENABLE()).toBe(0);
    expect(s.D(0x1201000n)).toBe(0);
    expect(s.GET(0x1300000n, 0x100000n, 0x1000n).hex).toBe(rep(0xff, 32));
    expect(s.GET(0x1300000n, 0x100000n, 0x1000n).hex).toBe(rep(0xff, 32));
    expect(s.GET(0x1200000n, 0x200000n, 0x1000n).hex).toBe(rep(0xff, 64));
    expect(s.GET(0x1200000n, 0x200000n, 0x1000n).hex).toBe(rep(0, 64));
  });

  it('a GET bitmap extent that is not mapped is EFAULT and nothing is cleared (§6 row 5)', async () => {
    const s = await setupF();
    expect(s.ENABLE()).toBe(0);
    expect(s.D(0x100000n)).toBe(0);
    const base = s.proc.mmap(0x1000);
    expect(s.GET(0x100000n, 0x80000n, 0x1000n, { data: base + 0xff8n }).ret).toBe(-EFAULT);
    expect(s.GET(0x100000n, 0x80000n, 0x1000n, { data: 0n }).ret).toBe(-EFAULT);
    expect(s.GET(0x100000n, 0x80000n, 0x1000n).hex).toBe(`01 ${rep(0, 15)}`);
  });

describe('GET over the whole address space', () => {
  it('iova 0 with length 0 means all of [0, U64_MAX]', async () => {
    const s = await setupF();
    expect(s.ENABLE()).toBe(0);
    expect(s.D(0x100000n)).toBe(0);
    expect(s.GET(0n, 0n, 1n << 63n, { n: 8 }).hex).toBe(`01 ${rep(0, 7)}`);
    expect(s.GET(0n, 0n, 1n << 63n, { n: 8 }).hex).toBe(rep(0, 8));
    expect(s.GET(0n, 0n, 0x1000n, { n: 8 }).ret).toBe(-EFAULT); // a 2^49-byte extent
  });
});
});
