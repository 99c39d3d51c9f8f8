// docs/conformance.md §6.1-§6.4 and §9-§10: vfio_pin_pages / vfio_unpin_pages: the check order,
// E2BIG, EACCES in v1, EPERM on prot, unaligned iova, refcounts, accounting, unwind; V27-V29, V32,
// V33.
import { describe, expect, it } from 'vitest';
import { errno } from '../../src/errors.js';
import { uapi } from '../../src/uapi.js';
import { failsCleanly, must, P, setup } from '../helpers/setups.js';

const { IOMMU_READ: RD, IOMMU_WRITE: WR } = uapi;
const TOP = 0xffff_ffff_ffff_f000n;

describe('V27-V33 pinning vectors', () => {
  it('V27 basic pin', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(8)), 'MAP');
    expect(s.PIN('M', P(2), 2)).toBe(2);
    expect(s.PIN('M', P(2), 1, RD | WR)).toBe(1);
    expect(s.refs(0n)).toEqual({ '0x2000': 2, '0x3000': 1 });
    expect(s.proc.lockedVm).toBe(2n);
    s.UNPIN('M', P(2), 2);
    expect(s.refs(0n)).toEqual({ '0x2000': 1 });
    expect(s.proc.lockedVm).toBe(1n);
  });

  it('V28 limits', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(512)), 'MAP');
    failsCleanly(s, errno.E2BIG, () => s.PIN('M', 0n, 513));
    failsCleanly(s, errno.EINVAL, () => s.PIN('M', 0n, 0));
    expect(s.PIN('M', 0n, 512)).toBe(512);
    expect(s.proc.lockedVm).toBe(512n);
    expect(Object.keys(s.refs(0n)).length).toBe(512);
  });

  it('V29 preconditions: a v1 container is EACCES', async () => {
    const s = await setup('E', { v1: true });
    must(s.MAP(0n, P(4)), 'MAP');
    failsCleanly(s, errno.EACCES, () => s.PIN('M', 0n, 1));
  });

  it('V29 preconditions: no device registered dma_unmap is EINVAL', async () => {
    const s = await setup('E', { register: false });
    must(s.MAP(0n, P(4)), 'MAP');
    failsCleanly(s, errno.EINVAL, () => s.PIN('M', 0n, 1));
    s.register('M');
    expect(s.PIN('M', 0n, 1)).toBe(1);
  });

  it('V32 unpin that does nothing', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(4)), 'MAP');
    must(s.PIN('M', 0n, 1), 'PIN');
    const before = s.state();
    s.UNPIN('M', P(1), 1);
    expect(s.state()).toEqual(before);
    s.UNPIN('M', P(100), 1);
    expect(s.state()).toEqual(before);
    s.dev.M.unpinPages(0n, 0);
    s.dev.M.unpinPages(0n, -1);
    s.dev.M.unpinPages(0n, 513);
    expect(s.state()).toEqual(before);
  });

  it('V33 singleton rule: a pinning device whose group holds two devices is EINVAL, not promoted', async () => {
    const s = await setup('X', { g: { devices: ['0000:65:00.0', '0000:65:00.1'] } });
    must(s.MAP(0n, P(4)), 'MAP');
    expect(s.container().nonPinnedGroups).toBe(1);
    failsCleanly(s, errno.EINVAL, () => s.PIN('G', 0n, 1));
    expect(s.container().nonPinnedGroups).toBe(1);
  });

  it('V33 singleton rule holds for an emulated group with two devices too', async () => {
    const s = await setup('E', { m: { devices: ['mdev-a', 'mdev-b'] } });
    must(s.MAP(0n, P(4)), 'MAP');
    failsCleanly(s, errno.EINVAL, () => s.PIN('M', 0n, 1));
  });
});

describe('§6.1: pin check order', () => {
  it('npage 0 is EINVAL before anything (v1, device closed, no op)', async () => {
    const s = await setup('E', { v1: true, register: false, openDevices: false });
    failsCleanly(s, errno.EINVAL, () => s.PIN('M', 0n, 0));
    failsCleanly(s, errno.EINVAL, () => s.PIN('M', 0n, -1));
  });

  it('npage > 512 is E2BIG before the device checks', async () => {
    const s = await setup('E', { v1: true, register: false, openDevices: false });
    failsCleanly(s, errno.E2BIG, () => s.PIN('M', 0n, 513));
  });

  it('a device that is not open, or has no op, is EINVAL before EACCES', async () => {
    const closed = await setup('E', { v1: true, openDevices: false });
    failsCleanly(closed, errno.EINVAL, () => closed.PIN('M', 0n, 1));
    const noOp = await setup('E', { v1: true, register: false });
    failsCleanly(noOp, errno.EINVAL, () => noOp.PIN('M', 0n, 1));
  });

  it('a multi-device group is EINVAL before EACCES', async () => {
    const s = await setup('E', { v1: true, m: { devices: ['mdev-a', 'mdev-b'] } });
    failsCleanly(s, errno.EINVAL, () => s.PIN('M', 0n, 1));
  });

  it('a v1 container is EACCES before the alignment check', async () => {
    const s = await setup('E', { v1: true });
    must(s.MAP(0n, P(4)), 'MAP');
    failsCleanly(s, errno.EACCES, () => s.PIN('M', 0x800n, 1));
  });

  it.each([['linux-6.18', errno.EOVERFLOW], ['linux-6.6', errno.EINVAL]] as const)('unaligned iova is EINVAL; then overflow (%s)', async (profile, overErr) => {
    const s = await setup('E', { profile });
    must(s.MAP(0n, P(4)), 'MAP');
    failsCleanly(s, errno.EINVAL, () => s.PIN('M', 0x800n, 1));
    failsCleanly(s, errno.EINVAL, () => s.PIN('M', 0xffff_ffff_ffff_f800n, 2));
    // 6.6 has no overflow check: the page past 2^64 is simply not in any dma (EINVAL).
    failsCleanly(s, overErr, () => s.PIN('M', TOP, 2));
  });

  it('overflow (6.18) and misalignment come before the vaddr-invalid EBUSY', async () => {
    const s = await setup('I');
    must(s.MAP(P(0x10), P(2)), 'MAP');
    must(s.UNMAP(P(0x10), P(2), uapi.VFIO_DMA_UNMAP_FLAG_VADDR).ret, 'invalidate');
    failsCleanly(s, errno.EOVERFLOW, () => s.PIN('G', TOP, 2));
    failsCleanly(s, errno.EINVAL, () => s.PIN('G', P(0x10) + 0x800n, 1));
    failsCleanly(s, errno.EBUSY, () => s.PIN('G', P(0x10), 1));
  });

  it('linux-6.6 has no overflow check: a pin past 2^64 with a vaddr invalid is EBUSY', async () => {
    const s = await setup('I', { profile: 'linux-6.6' });
    must(s.MAP(P(0x10), P(2)), 'MAP');
    must(s.UNMAP(P(0x10), P(2), uapi.VFIO_DMA_UNMAP_FLAG_VADDR).ret, 'invalidate');
    failsCleanly(s, errno.EBUSY, () => s.PIN('G', TOP, 2)); // the page past 2^64 is a per-page check
  });

  it('a device whose fd was closed cannot pin', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(4)), 'MAP');
    expect(s.proc.close(s.devFds[s.dev.M.name])).toBe(0);
    failsCleanly(s, errno.EINVAL, () => s.PIN('M', 0n, 1));
  });
});

describe('§6.2 per-page checks and unwind', () => {
  it('no dma contains the page: EINVAL', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(4)), 'MAP');
    failsCleanly(s, errno.EINVAL, () => s.PIN('M', P(4), 1));
  });

  it('prot must be within the dma prot: EPERM', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(2), uapi.VFIO_DMA_MAP_FLAG_READ), 'MAP R');
    must(s.MAP(P(2), P(2), uapi.VFIO_DMA_MAP_FLAG_WRITE), 'MAP W');
    failsCleanly(s, errno.EPERM, () => s.PIN('M', 0n, 1, WR));
    failsCleanly(s, errno.EPERM, () => s.PIN('M', 0n, 1, RD | WR));
    failsCleanly(s, errno.EPERM, () => s.PIN('M', P(2), 1, RD));
    expect(s.PIN('M', 0n, 1, RD)).toBe(1);
    expect(s.PIN('M', P(2), 1, WR)).toBe(1);
  });

  it('a failure at page i unwinds pages 0..i-1: refcounts and lockedVm as before', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(4)), 'MAP');
    must(s.PIN('M', P(2), 1), 'PIN');
    failsCleanly(s, errno.EINVAL, () => s.PIN('M', P(1), 4)); // pages 1,2,3 then 4 (no dma)
    expect(s.refs(0n)).toEqual({ '0x2000': 1 });
    expect(s.proc.lockedVm).toBe(1n);
  });

  it('an EPERM on the second dma unwinds the first', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(2)), 'A');
    must(s.MAP(P(2), P(2), uapi.VFIO_DMA_MAP_FLAG_READ), 'B');
    failsCleanly(s, errno.EPERM, () => s.PIN('M', 0n, 4, WR));
  });

  it('one call may span adjacent dmas; each pin stays with its own dma', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(2)), 'A');
    must(s.MAP(P(2), P(2)), 'B');
    expect(s.PIN('M', P(1), 2)).toBe(2);
    expect(s.refs(0n)).toEqual({ '0x1000': 1 });
    expect(s.refs(P(2))).toEqual({ '0x2000': 1 });
  });
});

describe('§6.2 / §4.3 accounting of external pins', () => {
  it('E charges each new page once against RLIMIT_MEMLOCK; over the limit is ENOMEM and unwound', async () => {
    const s = await setup('E', { memlockLimit: P(2) });
    must(s.MAP(0n, P(4)), 'MAP');
    failsCleanly(s, errno.ENOMEM, () => s.PIN('M', 0n, 3));
    expect(s.PIN('M', 0n, 2)).toBe(2);
    expect(s.PIN('M', 0n, 1)).toBe(1); // already pinned: no new charge
    expect(s.proc.lockedVm).toBe(2n);
    failsCleanly(s, errno.ENOMEM, () => s.PIN('M', P(2), 1));
  });

  it('CAP_IPC_LOCK recorded at MAP time lifts the limit', async () => {
    const s = await setup('E', { memlockLimit: 0n, capIpcLock: true });
    must(s.MAP(0n, P(4)), 'MAP');
    expect(s.PIN('M', 0n, 4)).toBe(4);
    expect(s.proc.lockedVm).toBe(4n);
  });

  it('X: pinning does not charge (MAP already did); UNMAP uncharges everything', async () => {
    const s = await setup('X');
    must(s.MAP(0n, P(4)), 'MAP');
    expect(s.proc.lockedVm).toBe(4n);
    expect(s.PIN('M', 0n, 2)).toBe(2);
    expect(s.proc.lockedVm).toBe(4n);
    s.UNPIN('M', 0n, 1);
    expect(s.proc.lockedVm).toBe(4n);
    expect(s.UNMAP(0n, P(4)).size).toBe(P(4));
    expect(s.proc.lockedVm).toBe(0n);
  });

  it('X: pinning checks no allowance (do_accounting is false with a domain)', async () => {
    const s = await setup('X', { memlockLimit: P(4) });
    must(s.MAP(0n, P(4)), 'MAP');
    expect(s.PIN('M', 0n, 4)).toBe(4);
    expect(s.proc.lockedVm).toBe(4n);
  });

  it('X: pins from two devices on one page share its refcount', async () => {
    const s = await setup('X');
    must(s.MAP(0n, P(4)), 'MAP');
    expect(s.PIN('M', 0n, 1)).toBe(1);
    expect(s.PIN('G', 0n, 1)).toBe(1);
    expect(s.refs(0n)).toEqual({ '0x0': 2 });
    s.UNPIN('M', 0n, 1);
    expect(s.refs(0n)).toEqual({ '0x0': 1 });
  });
});

describe('§6.4 unpin', () => {
  it('stops at the first page no dma contains', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(2)), 'A');
    must(s.MAP(P(3), P(1)), 'C');
    must(s.PIN('M', P(1), 1), 'PIN 1');
    must(s.PIN('M', P(3), 1), 'PIN 3');
    s.UNPIN('M', P(1), 3); // P(1) released, P(2) in no dma: stop, P(3) stays
    expect(s.refs(0n)).toEqual({});
    expect(s.refs(P(3))).toEqual({ '0x3000': 1 });
    expect(s.proc.lockedVm).toBe(1n);
  });

  it('is ignored for a device that is not open', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(2)), 'MAP');
    must(s.PIN('M', 0n, 1), 'PIN');
    must(s.proc.close(s.devFds[s.dev.M.name]), 'close device');
    const before = s.state();
    s.dev.M.unpinPages(0n, 1);
    expect(s.state()).toEqual(before);
  });
});
