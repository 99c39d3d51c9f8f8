// iommufd acceptance vectors, group F: framing and the IOAS (I = a fresh /dev/iommu fd;
// docs/conformance.md §21.1, §21.3).
import { describe, expect, it } from 'vitest';
import { createEngine, errno, uapi } from '../../src/index.js';
import { dv, hex, Iommufd, rep, struct, U64_MAX } from '../devdirty/helpers.js';

const { ENOTTY, EINVAL, EOPNOTSUPP, E2BIG, EFAULT, EMSGSIZE, ENOENT, EOVERFLOW, EEXIST } = errno;

async function fresh(): Promise<{ fd: Iommufd; I: number; proc: import('../../src/index.js').Process }> {
  const engine = await createEngine();
  const proc = engine.createProcess();
  const I = proc.open('/dev/iommu');
  return { fd: new Iommufd(proc, I), I, proc };
}

describe('§5 F iommufd framing and IOAS', () => {
  it('V34 framing', async () => {
    const { fd, proc, I } = await fresh();
    expect(proc.ioctl(I, 0xc0303b8c, new Uint8Array(48))).toBe(-ENOTTY);
    expect(proc.ioctl(I, 0x3b8d, new Uint8Array(48))).toBe(-ENOTTY);
    expect(proc.ioctl(I, 0x3b64, new Uint8Array(48))).toBe(-ENOTTY);
    for (const r of [0x3b82, 0x3b83, 0x3b87, 0x3b88, 0x3b94, 0x3b71, 0x3b75]) expect(proc.ioctl(I, r, new Uint8Array(64))).toBe(-ENOTTY);
    expect(fd.call(uapi.IOMMU_IOAS_ALLOC, struct(12, [[0, 11]]))).toBe(-EINVAL);
    expect(fd.call(uapi.IOMMU_IOAS_ALLOC, struct(12, [[0, 12], [4, 1]]))).toBe(-EOPNOTSUPP);
    const a = struct(12, [[0, 12]]);
    expect(fd.call(uapi.IOMMU_IOAS_ALLOC, a)).toBe(0);
    expect(hex(a.subarray(8))).toBe('01 00 00 00');
    expect(fd.ioasAlloc()).toBe(2);
    expect(fd.call(uapi.IOMMU_IOAS_ALLOC, struct(16, [[0, 16], [12, 1]]))).toBe(-E2BIG);
    const z = struct(16, [[0, 16]]);
    expect(fd.call(uapi.IOMMU_IOAS_ALLOC, z)).toBe(0);
    expect(dv(z).getUint32(8, true)).toBe(3);
    expect(fd.call(uapi.IOMMU_IOAS_ALLOC, new Uint8Array(3))).toBe(-EFAULT);
    expect(fd.ioasAlloc()).toBe(4);
  });

  it('V34 ids are reused lowest first after DESTROY; DESTROY 0 and unknown ids are ENOENT', async () => {
    const { fd } = await fresh();
    expect([fd.ioasAlloc(), fd.ioasAlloc(), fd.ioasAlloc()]).toEqual([1, 2, 3]);
    expect(fd.destroy(2)).toBe(0);
    expect(fd.destroy(2)).toBe(-ENOENT);
    expect(fd.destroy(0)).toBe(-ENOENT);
    expect(fd.ioasAlloc()).toBe(2);
    expect(fd.ioasAlloc()).toBe(4);
  });

  it('V36 IOVA_RANGES', async () => {
    const { fd, proc } = await fresh();
    fd.ioasAlloc();
    const b = struct(32, [[0, 32], [4, 1]]);
    expect(fd.call(uapi.IOMMU_IOAS_IOVA_RANGES, b)).toBe(-EMSGSIZE);
    expect(dv(b).getUint32(8, true)).toBe(1);
    expect(dv(b).getBigUint64(24, true)).toBe(1n);
    const arr = proc.mmap(16);
    const c = struct(32, [[0, 32], [4, 1], [8, 1], [16, arr, 8]]);
    expect(fd.call(uapi.IOMMU_IOAS_IOVA_RANGES, c)).toBe(0);
    expect(hex(proc.read(arr, 16))).toBe(`${rep(0, 8)} ${rep(0xff, 8)}`);
    expect(fd.call(uapi.IOMMU_IOAS_IOVA_RANGES, struct(32, [[0, 32], [4, 1], [12, 1]]))).toBe(-EOPNOTSUPP);
    expect(fd.call(uapi.IOMMU_IOAS_IOVA_RANGES, struct(32, [[0, 32], [4, 99]]))).toBe(-ENOENT);
    expect(fd.call(uapi.IOMMU_IOAS_IOVA_RANGES, struct(32, [[0, 31], [4, 1]]))).toBe(-EINVAL);
    expect(fd.call(uapi.IOMMU_IOAS_IOVA_RANGES, struct(32, [[0, 32], [4, 1], [8, 1], [16, 0n, 8]]))).toBe(-EFAULT);
  });

  it('V37 IOAS_MAP checks in order', async () => {
    const { fd, proc } = await fresh();
    fd.ioasAlloc();
    const V = proc.mmap(0x1000);
    const base = { flags: 7, ioas: 1, uva: V, len: 0x1000n, iova: 0x100000n, res: 0 };
    const map = (o: Partial<typeof base>): number => {
      const m = { ...base, ...o };
      return fd.call(uapi.IOMMU_IOAS_MAP, struct(40, [[0, 40], [4, m.flags], [8, m.ioas], [12, m.res], [16, m.uva, 8], [24, m.len, 8], [32, m.iova, 8]]));
    };
    expect(map({ flags: 0 })).toBe(-EINVAL);
    expect(map({ flags: 0xe })).toBe(-EOPNOTSUPP);
    expect(map({ res: 1 })).toBe(-EOPNOTSUPP);
    expect(map({ len: U64_MAX })).toBe(-EOVERFLOW);
    expect(map({ iova: U64_MAX })).toBe(-EOVERFLOW);
    expect(map({ ioas: 99 })).toBe(-ENOENT);
    expect(map({ len: 0n })).toBe(-EINVAL);
    expect(map({ uva: 0xfffffffffffff000n, len: 0x2000n })).toBe(-EOVERFLOW);
    const b = struct(40, [[0, 40], [4, 7], [8, 1], [16, V, 8], [24, 0x1000n, 8], [32, 0x100000n, 8]]);
    expect(fd.call(uapi.IOMMU_IOAS_MAP, b)).toBe(0);
    expect(dv(b).getBigUint64(32, true)).toBe(0x100000n);
    expect(map({})).toBe(-EEXIST);
    expect(map({ iova: 0x100800n })).toBe(-EEXIST);
    expect(map({ iova: 0xfffffffffffff000n, len: 0x2000n })).toBe(-EOVERFLOW);
  });

  it('IOAS_MAP without FIXED_IOVA allocates the lowest aligned hole, never IOVA 0', async () => {
    const { fd, proc } = await fresh();
    fd.ioasAlloc();
    const V = proc.mmap(0x10000);
    expect(fd.map(1, 0n, 0x1000n, V, 6)).toEqual({ ret: 0, iova: 0x1000n });
    expect(fd.map(1, 0n, 0x4000n, V, 6)).toEqual({ ret: 0, iova: 0x4000n });
    expect(fd.map(1, 0n, 0x1000n, V + 0x3000n, 6)).toEqual({ ret: 0, iova: 0x2000n });
    expect(fd.map(1, 0n, 0x1000n, 0x123n, 6)).toEqual({ ret: 0, iova: 0x8123n }); // [0x3123, 0x3fff] is too short
  });

  it('IOAS_MAP without FIXED_IOVA: ENOSPC when no hole is left, EOVERFLOW for 2^63 - 1 bytes', async () => {
    const { fd, proc } = await fresh();
    fd.ioasAlloc();
    expect(fd.map(1, 0n, 1n << 63n, 0x1000n, 6).ret).toBe(-EOVERFLOW);
    expect(fd.map(1, 0x1000n, U64_MAX - 0x1fffn, 0x1000n, 7).ret).toBe(0);
    expect(fd.map(1, 0n, 0x1000n, proc.mmap(0x1000), 6).ret).toBe(-28);
  });

  it('V39 IOAS_UNMAP', async () => {
    const { fd, proc } = await fresh();
    fd.ioasAlloc();
    const V = proc.mmap(0x10000);
    expect(fd.map(1, 0x100000n, 0x4000n, V).ret).toBe(0);
    expect(fd.map(1, 0x108000n, 0x4000n, V).ret).toBe(0);
    expect(fd.unmap(1, 0x101000n, 0x1000n).ret).toBe(-ENOENT);
    expect(fd.unmap(1, 0x100000n, 0x9000n).ret).toBe(-ENOENT);
    expect(fd.map(1, 0x100000n, 0x4000n, V).ret).toBe(-EEXIST); // §6 row 15: A stays
    expect(fd.map(1, 0x108000n, 0x4000n, V).ret).toBe(-EEXIST);
    expect(fd.unmap(1, 0x100000n, 0x10000n)).toEqual({ ret: 0, length: 0x8000n });
    expect(fd.unmap(1, 0x100000n, 0x10000n).ret).toBe(-ENOENT);
    expect(fd.unmap(1, 0n, U64_MAX)).toEqual({ ret: 0, length: 0n });
    expect(fd.unmap(1, 0x100000n, 0n).ret).toBe(-EINVAL);
    expect(fd.unmap(1, 0xfffffffffffff000n, 0x2000n).ret).toBe(-EOVERFLOW);
    expect(fd.unmap(99, 0n, U64_MAX).ret).toBe(-ENOENT);
  });

  it('IOAS_UNMAP of nothing is ENOENT (§6 row 18); UNMAP all removes every area', async () => {
    const { fd, proc } = await fresh();
    fd.ioasAlloc();
    const V = proc.mmap(0x10000);
    expect(fd.unmap(1, 0x100000n, 0x1000n).ret).toBe(-ENOENT);
    expect(fd.map(1, 0x100000n, 0x4000n, V).ret).toBe(0);
    expect(fd.map(1, 0x200000n, 0x4000n, V).ret).toBe(0);
    expect(fd.unmap(1, 0n, U64_MAX)).toEqual({ ret: 0, length: 0x8000n });
    expect(fd.map(1, 0x100000n, 0x4000n, V).ret).toBe(0);
  });
});
