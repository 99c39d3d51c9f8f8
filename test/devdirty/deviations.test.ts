// One test per version choice and safe deviation of docs/conformance.md §20.6, named after its
// row.
import { describe, expect, it } from 'vitest';
import { createEngine, errno, uapi } from '../../src/index.js';
import { attach, bind, detach, dv, hex, Iommufd, P, rep, setupF, setupL, struct, U64_MAX, userBuffer } from './helpers.js';

const { ENOTTY, EINVAL, EFAULT, EOPNOTSUPP, ENOENT } = errno;

describe('§6 deviations', () => {
  it('row 1: a feature index no handler takes is ENOTTY', async () => {
    const s = await setupL();
    expect(s.FEAT(0x00010000 | 0x1234, 64)).toBe(-ENOTTY);
  });

  it('row 2: MIG_DEVICE_STATE, MIG_DATA_SIZE and indexes 3-5 are not modelled (ENOTTY)', async () => {
    const s = await setupL();
    for (const i of [2, 3, 4, 5, 9]) expect(s.FEAT(0x00040000 | i, 8)).toBe(-ENOTTY);
  });

  it('row 3: a START range of length 0 is EINVAL', async () => {
    const s = await setupL();
    expect(s.START(0x1000n, [[P(1), 0n]]).ret).toBe(-EINVAL);
  });

  it('row 4: START page_size is not validated and __reserved is ignored', async () => {
    const s = await setupL();
    const ptr = s.proc.mmap(16);
    s.proc.write(ptr, struct(16, [[0, 0n], [8, 0x1000n]]));
    const b = struct(32, [[0, 32], [4, 0x00020006], [8, 0x2001n], [16, 1], [20, 0xffffffff], [24, ptr]]);
    expect(s.proc.ioctl(s.D, uapi.VFIO_DEVICE_FEATURE, b)).toBe(0);
    expect(dv(b).getBigUint64(8, true)).toBe(0x2000n); // mask 0x2000; f = T = 8 KiB
  });

  it('row 5: an unusable bitmap is EFAULT before any bit is read (REPORT and GET)', async () => {
    const l = await setupL();
    expect(l.START().ret).toBe(0);
    expect(l.W(P(1))).toBe(0);
    expect(l.REP(0n, P(0x40), 0x1000n, 8, { data: 0x7ffffffff000n }).ret).toBe(-EFAULT);
    expect(l.REP().hex).toBe('02 00 00 00 00 00 00 00');
    const f = await setupF();
    expect(f.ENABLE()).toBe(0);
    expect(f.D(0x100000n)).toBe(0);
    expect(f.GET(0x100000n, 0x1000n, 0x1000n, { data: 0n }).ret).toBe(-EFAULT);
    expect(f.GET(0x100000n, 0x1000n, 0x1000n).hex).toBe(`01 ${rep(0, 7)}`);
  });

  it('row 6: records outside the range are clipped: a unit starting before iova is reported', async () => {
    const s = await setupL();
    expect(s.START(0x200000n, [[0n, 0x1000000n]]).ret).toBe(0);
    expect(s.W(0x201000n)).toBe(0);
    // the unit [0x200000, 0x3fffff] starts before the report's iova: its inside part is reported
    expect(s.REP(0x300000n, 0x1000n, 0x1000n, 8, { fill: 0 }).hex).toBe(`01 ${rep(0, 7)}`);
  });

  it('row 7: a unit straddling the range end is reported for its inside part and kept marked', async () => {
    const s = await setupL();
    expect(s.START(0x200000n, [[0n, 0x1000000n]]).ret).toBe(0);
    expect(s.W(0x3ff000n)).toBe(0);
    expect(s.REP(0x200000n, 0x1000n, 0x1000n).hex).toBe(`01 ${rep(0, 7)}`);
    expect(s.REP(0x200000n, 0x1000n, 0x1000n).hex).toBe(`01 ${rep(0, 7)}`);
  });

  it('row 8: a huge IOPTE entered mid-way is tested, and so is the next one', async () => {
    const s = await setupF({ huge: true });
    expect(s.ENABLE()).toBe(0);
    expect(s.D(0x1000000n)).toBe(0);
    expect(s.D(0x1200000n)).toBe(0);
    const r = s.GET(0x1100000n, 0x200000n, 0x100000n);
    expect(r.hex).toBe(`03 ${rep(0, 7)}`);
    // neither IOPTE lies inside [0x1100000, 0x12fffff]: both stay dirty
    expect(s.GET(0x1000000n, 0x400000n, 0x200000n).hex).toBe(`03 ${rep(0, 7)}`);
  });

  it('row 9: every area of a GET range with a hole is walked', async () => {
    const s = await setupF();
    const V = s.proc.mmap(0x1000);
    expect(s.fd.map(1, 0x200000n, 0x1000n, V).ret).toBe(0);
    expect(s.ENABLE()).toBe(0);
    expect(s.D(0x200000n)).toBe(0);
    const r = s.GET(0x100000n, 0x101000n, 0x1000n);
    expect(r.bytes[0x100000 / 0x1000 / 8]).toBe(1);
  });

  it('row 10: GET with tracking disabled reads and clears the kept bits', async () => {
    const s = await setupF();
    expect(s.ENABLE()).toBe(0);
    expect(s.D(0x100000n)).toBe(0);
    expect(s.fd.setDirty(3, 0)).toBe(0);
    expect(s.GET(0x100000n, 0x1000n, 0x1000n).hex).toBe(`01 ${rep(0, 7)}`);
    expect(s.GET(0x100000n, 0x1000n, 0x1000n).hex).toBe(rep(0, 8));
  });

  it('row 11: ENABLE on an enabled HWPT keeps its dirty bits', async () => {
    const s = await setupF();
    expect(s.ENABLE()).toBe(0);
    expect(s.D(0x101000n)).toBe(0);
    expect(s.ENABLE()).toBe(0);
    expect(s.GET(0x100000n, 0x2000n, 0x1000n).hex).toBe(`02 ${rep(0, 7)}`);
  });

  it('row 12: a non-power-of-two GET page_size is EINVAL even when the masks pass', async () => {
    const s = await setupF();
    expect(s.ENABLE()).toBe(0);
    expect(s.GET(0x0n, 0x300000n, 0x300000n, { n: 8 }).ret).toBe(-EINVAL);
  });

  it('row 13: SET_DIRTY_TRACKING __reserved is not checked', async () => {
    const s = await setupF();
    expect(s.fd.call(uapi.IOMMU_HWPT_SET_DIRTY_TRACKING, struct(16, [[0, 16], [4, 0], [8, 3], [12, 7]]))).toBe(0);
  });

  it('row 14: GET over a range with no areas returns 0 and leaves the buffer', async () => {
    const s = await setupF();
    expect(s.GET(0x10000000n, 0x1000n, 0x1000n, { fill: 0x33 }).hex).toBe(rep(0x33, 8));
  });

  it('row 15: IOAS_UNMAP hitting a partial area removes nothing', async () => {
    const s = await setupF();
    const V = s.proc.mmap(0x2000);
    expect(s.fd.map(1, 0x200000n, 0x2000n, V).ret).toBe(0);
    expect(s.fd.unmap(1, 0x100000n, 0x101000n).ret).toBe(-ENOENT);
    expect(s.D(0x100000n)).toBe(0); // the first area is still mapped
  });

  it('row 16: BIND takes the 24-byte struct; the TOKEN flag is EINVAL', async () => {
    const engine = await createEngine();
    const g = engine.createGroup({ kind: 'iommu' });
    const proc = engine.createProcess();
    const I = proc.open('/dev/iommu');
    const C = proc.open(g.devices[0].cdevPath!);
    const tok = proc.mmap(16);
    expect(proc.ioctl(C, uapi.VFIO_DEVICE_BIND_IOMMUFD, struct(24, [[0, 24], [4, 1], [8, I], [16, tok]]))).toBe(-EINVAL);
    const b = struct(24, [[0, 24], [8, I]]);
    expect(proc.ioctl(C, uapi.VFIO_DEVICE_BIND_IOMMUFD, b)).toBe(0);
    expect(hex(b.subarray(12, 16))).toBe('01 00 00 00');
  });

  it('row 17: ATTACH and DETACH with the PASID flag are EOPNOTSUPP', async () => {
    const s = await setupF();
    expect(attach(s.proc, s.C, 3, 1)).toBe(-EOPNOTSUPP);
    expect(detach(s.proc, s.C, 1)).toBe(-EOPNOTSUPP);
  });

  it('row 18: IOAS_UNMAP of nothing is ENOENT', async () => {
    const s = await setupF();
    expect(s.fd.unmap(1, 0x900000n, 0x1000n).ret).toBe(-ENOENT);
  });

  it('row 19: a dmaWrite while type1 tracks is marked in either scope', async () => {
    const s = await setupL({ map: P(0x40) });
    expect(s.proc.ioctl(s.container, uapi.VFIO_IOMMU_DIRTY_PAGES, struct(8, [[0, 8], [4, 1]]))).toBe(0);
    expect(s.W(P(7))).toBe(0);
    s.dev.registerDmaUnmap(() => {});
    expect(s.dev.pinPages(P(0), 1, uapi.IOMMU_READ)).toBe(1); // promotion to pinned scope
    const data = userBuffer(s.proc, 8);
    expect(s.proc.ioctl(s.container, uapi.VFIO_IOMMU_DIRTY_PAGES,
      struct(48, [[0, 48], [4, 4], [16, P(0x40), 8], [24, 0x1000n, 8], [32, 8n, 8], [40, data, 8]]))).toBe(0);
    expect(hex(s.proc.read(data, 8))).toBe(`81 ${rep(0, 7)}`);
  });

  it('row 20: HWPT_ALLOC NEST_PARENT, PASID, vendor data, fault ids are refused', async () => {
    const s = await setupF();
    expect(s.fd.hwptAlloc(1, 2, 1)).toBe(-EOPNOTSUPP);
    expect(s.fd.hwptAlloc(8, 2, 1)).toBe(-EOPNOTSUPP);
    expect(s.fd.hwptAlloc(4, 2, 1)).toBe(-ENOENT);
    expect(s.fd.call(uapi.IOMMU_HWPT_ALLOC, struct(48, [[0, 48], [8, 2], [12, 1], [24, 1], [28, 4]]))).toBe(-EOPNOTSUPP);
  });

  it('row 21: sub-4 KiB IOMMU pages are normalized to 4 KiB', async () => {
    const engine = await createEngine();
    const g = engine.createGroup({ kind: 'iommu', pgsizeBitmap: 0xfffff800n });
    const proc = engine.createProcess();
    const fd = new Iommufd(proc, proc.open('/dev/iommu'));
    fd.ioasAlloc();
    const C = proc.open(g.devices[0].cdevPath!);
    expect(bind(proc, C, fd.fd)).toBe(2);
    expect(attach(proc, C, 1)).toBe(3);
    const b = struct(32, [[0, 32], [4, 1]]);
    fd.call(uapi.IOMMU_IOAS_IOVA_RANGES, b);
    expect(dv(b).getBigUint64(24, true)).toBe(0x1000n);
  });

  it('row 22: iommufd pins are not charged to RLIMIT_MEMLOCK', async () => {
    const engine = await createEngine();
    const g = engine.createGroup({ kind: 'iommu', iommuDirtyTracking: true });
    const proc = engine.createProcess({ memlockLimit: 0 });
    const fd = new Iommufd(proc, proc.open('/dev/iommu'));
    fd.ioasAlloc();
    const C = proc.open(g.devices[0].cdevPath!);
    expect(bind(proc, C, fd.fd)).toBe(2);
    expect(fd.hwptAlloc(2, 2, 1)).toBe(3);
    expect(attach(proc, C, 3)).toBe(3);
    expect(fd.map(1, 0x100000n, 0x100000n, proc.mmap(0x100000)).ret).toBe(0);
    expect(proc.lockedVm).toBe(0n);
  });

  it('row 23: an mdev has no cdev', async () => {
    const engine = await createEngine();
    const m = engine.createGroup({ kind: 'emulated' });
    expect(m.devices[0].cdevPath).toBeNull();
    expect(engine.createProcess().open('/dev/vfio/devices/vfio0')).toBe(-ENOENT);
  });

  it('row 24: VFIO compat ioctls on /dev/iommu are ENOTTY', async () => {
    const s = await setupF();
    for (const r of [0x3b64, 0x3b65, 0x3b66, 0x3b70, 0x3b71, 0x3b72, 0x3b75]) expect(s.proc.ioctl(s.I, r, new Uint8Array(64))).toBe(-ENOTTY);
  });

  it('row 25: automatic IOVA alignment is capped at 2 MiB', async () => {
    const engine = await createEngine();
    const proc = engine.createProcess();
    const fd = new Iommufd(proc, proc.open('/dev/iommu'));
    fd.ioasAlloc();
    expect(fd.map(1, 0n, 0x800000n, 0x800000n, 6)).toEqual({ ret: 0, iova: 0x200000n });
    void U64_MAX;
  });

  it('row 26: VFIO_DEVICE_RESET keeps the log', async () => {
    const s = await setupL();
    expect(s.START().ret).toBe(0);
    expect(s.W(P(3))).toBe(0);
    expect(s.proc.ioctl(s.D, uapi.VFIO_DEVICE_RESET)).toBe(0);
    expect(s.REP().hex).toBe(`08 ${rep(0, 7)}`);
  });
});
