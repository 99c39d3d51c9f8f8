// docs/conformance.md §5 UNMAP_DMA: checks, v2 bisection vs v1 whole-dma semantics, returned size
// and the bytes copied back, UNMAP_ALL, accounting; vectors V18-V21.
import { describe, expect, it } from 'vitest';
import { errno } from '../../src/errors.js';
import { uapi } from '../../src/uapi.js';
import { dmaUnmap, hex, parseDmaUnmap } from '../helpers/uapi_structs.js';
import { failsCleanly, must, P, setup, type Setup } from '../helpers/setups.js';

const ALL = uapi.VFIO_DMA_UNMAP_FLAG_ALL;
const TOP = 0xffff_ffff_ffff_f000n;

/** UNMAP that must fail with `err`, copy nothing back and change nothing. */
function unmapFails(s: Setup, err: number, iova: bigint, size: bigint, flags = 0): void {
  failsCleanly(s, err, () => {
    const r = s.UNMAP(iova, size, flags);
    expect(r.size).toBe(size); // nothing copied back
    return r.ret;
  });
}

describe('V18-V21 UNMAP vectors', () => {
  it('V18 v2 bisection', async () => {
    const s = await setup('I');
    must(s.MAP(0x10000n, 0x4000n), 'MAP');
    unmapFails(s, errno.EINVAL, 0x11000n, 0x1000n);
    unmapFails(s, errno.EINVAL, 0x10000n, 0x2000n);
    unmapFails(s, errno.EINVAL, 0xf000n, 0x2000n);
    unmapFails(s, errno.EINVAL, 0x12000n, 0x4000n);
    expect(s.dmas()).toEqual([[0x10000n, 0x4000n]]);
    let u = s.UNMAP(0xf000n, 0x6000n);
    expect([u.ret, u.size]).toEqual([0, 0x4000n]);
    u = s.UNMAP(0x10000n, 0x4000n);
    expect([u.ret, u.size]).toEqual([0, 0n]);
  });

  it('V19 multi-dma unmap', async () => {
    const s = await setup('I');
    must(s.MAP(0x10000n, 0x2000n), 'A');
    must(s.MAP(0x14000n, 0x1000n), 'B');
    must(s.MAP(0x20000n, 0x1000n), 'C');
    let u = s.UNMAP(0x10000n, 0x10000n);
    expect([u.ret, u.size]).toEqual([0, 0x3000n]);
    expect(s.dmas()).toEqual([[0x20000n, 0x1000n]]);
    u = s.UNMAP(0n, 0x30000n);
    expect([u.ret, u.size]).toEqual([0, 0x1000n]);
    expect(s.dmas()).toEqual([]);
  });

  it.each([['linux-6.18', errno.EOVERFLOW], ['linux-6.6', errno.EINVAL]] as const)('V20 argument errors (%s)', async (profile, wrapErr) => {
    const s = await setup('I', { profile });
    must(s.MAP(0x10000n, 0x2000n), 'MAP');
    unmapFails(s, errno.EINVAL, 0x10000n, 0n);
    unmapFails(s, errno.EINVAL, 0x10000n, 0x1800n);
    unmapFails(s, errno.EINVAL, 0x10800n, 0x1000n);
    unmapFails(s, wrapErr, TOP, 0x2000n);
    // Alignment of iova (step 2) and of size (step 3) come before the wrap check.
    unmapFails(s, errno.EINVAL, 0xffff_ffff_ffff_f800n, 0x1000n);
    unmapFails(s, errno.EINVAL, TOP, 0x1800n);
  });

  it('V21 UNMAP_ALL', async () => {
    const s = await setup('I');
    must(s.MAP(0x10000n, 0x2000n), 'A');
    must(s.MAP(0x20000n, 0x3000n), 'B');
    unmapFails(s, errno.EINVAL, 0x1000n, 0n, ALL);
    unmapFails(s, errno.EINVAL, 0n, 0x1000n, ALL);
    let u = s.UNMAP(0n, 0n, ALL);
    expect([u.ret, u.size]).toEqual([0, 0x5000n]);
    expect(s.dmas()).toEqual([]);
    expect(s.container().dmaAvail).toBe(65535);
    expect(s.proc.lockedVm).toBe(0n);
    u = s.UNMAP(0n, 0n, ALL);
    expect([u.ret, u.size]).toEqual([0, 0n]);
  });

  it('V21 UNMAP_ALL in a v1 container', async () => {
    const s = await setup('I', { v1: true });
    must(s.MAP(0x10000n, 0x2000n), 'A');
    must(s.MAP(0x20000n, 0x3000n), 'B');
    const u = s.UNMAP(0n, 0n, ALL);
    expect([u.ret, u.size]).toEqual([0, 0x5000n]);
  });
});

describe('§5.3 v2 range semantics', () => {
  it('a range may start and end in gaps; one touching nothing succeeds with size 0', async () => {
    const s = await setup('E');
    must(s.MAP(P(4), P(2)), 'A');
    must(s.MAP(P(8), P(2)), 'B');
    let u = s.UNMAP(P(20), P(4));
    expect([u.ret, u.size]).toEqual([0, 0n]);
    u = s.UNMAP(P(2), P(10));
    expect([u.ret, u.size]).toEqual([0, P(4)]);
  });

  it('the bisection check sees the range end inside a dma even across a gap', async () => {
    const s = await setup('E');
    must(s.MAP(P(4), P(2)), 'A');
    must(s.MAP(P(8), P(4)), 'B');
    unmapFails(s, errno.EINVAL, P(4), P(6)); // A whole, B bisected at its start + 2
    expect(s.dmas()).toEqual([[P(4), P(2)], [P(8), P(4)]]);
  });
});

describe('§5.3 v1 range semantics', () => {
  it('a request starting inside a dma removes nothing and succeeds with size 0', async () => {
    const s = await setup('I', { v1: true });
    must(s.MAP(0x10000n, 0x4000n), 'A');
    const u = s.UNMAP(0x11000n, 0x1000n);
    expect([u.ret, u.size]).toEqual([0, 0n]);
    expect(s.dmas()).toEqual([[0x10000n, 0x4000n]]);
  });

  it('a dma starting in the range is removed whole: the size can exceed the request', async () => {
    const s = await setup('I', { v1: true });
    must(s.MAP(0x10000n, 0x4000n), 'A');
    const u = s.UNMAP(0x10000n, 0x1000n);
    expect([u.ret, u.size]).toEqual([0, 0x4000n]);
    expect(s.dmas()).toEqual([]);
    expect(s.proc.lockedVm).toBe(0n);
  });

  it('a request starting in a gap removes every dma that starts inside it', async () => {
    const s = await setup('I', { v1: true });
    must(s.MAP(0x10000n, 0x2000n), 'A');
    must(s.MAP(0x14000n, 0x1000n), 'B');
    const u = s.UNMAP(0xf000n, 0x2000n);
    expect([u.ret, u.size]).toEqual([0, 0x2000n]);
    expect(s.dmas()).toEqual([[0x14000n, 0x1000n]]);
  });

  it('the first dma ending after iova starts before it: nothing at all is removed', async () => {
    const s = await setup('I', { v1: true });
    must(s.MAP(0x10000n, 0x2000n), 'A');
    must(s.MAP(0x14000n, 0x1000n), 'B');
    const u = s.UNMAP(0x11000n, 0x10000n);
    expect([u.ret, u.size]).toEqual([0, 0n]);
    expect(s.dmas()).toEqual([[0x10000n, 0x2000n], [0x14000n, 0x1000n]]);
  });
});

describe('§3.4 / §5.3 what UNMAP copies back', () => {
  it('exactly 24 bytes on success: only size changes', async () => {
    const s = await setup('E');
    must(s.MAP(P(1), P(3)), 'MAP');
    const buf = dmaUnmap({ argsz: 40, flags: 0, iova: 0n, size: P(8), length: 40 });
    buf.fill(0xee, 24);
    expect(s.proc.ioctl(s.cfd, uapi.VFIO_IOMMU_UNMAP_DMA, buf)).toBe(0);
    const want = dmaUnmap({ argsz: 40, flags: 0, iova: 0n, size: P(3), length: 40 });
    want.fill(0xee, 24);
    expect(hex(buf)).toBe(hex(want));
  });

  it('with GET_DIRTY_BITMAP the vfio_bitmap header is not written back', async () => {
    const s = await setup('E');
    must(s.MAP(P(1), P(3)), 'MAP');
    must(s.START(), 'START');
    const r = s.UMB(0n, P(8), 8);
    expect(r.ret).toBe(0);
    const f = parseDmaUnmap(r.buf);
    expect([f.argsz, f.flags, f.iova, f.size]).toEqual([48, uapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, 0n, P(3)]);
    expect(f.bitmap?.pgsize).toBe(0x1000n);
    expect(f.bitmap?.size).toBe(8n);
  });
});

describe('§5.2 core check order', () => {
  it('VADDR with an emulated group is EBUSY before the alignment check', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(1)), 'MAP');
    unmapFails(s, errno.EBUSY, 0x800n, 0x1000n, uapi.VFIO_DMA_UNMAP_FLAG_VADDR);
  });

  it('GET_DIRTY_BITMAP bitmap checks come before the tracking check', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(1)), 'MAP');
    failsCleanly(s, errno.EFAULT, () =>
      s.proc.ioctl(s.cfd, uapi.VFIO_IOMMU_UNMAP_DMA, dmaUnmap({ flags: uapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, argsz: 48, iova: 0n, size: P(1), length: 40 })));
  });
});

describe('§5.8 accounting on unmap', () => {
  it('I: lockedVm and dma_avail come back exactly', async () => {
    const s = await setup('I');
    must(s.MAP(0n, P(5)), 'A');
    must(s.MAP(P(8), P(3)), 'B');
    expect(s.proc.lockedVm).toBe(8n);
    expect(s.UNMAP(0n, P(5)).size).toBe(P(5));
    expect(s.proc.lockedVm).toBe(3n);
    expect(s.container().dmaAvail).toBe(65534);
  });
});
