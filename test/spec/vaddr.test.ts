// docs/conformance.md §4.4 and §5.7: vaddr invalidation (UNMAP + VADDR) and update (MAP + VADDR),
// the restore on an already-invalid dma, and the EBUSY cases; vectors V23, V25, V31.
import { describe, expect, it } from 'vitest';
import { errno } from '../../src/errors.js';
import { uapi } from '../../src/uapi.js';
import { groupStatus, u32 } from '../helpers/uapi_structs.js';
import { failsCleanly, must, P, setup } from '../helpers/setups.js';

const VA = uapi.VFIO_DMA_MAP_FLAG_VADDR;
const UVA = uapi.VFIO_DMA_UNMAP_FLAG_VADDR;
const R = uapi.VFIO_DMA_MAP_FLAG_READ;

describe('V23 VADDR', () => {
  it('V23 VADDR', async () => {
    const s = await setup('I');
    const v1 = s.proc.mmap(0x2000);
    const v2 = s.proc.mmap(0x2000);
    must(s.MAP(0x10000n, 0x2000n, R | uapi.VFIO_DMA_MAP_FLAG_WRITE, v1), 'MAP');
    expect(s.proc.lockedVm).toBe(2n);
    // 1.
    let u = s.UNMAP(0x10000n, 0x2000n, UVA);
    expect([u.ret, u.size]).toEqual([0, 0x2000n]);
    expect(s.container().vaddrInvalidCount).toBe(1);
    expect(s.container().dmas[0].vaddrInvalid).toBe(true);
    expect(s.proc.lockedVm).toBe(2n); // pins and IOMMU mappings stay
    // 2.
    s.createGroup('G2', 'iommu', { devices: ['0000:66:00.0'] });
    failsCleanly(s, errno.EBUSY, () => s.attach('G2'));
    // 3.-5.
    failsCleanly(s, errno.EINVAL, () => s.MAP(0x10000n, 0x1000n, VA, v2));
    failsCleanly(s, errno.ENOENT, () => s.MAP(0x30000n, 0x1000n, VA, v2));
    failsCleanly(s, errno.EINVAL, () => s.MAP(0x10000n, 0x2000n, R | VA, v2));
    // 6.
    expect(s.MAP(0x10000n, 0x2000n, VA, v2)).toBe(0);
    const d = s.container().dmas[0];
    expect([d.vaddr, d.vaddrInvalid, d.prot]).toEqual([v2, false, uapi.IOMMU_READ | uapi.IOMMU_WRITE]);
    expect(s.container().vaddrInvalidCount).toBe(0);
    expect(s.proc.lockedVm).toBe(2n); // nothing re-pinned
    // 7.
    failsCleanly(s, errno.EINVAL, () => s.MAP(0x10000n, 0x2000n, VA, v2));
    // 8.
    u = s.UNMAP(0x10000n, 0x2000n);
    expect([u.ret, u.size]).toEqual([0, 0x2000n]);
    expect(s.proc.lockedVm).toBe(0n);
  });

  it('after the update dmaRw reaches the new vaddr', async () => {
    const s = await setup('I');
    const v2 = s.proc.mmap(0x1000);
    must(s.MAP(0x10000n, 0x1000n), 'MAP');
    must(s.UNMAP(0x10000n, 0x1000n, UVA).ret, 'invalidate');
    must(s.MAP(0x10000n, 0x1000n, VA, v2), 'update');
    s.proc.write(v2 + 0x10n, Uint8Array.of(1, 2, 3, 4));
    const r = s.RW('G', 0x10010n, 4, false);
    expect(r.ret).toBe(0);
    expect([...r.data]).toEqual([1, 2, 3, 4]);
  });

  it('an update works with dma_avail at 0', async () => {
    const s = await setup('I', { dmaEntryLimit: 1 });
    must(s.MAP(0x10000n, 0x1000n), 'MAP');
    must(s.UNMAP(0x10000n, 0x1000n, UVA).ret, 'invalidate');
    expect(s.MAP(0x10000n, 0x1000n, VA, s.proc.mmap(0x1000))).toBe(0);
  });

  it('v2 bisection applies to VADDR invalidation', async () => {
    const s = await setup('I');
    must(s.MAP(0x10000n, 0x2000n), 'MAP');
    failsCleanly(s, errno.EINVAL, () => s.UNMAP(0x11000n, 0x1000n, UVA).ret);
  });
});

describe('§5.7 VADDR invalidation', () => {
  it('reaching an already-invalid dma restores those invalidated in this call, EINVAL and size 0', async () => {
    const s = await setup('I');
    must(s.MAP(P(0x10), P(1)), 'A');
    must(s.MAP(P(0x11), P(1)), 'B');
    must(s.MAP(P(0x12), P(1)), 'C');
    must(s.MAP(P(0x13), P(1)), 'D');
    must(s.UNMAP(P(0x12), P(1), UVA).ret, 'invalidate C');
    failsCleanly(s, errno.EINVAL, () => {
      const r = s.UNMAP(P(0x10), P(4), UVA);
      expect(r.size).toBe(P(4)); // reports size 0: nothing is copied back
      return r.ret;
    });
    expect(s.container().dmas.map((d) => d.vaddrInvalid)).toEqual([false, false, true, false]);
    expect(s.container().vaddrInvalidCount).toBe(1);
  });

  it('UNMAP_ALL with VADDR invalidates every dma; a plain UNMAP of an invalid dma drops the count', async () => {
    const s = await setup('I');
    must(s.MAP(P(0x10), P(2)), 'A');
    must(s.MAP(P(0x20), P(1)), 'B');
    const u = s.UNMAP(0n, 0n, uapi.VFIO_DMA_UNMAP_FLAG_ALL | UVA);
    expect([u.ret, u.size]).toEqual([0, P(3)]);
    expect(s.container().vaddrInvalidCount).toBe(2);
    expect(s.dmas()).toEqual([[P(0x10), P(2)], [P(0x20), P(1)]]);
    expect(s.UNMAP(P(0x10), P(2)).size).toBe(P(2));
    expect(s.container().vaddrInvalidCount).toBe(1);
    expect(s.UNMAP(P(0x20), P(1)).size).toBe(P(1));
    expect(s.container().vaddrInvalidCount).toBe(0);
    s.createGroup('G2', 'iommu', { devices: ['0000:66:00.0'] });
    expect(s.attach('G2')).toBe(0);
  });

  it('invalidating a dma with external pins notifies nobody and keeps the pins (I)', async () => {
    const s = await setup('I');
    must(s.MAP(P(0x10), P(2)), 'MAP');
    must(s.PIN('G', P(0x11), 1), 'PIN');
    const u = s.UNMAP(P(0x10), P(2), UVA);
    expect([u.ret, u.size]).toEqual([0, P(2)]);
    expect(s.unmapCalls).toEqual([]);
    expect(s.refs(P(0x10))).toEqual({ '0x11000': 1 });
    expect(s.proc.lockedVm).toBe(2n);
  });

  it('while a vaddr is invalid, pinning and dmaRw are EBUSY (v6.2+); after the update they work', async () => {
    const s = await setup('I');
    must(s.MAP(P(0x10), P(2)), 'MAP');
    must(s.UNMAP(P(0x10), P(2), UVA).ret, 'invalidate');
    failsCleanly(s, errno.EBUSY, () => s.PIN('G', P(0x10), 1));
    failsCleanly(s, errno.EBUSY, () => s.PIN('G', P(0x40), 1)); // before the per-page checks
    failsCleanly(s, errno.EBUSY, () => s.RW('G', P(0x10), 8, false).ret);
    failsCleanly(s, errno.EBUSY, () => s.RW('G', P(0x10), 8, true).ret);
    must(s.MAP(P(0x10), P(2), VA, s.proc.mmap(P(2))), 'update');
    expect(s.PIN('G', P(0x10), 1)).toBe(1);
    expect(s.RW('G', P(0x10), 8, true).ret).toBe(0);
  });
});

describe('V25, V31 VADDR and emulated groups', () => {
  it.each(['E', 'X'] as const)('V25 VADDR with emulated groups (%s)', async (kind) => {
    const s = await setup(kind);
    must(s.MAP(P(0x10), P(2)), 'MAP');
    failsCleanly(s, errno.EBUSY, () => s.UNMAP(P(0x10), P(2), UVA).ret);
    failsCleanly(s, errno.EBUSY, () => s.UNMAP(0n, 0n, uapi.VFIO_DMA_UNMAP_FLAG_ALL | UVA).ret);
  });

  it('V31 vaddr invalid blocks emulated attach', async () => {
    const s = await setup('I');
    must(s.MAP(P(0x10), P(2)), 'MAP');
    must(s.UNMAP(P(0x10), P(2), UVA).ret, 'invalidate');
    s.createGroup('M', 'emulated', { devices: ['mdev-m0'] });
    failsCleanly(s, errno.EBUSY, () => s.attach('M'));
    const st = groupStatus();
    expect(s.proc.ioctl(s.gfds.M, uapi.VFIO_GROUP_GET_STATUS, st)).toBe(0);
    expect(u32(st, 4)).toBe(uapi.VFIO_GROUP_FLAGS_VIABLE); // not attached
    must(s.MAP(P(0x10), P(2), VA, s.proc.mmap(P(2))), 'update');
    expect(s.attach('M')).toBe(0);
  });
});
