// docs/conformance.md §4 MAP_DMA: validation order and errno in both profiles, state created,
// RLIMIT_MEMLOCK and CAP_IPC_LOCK accounting, dma_entry_limit, mappings ending at 2^64; vectors
// V10-V14.
import { describe, expect, it } from 'vitest';
import { errno } from '../../src/errors.js';
import { uapi } from '../../src/uapi.js';
import { dmaMap } from '../helpers/uapi_structs.js';
import { failsCleanly, lastWordBeforeHole, must, P, RW_FLAGS, setup, TWO64, unmappedAddr, type Setup } from '../helpers/setups.js';

const TOP = 0xffff_ffff_ffff_f000n; // the last page of the IOVA space
const R = uapi.VFIO_DMA_MAP_FLAG_READ;
const W = uapi.VFIO_DMA_MAP_FLAG_WRITE;
const VA = uapi.VFIO_DMA_MAP_FLAG_VADDR;

/** MAP_DMA of raw fields (no vaddr bookkeeping). */
function rawMap(s: Setup, flags: number, iova: bigint, size: bigint, vaddr?: bigint, argsz?: number): number {
  return s.proc.ioctl(s.cfd, uapi.VFIO_IOMMU_MAP_DMA, dmaMap({ argsz, flags, iova, size, vaddr: vaddr ?? s.proc.mmap(0x1000) }));
}

describe('V10-V14 MAP vectors', () => {
  it('V10 alignment and size', async () => {
    const s = await setup('I');
    failsCleanly(s, errno.EINVAL, () => s.MAP(0x1800n, 0x1000n));
    failsCleanly(s, errno.EINVAL, () => s.MAP(0x1000n, 0x1800n));
    failsCleanly(s, errno.EINVAL, () => s.MAP(0x1000n, 0x1000n, RW_FLAGS, s.proc.mmap(0x2000) + 0x800n));
    failsCleanly(s, errno.EINVAL, () => s.MAP(0x1000n, 0n));
  });

  it.each([['linux-6.18', errno.EOVERFLOW], ['linux-6.6', errno.EINVAL]] as const)('V11 wrap (%s)', async (profile, wrapErr) => {
    const s = await setup('I', { profile });
    failsCleanly(s, wrapErr, () => s.MAP(TOP, 0x2000n));
    failsCleanly(s, errno.EINVAL, () => s.MAP(TOP, 0x1000n)); // passes the wrap check, fails the range check
  });

  it('V12 overlap', async () => {
    const s = await setup('I');
    expect(s.MAP(0x10000n, 0x4000n)).toBe(0);
    failsCleanly(s, errno.EEXIST, () => s.MAP(0x13000n, 0x1000n));
    failsCleanly(s, errno.EEXIST, () => s.MAP(0xf000n, 0x2000n));
    expect(s.MAP(0x14000n, 0x1000n)).toBe(0);
    expect(s.dmas()).toEqual([[0x10000n, 0x4000n], [0x14000n, 0x1000n]]);
    const u = s.UNMAP(0x10000n, 0x4000n);
    expect([u.ret, u.size]).toEqual([0, 0x4000n]);
    expect(s.dmas()).toEqual([[0x14000n, 0x1000n]]);
  });

  it('V14 reserved and boundary ranges', async () => {
    const s = await setup('I');
    failsCleanly(s, errno.EINVAL, () => s.MAP(0xfee00000n, 0x1000n));
    failsCleanly(s, errno.EINVAL, () => s.MAP(0xfedff000n, 0x2000n));
    expect(s.MAP(0xfedff000n, 0x1000n)).toBe(0);
    expect(s.MAP(0xfef00000n, 0x1000n)).toBe(0);
    expect(s.MAP(0xffff_ffff_f000n, 0x1000n)).toBe(0); // the last page of the aperture
    failsCleanly(s, errno.EINVAL, () => s.MAP(0x1_0000_0000_0000n, 0x1000n));
  });
});

describe.each([['linux-6.18', errno.EOVERFLOW], ['linux-6.6', errno.EINVAL]] as const)('§4.1 order of checks (%s)', (profile, wrapErr) => {
  it('a wrap beats prot = 0 in 6.18 only; the flag mask beats the wrap in both', async () => {
    const s = await setup('E', { profile });
    failsCleanly(s, wrapErr, () => rawMap(s, 0, TOP, 0x2000n));
    failsCleanly(s, errno.EINVAL, () => rawMap(s, RW_FLAGS | 0x8, TOP, 0x2000n));
    failsCleanly(s, errno.EINVAL, () => rawMap(s, RW_FLAGS, TOP, 0x2000n, undefined, 31));
    failsCleanly(s, errno.EINVAL, () => rawMap(s, 0, 0x1000n, 0n)); // size 0 and no prot
  });

  it('a vaddr wrap is the same errno as an iova wrap', async () => {
    const s = await setup('E', { profile });
    failsCleanly(s, wrapErr, () => rawMap(s, RW_FLAGS, 0x10000n, 0x2000n, TOP));
  });

  it('6.18 checks the wrap before alignment; 6.6 alignment first', async () => {
    const s = await setup('E', { profile });
    failsCleanly(s, wrapErr, () => rawMap(s, RW_FLAGS, 0xffff_ffff_ffff_f800n, 0x1000n));
    failsCleanly(s, errno.EINVAL, () => rawMap(s, RW_FLAGS, 0x800n, 0x1000n));
  });

  it('a wrap beats ENOENT for VADDR; misalignment too', async () => {
    const s = await setup('I', { profile });
    failsCleanly(s, wrapErr, () => rawMap(s, VA, TOP, 0x2000n));
    failsCleanly(s, errno.EINVAL, () => rawMap(s, VA, 0x10800n, 0x1000n));
    failsCleanly(s, errno.ENOENT, () => rawMap(s, VA, 0x10000n, 0x1000n));
  });

  it('a mapping whose last byte is 2^64-1 passes the wrap check (E has no range list)', async () => {
    const s = await setup('E', { profile });
    expect(s.MAP(TOP, 0x1000n)).toBe(0);
    expect(s.dmas()).toEqual([[TOP, 0x1000n]]);
  });

  it('EEXIST before ENOSPC before the IOVA-range check', async () => {
    const s = await setup('I', { profile, dmaEntryLimit: 1 });
    expect(s.MAP(0x10000n, 0x2000n)).toBe(0);
    failsCleanly(s, errno.EEXIST, () => s.MAP(0x11000n, 0x2000n));
    failsCleanly(s, errno.ENOSPC, () => s.MAP(0x20000n, 0x1000n));
    failsCleanly(s, errno.ENOSPC, () => s.MAP(0xfee00000n, 0x1000n)); // reserved, but ENOSPC first
  });
});

describe('mappings ending at 2^64 (linux-6.18, docs/conformance.md §4.1, §9-§10)', () => {
  it('MAP, GET_BITMAP, unmap with bitmap and UNMAP of the last pages all work', async () => {
    const s = await setup('E');
    const base = TWO64 - P(4);
    expect(s.MAP(base, P(4))).toBe(0);
    expect(s.START()).toBe(0);
    expect(s.RW('M', TWO64 - P(1), 8, true).ret).toBe(0);
    expect(s.GET(base, P(4), 8).hex).toBe('08 00 00 00 00 00 00 00');
    expect(s.RW('M', base, 8, true).ret).toBe(0);
    const u = s.UMB(base, P(4), 8);
    expect([u.ret, u.size, u.hex]).toEqual([0, P(4), '01 00 00 00 00 00 00 00']);
    expect(s.MAP(TOP, P(1))).toBe(0);
    const v = s.UNMAP(TWO64 - P(8), P(8));
    expect([v.ret, v.size]).toEqual([0, P(1)]);
    expect(s.dmas()).toEqual([]);
  });

  it('pinning the last page works', async () => {
    const s = await setup('E');
    must(s.MAP(TWO64 - P(2), P(2)), 'MAP');
    expect(s.PIN('M', TOP, 1)).toBe(1);
    expect(s.refs(TWO64 - P(2))).toEqual({ '0xfffffffffffff000': 1 });
  });

  it('UNMAP_ALL removes a mapping ending at 2^64', async () => {
    const s = await setup('E');
    must(s.MAP(TOP, P(1)), 'MAP');
    must(s.MAP(0n, P(1)), 'MAP');
    const u = s.UNMAP(0n, 0n, uapi.VFIO_DMA_UNMAP_FLAG_ALL);
    expect([u.ret, u.size]).toEqual([0, P(2)]);
  });
});

describe('§4.2 state created', () => {
  it('one vfio_dma per MAP with the requested fields; dma_avail drops by one', async () => {
    const s = await setup('I');
    const va = s.proc.mmap(P(2));
    expect(s.MAP(0x10000n, P(2), R, va)).toBe(0);
    expect(s.MAP(0x12000n, P(1), RW_FLAGS)).toBe(0);
    const c = s.container();
    expect(c.dmaAvail).toBe(65533);
    expect(c.dmas.map((d) => ({ iova: d.iova, size: d.size, prot: d.prot, iommuMapped: d.iommuMapped, vaddrInvalid: d.vaddrInvalid, lockCap: d.lockCap, pins: d.pins, bitmap: d.bitmap })))
      .toEqual([
        { iova: 0x10000n, size: P(2), prot: uapi.IOMMU_READ, iommuMapped: true, vaddrInvalid: false, lockCap: false, pins: [], bitmap: null },
        { iova: 0x12000n, size: P(1), prot: uapi.IOMMU_READ | uapi.IOMMU_WRITE, iommuMapped: true, vaddrInvalid: false, lockCap: false, pins: [], bitmap: null },
      ]);
    expect(c.dmas[0].vaddr).toBe(va);
  });

  it('in an emulated-only container MAP pins nothing: iommuMapped false, lockedVm 0', async () => {
    const s = await setup('E', { memlockLimit: 0n });
    expect(s.MAP(0n, P(100))).toBe(0);
    expect(s.container().dmas[0].iommuMapped).toBe(false);
    expect(s.proc.lockedVm).toBe(0n);
  });

  it('a write-only mapping is prot WRITE', async () => {
    const s = await setup('E');
    expect(s.MAP(0n, P(1), W)).toBe(0);
    expect(s.container().dmas[0].prot).toBe(uapi.IOMMU_WRITE);
  });
});

describe('§4.3 RLIMIT_MEMLOCK and CAP_IPC_LOCK', () => {
  const limit = P(16); // RLIMIT_MEMLOCK in bytes: 16 pages

  it('exactly the allowance succeeds; one more page is ENOMEM with lockedVm unchanged', async () => {
    const s = await setup('I', { memlockLimit: limit });
    expect(s.MAP(0n, P(10))).toBe(0);
    expect(s.proc.lockedVm).toBe(10n);
    expect(s.MAP(P(0x10), P(6))).toBe(0);
    expect(s.proc.lockedVm).toBe(16n);
    failsCleanly(s, errno.ENOMEM, () => s.MAP(P(0x20), P(1)));
    expect(s.proc.lockedVm).toBe(16n);
    expect(s.container().dmaAvail).toBe(65533);
  });

  it('a MAP over the allowance from zero fails whole', async () => {
    const s = await setup('I', { memlockLimit: limit });
    failsCleanly(s, errno.ENOMEM, () => s.MAP(0n, P(17)));
    expect(s.proc.lockedVm).toBe(0n);
    expect(s.MAP(0n, P(16))).toBe(0);
  });

  it('UNMAP uncharges, so the allowance can be used again', async () => {
    const s = await setup('I', { memlockLimit: limit });
    must(s.MAP(0n, P(10)), 'MAP');
    must(s.MAP(P(0x10), P(6)), 'MAP');
    expect(s.UNMAP(0n, P(10)).size).toBe(P(10));
    expect(s.proc.lockedVm).toBe(6n);
    expect(s.MAP(P(0x20), P(10))).toBe(0);
    expect(s.proc.lockedVm).toBe(16n);
  });

  it('CAP_IPC_LOCK lifts the limit; pages are still counted in locked_vm and lockCap recorded', async () => {
    const s = await setup('I', { memlockLimit: 0n, capIpcLock: true });
    expect(s.MAP(0n, P(100))).toBe(0);
    expect(s.proc.lockedVm).toBe(100n);
    expect(s.container().dmas[0].lockCap).toBe(true);
    s.UNMAP(0n, P(100));
    expect(s.proc.lockedVm).toBe(0n);
  });

  it('each mapping process is charged on its own locked_vm', async () => {
    const a = await setup('I');
    const pb = a.engine.createProcess({ memlockLimit: P(2) });
    const g2 = a.engine.createGroup({ kind: 'iommu', devices: ['0000:66:00.0'] });
    const cfd = must(pb.open('/dev/vfio/vfio'), 'open container B');
    const gfd = must(pb.open(`/dev/vfio/${g2.id}`), 'open group B');
    must(pb.ioctl(gfd, uapi.VFIO_GROUP_SET_CONTAINER, cfd), 'SET_CONTAINER B');
    must(pb.ioctl(cfd, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU), 'SET_IOMMU B');
    must(a.MAP(0n, P(4)), 'MAP A');
    const mapB = (size: bigint) => pb.ioctl(cfd, uapi.VFIO_IOMMU_MAP_DMA, dmaMap({ flags: RW_FLAGS, vaddr: pb.mmap(size), iova: 0n, size }));
    expect(mapB(P(3))).toBe(-errno.ENOMEM);
    expect(mapB(P(2))).toBe(0);
    expect([a.proc.lockedVm, pb.lockedVm]).toEqual([4n, 2n]);
  });

  it('an unmapped vaddr faults while pinning: EFAULT, nothing kept', async () => {
    const s = await setup('I');
    failsCleanly(s, errno.EFAULT, () => s.MAP(0n, P(1), RW_FLAGS, unmappedAddr(s.proc)));
    const edge = lastWordBeforeHole(s.proc) + 8n - 0x1000n; // one mapped page, then a hole
    failsCleanly(s, errno.EFAULT, () => s.MAP(0n, P(2), RW_FLAGS, edge));
    expect(s.proc.lockedVm).toBe(0n);
  });
});

describe('dma_entry_limit (docs/conformance.md §4.1)', () => {
  it('ENOSPC when dma_avail is 0; an UNMAP gives the entry back', async () => {
    const s = await setup('E', { dmaEntryLimit: 2 });
    expect(s.MAP(0n, P(1))).toBe(0);
    expect(s.MAP(P(1), P(1))).toBe(0);
    failsCleanly(s, errno.ENOSPC, () => s.MAP(P(2), P(1)));
    s.UNMAP(0n, P(1));
    expect(s.MAP(P(2), P(1))).toBe(0);
    expect(s.container().dmaAvail).toBe(0);
  });
});

describe('MAP while tracking (docs/conformance.md §4.1, §4.5)', () => {
  it('a dma of more than INT_MAX pages is EINVAL while tracking and is removed again', async () => {
    const s = await setup('E');
    must(s.START(), 'START');
    const va = s.proc.mmap(0x1000); // never touched: E does not pin at MAP
    failsCleanly(s, errno.EINVAL, () => s.MAP(0n, P(0x8000_0000n), RW_FLAGS, va));
    expect(s.container().dmaAvail).toBe(65535);
  });

  it('the same dma maps fine while tracking is off', async () => {
    const s = await setup('E');
    expect(s.MAP(0n, P(0x8000_0000n), RW_FLAGS, s.proc.mmap(0x1000))).toBe(0);
  });
});
