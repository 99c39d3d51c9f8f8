// docs/conformance.md §3 framing: ioctl numbers, extensions, SET_IOMMU gating, argsz rules (§3.4)
// and the framing vectors V1, V2, V7, V8, V9.
import { describe, expect, it } from 'vitest';
import { errno } from '../../src/errors.js';
import { uapi } from '../../src/uapi.js';
import { dirtyBitmap, dirtyBitmapGet, dmaMap, dmaUnmap, groupStatus, hex } from '../helpers/uapi_structs.js';
import { failsCleanly, must, P, RW_FLAGS, setup } from '../helpers/setups.js';

const { MAP_DMA, UNMAP_DMA, DIRTY } = {
  MAP_DMA: uapi.VFIO_IOMMU_MAP_DMA,
  UNMAP_DMA: uapi.VFIO_IOMMU_UNMAP_DMA,
  DIRTY: uapi.VFIO_IOMMU_DIRTY_PAGES,
};
const F = uapi;

describe('uAPI numbers (docs/conformance.md §3.1-§3.3)', () => {
  it('ioctl requests are _IO(";", 100 + n)', () => {
    expect([
      F.VFIO_GET_API_VERSION, F.VFIO_CHECK_EXTENSION, F.VFIO_SET_IOMMU, F.VFIO_GROUP_GET_STATUS,
      F.VFIO_GROUP_SET_CONTAINER, F.VFIO_GROUP_UNSET_CONTAINER, F.VFIO_GROUP_GET_DEVICE_FD,
      F.VFIO_DEVICE_GET_INFO, F.VFIO_IOMMU_GET_INFO, F.VFIO_IOMMU_MAP_DMA, F.VFIO_IOMMU_UNMAP_DMA,
      F.VFIO_IOMMU_ENABLE, F.VFIO_IOMMU_DISABLE, F.VFIO_IOMMU_DIRTY_PAGES,
    ]).toEqual([0x3b64, 0x3b65, 0x3b66, 0x3b67, 0x3b68, 0x3b69, 0x3b6a, 0x3b6b, 0x3b70, 0x3b71, 0x3b72, 0x3b73, 0x3b74, 0x3b75]);
    expect(F.VFIO_API_VERSION).toBe(0);
  });

  it('types, extensions, flags and capability ids carry the kernel values', () => {
    expect([F.VFIO_TYPE1_IOMMU, F.VFIO_SPAPR_TCE_IOMMU, F.VFIO_TYPE1v2_IOMMU, F.VFIO_DMA_CC_IOMMU, F.VFIO_EEH,
      F.VFIO_TYPE1_NESTING_IOMMU, F.VFIO_SPAPR_TCE_v2_IOMMU, F.VFIO_NOIOMMU_IOMMU, F.VFIO_UNMAP_ALL, F.VFIO_UPDATE_VADDR])
      .toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect([F.VFIO_IOMMU_INFO_PGSIZES, F.VFIO_IOMMU_INFO_CAPS]).toEqual([1, 2]);
    expect([F.VFIO_DMA_MAP_FLAG_READ, F.VFIO_DMA_MAP_FLAG_WRITE, F.VFIO_DMA_MAP_FLAG_VADDR]).toEqual([1, 2, 4]);
    expect([F.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, F.VFIO_DMA_UNMAP_FLAG_ALL, F.VFIO_DMA_UNMAP_FLAG_VADDR]).toEqual([1, 2, 4]);
    expect([F.VFIO_IOMMU_DIRTY_PAGES_FLAG_START, F.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP, F.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP]).toEqual([1, 2, 4]);
    expect([F.VFIO_GROUP_FLAGS_VIABLE, F.VFIO_GROUP_FLAGS_CONTAINER_SET]).toEqual([1, 2]);
    expect([F.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, F.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, F.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL]).toEqual([1, 2, 3]);
    expect([F.IOMMU_READ, F.IOMMU_WRITE]).toEqual([1, 2]);
    expect([F.DMA_MAP_SIZE, F.DMA_UNMAP_SIZE, F.DIRTY_BITMAP_SIZE, F.DIRTY_BITMAP_GET_SIZE, F.IOMMU_INFO_SIZE]).toEqual([32, 24, 8, 48, 24]);
    expect(F.DIRTY_BITMAP_SIZE_MAX).toBe(0x10000000n);
    expect(F.VFIO_PIN_PAGES_MAX_ENTRIES).toBe(512);
  });

  it('the package entry exports createEngine, uapi and errno', async () => {
    const api = await import('../../src/index.js');
    expect(typeof api.createEngine).toBe('function');
    for (const [k, v] of Object.entries(uapi)) {
      if (k in api.uapi) expect((api.uapi as Record<string, unknown>)[k], k).toBe(v);
    }
    for (const k of ['VFIO_IOMMU_MAP_DMA', 'VFIO_TYPE1v2_IOMMU', 'VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP',
      'VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP', 'VFIO_GROUP_FLAGS_VIABLE', 'VFIO_IOMMU_INFO_CAPS',
      'VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL', 'IOMMU_READ', 'IOMMU_WRITE']) {
      expect(api.uapi, k).toHaveProperty(k);
    }
    expect({ ...api.errno }).toMatchObject({
      EPERM: 1, ENOENT: 2, E2BIG: 7, EBADF: 9, ENOMEM: 12, EACCES: 13, EFAULT: 14, EBUSY: 16, EEXIST: 17,
      ENODEV: 19, EINVAL: 22, ENOTTY: 25, ENOSPC: 28, EOVERFLOW: 75, EBADFD: 77,
    });
  });
});

describe('V1 extensions', () => {
  it('V1 extensions: a fresh container, then setups I, E and X', async () => {
    const s = await setup('none');
    expect(s.proc.ioctl(s.cfd, F.VFIO_GET_API_VERSION)).toBe(0);
    expect(s.ext(3)).toBe(1);
    expect(s.ext(9)).toBe(1);
    expect(s.ext(2)).toBe(0);
    const i = await setup('I');
    expect(i.ext(10)).toBe(1);
    expect(i.ext(6)).toBe(0);
    expect((await setup('E')).ext(10)).toBe(0);
    expect((await setup('X')).ext(10)).toBe(0);
  });

  it('every extension answer before SET_IOMMU (docs/conformance.md §3.2: no iommu data)', async () => {
    const s = await setup('none');
    // 4 (DMA_CC) and 10 (UPDATE_VADDR) answer 0 without iommu data; 6 is not supported (docs/conformance.md §9-§10).
    expect([1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((n) => s.ext(n))).toEqual([1, 0, 1, 0, 0, 0, 0, 0, 1, 0]);
  });

  it('extension answers after SET_IOMMU in E: DMA_CC is 1 with no IOMMU domain', async () => {
    const s = await setup('E');
    expect([1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((n) => s.ext(n))).toEqual([1, 0, 1, 1, 0, 0, 0, 0, 1, 0]);
  });

  it('UPDATE_VADDR answers 0 while an emulated group is attached, 1 again after it leaves', async () => {
    const s = await setup('I');
    expect(s.ext(10)).toBe(1);
    s.createGroup('M', 'emulated', { devices: ['mdev-m0'] });
    must(s.attach('M'), 'attach M');
    expect(s.ext(10)).toBe(0);
    expect(s.proc.ioctl(s.gfds.M, F.VFIO_GROUP_UNSET_CONTAINER)).toBe(0);
    expect(s.ext(10)).toBe(1);
  });

  it('extension answers after SET_IOMMU in I (DMA_CC left out: coherency is not modelled)', async () => {
    const s = await setup('I');
    expect([1, 2, 3, 5, 6, 7, 8, 9, 10].map((n) => s.ext(n))).toEqual([1, 0, 1, 0, 0, 0, 0, 1, 1]);
  });
});

describe('V2 SET_IOMMU gating', () => {
  it('V2 SET_IOMMU gating', async () => {
    const s = await setup('none');
    expect(s.proc.ioctl(s.cfd, F.VFIO_SET_IOMMU, 3)).toBe(-errno.EINVAL);
    expect(s.MAP(0n, 0x1000n)).toBe(-errno.EINVAL);
    s.createGroup('G', 'iommu');
    expect(s.attach('G')).toBe(0);
    expect(s.proc.ioctl(s.gfds.G, F.VFIO_GROUP_GET_DEVICE_FD, s.dev.G.name)).toBe(-errno.EINVAL);
    expect(s.proc.ioctl(s.cfd, F.VFIO_SET_IOMMU, 2)).toBe(-errno.ENODEV);
    expect(s.proc.ioctl(s.cfd, F.VFIO_SET_IOMMU, 3)).toBe(0);
    expect(s.proc.ioctl(s.cfd, F.VFIO_SET_IOMMU, 3)).toBe(-errno.EINVAL);
    expect(s.proc.ioctl(s.gfds.G, F.VFIO_GROUP_GET_DEVICE_FD, s.dev.G.name)).toBeGreaterThanOrEqual(0);
  });

  it('SET_IOMMU(9) is EINVAL although CHECK_EXTENSION(9) is 1; types no driver takes are ENODEV (docs/conformance.md §2.4)', async () => {
    const s = await setup('none');
    s.createGroup('G', 'iommu');
    must(s.attach('G'), 'attach');
    expect(s.proc.ioctl(s.cfd, F.VFIO_SET_IOMMU, 9)).toBe(-errno.EINVAL);
    for (const t of [2, 6, 7, 8]) expect(s.proc.ioctl(s.cfd, F.VFIO_SET_IOMMU, t), `type ${t}`).toBe(-errno.ENODEV);
    expect(s.container().iommu).toBe(null);
    expect(s.proc.ioctl(s.cfd, F.VFIO_SET_IOMMU, 1)).toBe(0);
    expect(s.container().iommu).toBe('type1');
  });

  it('container ioctls other than API_VERSION/CHECK_EXTENSION/SET_IOMMU are EINVAL with no driver', async () => {
    const s = await setup('none');
    s.createGroup('G', 'iommu');
    must(s.attach('G'), 'attach');
    for (const req of [F.VFIO_IOMMU_GET_INFO, F.VFIO_IOMMU_ENABLE, F.VFIO_IOMMU_DISABLE, 0x3b7f]) {
      expect(s.proc.ioctl(s.cfd, req, new Uint8Array(64)), `0x${req.toString(16)}`).toBe(-errno.EINVAL);
    }
    expect(s.MAP(0n, 0x1000n)).toBe(-errno.EINVAL);
    expect(s.UNMAP(0n, 0x1000n).ret).toBe(-errno.EINVAL);
    expect(s.START()).toBe(-errno.EINVAL);
  });

  it('type1 answers ENOTTY to any other container ioctl once set (ENABLE/DISABLE are sPAPR only)', async () => {
    const s = await setup('I');
    for (const req of [F.VFIO_IOMMU_ENABLE, F.VFIO_IOMMU_DISABLE, F.VFIO_GROUP_GET_STATUS, 0x3b7f]) {
      expect(s.proc.ioctl(s.cfd, req, new Uint8Array(64)), `0x${req.toString(16)}`).toBe(-errno.ENOTTY);
    }
  });

  it('a device fd answers ENOTTY to ioctls the engine does not implement (docs/conformance.md §2.5)', async () => {
    const s = await setup('E');
    const dfd = s.devFds[s.dev.M.name];
    expect(s.proc.ioctl(dfd, F.VFIO_IOMMU_MAP_DMA, dmaMap({ flags: RW_FLAGS, vaddr: s.proc.mmap(0x1000), iova: 0n, size: 0x1000n }))).toBe(-errno.ENOTTY);
    expect(s.dmas()).toEqual([]);
  });

  it('an ioctl or close on an fd that is not open is EBADF', async () => {
    const s = await setup('none');
    expect(s.proc.ioctl(999, F.VFIO_GET_API_VERSION)).toBe(-errno.EBADF);
    expect(s.proc.close(999)).toBe(-errno.EBADF);
    expect(s.proc.close(s.cfd)).toBe(0);
    expect(s.proc.close(s.cfd)).toBe(-errno.EBADF);
    expect(s.proc.ioctl(s.cfd, F.VFIO_GET_API_VERSION)).toBe(-errno.EBADF);
  });
});

describe('V7 MAP framing (docs/conformance.md §3.4, §4.1)', () => {
  it('V7 MAP framing', async () => {
    const s = await setup('I');
    const vaddr = s.proc.mmap(0x1000);
    const map = (o: { argsz?: number; flags: number; length?: number }) => () =>
      s.proc.ioctl(s.cfd, MAP_DMA, dmaMap({ vaddr, iova: 0x10000n, size: 0x1000n, ...o }));
    failsCleanly(s, errno.EINVAL, map({ argsz: 31, flags: RW_FLAGS, length: 32 }));
    failsCleanly(s, errno.EINVAL, map({ flags: 0xb }));
    failsCleanly(s, errno.EINVAL, map({ flags: 0 }));
    failsCleanly(s, errno.EINVAL, map({ flags: F.VFIO_DMA_MAP_FLAG_READ | F.VFIO_DMA_MAP_FLAG_VADDR }));
  });

  it('fewer than 32 readable bytes is EFAULT, even with a small argsz', async () => {
    const s = await setup('I');
    const vaddr = s.proc.mmap(0x1000);
    failsCleanly(s, errno.EFAULT, () => s.proc.ioctl(s.cfd, MAP_DMA, dmaMap({ flags: RW_FLAGS, vaddr, iova: 0n, size: 0x1000n, length: 31 })));
    failsCleanly(s, errno.EFAULT, () => s.proc.ioctl(s.cfd, MAP_DMA, dmaMap({ argsz: 8, flags: RW_FLAGS, vaddr, iova: 0n, size: 0x1000n, length: 8 })));
  });

  it('extra bytes are ignored and nothing is written back', async () => {
    const s = await setup('I');
    const buf = dmaMap({ argsz: 40, flags: RW_FLAGS, vaddr: s.proc.mmap(0x1000), iova: 0x10000n, size: 0x1000n, length: 40 });
    buf.fill(0xee, 32);
    const before = hex(buf);
    expect(s.proc.ioctl(s.cfd, MAP_DMA, buf)).toBe(0);
    expect(hex(buf)).toBe(before);
    expect(s.dmas()).toEqual([[0x10000n, 0x1000n]]);
  });
});

describe('V8 UNMAP framing (docs/conformance.md §3.4, §5.1)', () => {
  it('V8 UNMAP framing', async () => {
    const s = await setup('I');
    must(s.MAP(0x10000n, 0x1000n), 'MAP');
    const data = s.userBitmap(8);
    const bm = { pgsize: 0x1000n, size: 8n, data };
    const un = (o: { flags: number; argsz?: number; bitmap?: typeof bm }) => () => {
      const buf = dmaUnmap({ iova: 0x10000n, size: 0x1000n, ...o });
      const before = hex(buf);
      const ret = s.proc.ioctl(s.cfd, UNMAP_DMA, buf);
      expect(hex(buf)).toBe(before); // nothing copied back on failure
      return ret;
    };
    const GDB = F.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
    failsCleanly(s, errno.EINVAL, un({ flags: 0x8 }));
    failsCleanly(s, errno.EINVAL, un({ flags: GDB | F.VFIO_DMA_UNMAP_FLAG_ALL, bitmap: bm }));
    failsCleanly(s, errno.EINVAL, un({ flags: GDB | F.VFIO_DMA_UNMAP_FLAG_VADDR, bitmap: bm }));
    failsCleanly(s, errno.EINVAL, un({ flags: GDB, bitmap: bm })); // tracking off
    expect(s.START()).toBe(0);
    failsCleanly(s, errno.EINVAL, un({ flags: GDB, argsz: 47, bitmap: bm }));
    failsCleanly(s, errno.EINVAL, un({ flags: GDB, bitmap: { ...bm, pgsize: 0x2000n } }));
    expect(s.UMB(0x10000n, 0x1000n, 8).ret).toBe(0);
  });

  it('24 unreadable bytes, or a GET_DIRTY_BITMAP vfio_bitmap that is not there, is EFAULT', async () => {
    const s = await setup('I');
    must(s.MAP(0x10000n, 0x1000n), 'MAP');
    must(s.START(), 'START');
    const GDB = F.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
    failsCleanly(s, errno.EFAULT, () => s.proc.ioctl(s.cfd, UNMAP_DMA, dmaUnmap({ flags: 0, iova: 0x10000n, size: 0x1000n, length: 23 })));
    failsCleanly(s, errno.EFAULT, () => s.proc.ioctl(s.cfd, UNMAP_DMA, dmaUnmap({ flags: GDB, argsz: 48, iova: 0x10000n, size: 0x1000n, length: 24 })));
    failsCleanly(s, errno.EINVAL, () => s.proc.ioctl(s.cfd, UNMAP_DMA, dmaUnmap({ flags: 0, argsz: 23, iova: 0x10000n, size: 0x1000n })));
  });

  it('GET_DIRTY_BITMAP rejects pgsize 0, bitmap.size 0, > 0x10000000, too small, and a range past the user top', async () => {
    const s = await setup('I');
    must(s.MAP(0x10000n, P(70)), 'MAP');
    must(s.START(), 'START');
    const GDB = F.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
    const data = s.userBitmap(16);
    const un = (bitmap: { pgsize: bigint; size: bigint; data: bigint }) => () =>
      s.proc.ioctl(s.cfd, UNMAP_DMA, dmaUnmap({ flags: GDB, iova: 0x10000n, size: P(70), bitmap }));
    failsCleanly(s, errno.EINVAL, un({ pgsize: 0n, size: 16n, data })); // ctz(0) is undefined: EINVAL
    failsCleanly(s, errno.EINVAL, un({ pgsize: 0x1000n, size: 0n, data }));
    failsCleanly(s, errno.EINVAL, un({ pgsize: 0x1000n, size: 0x10000008n, data }));
    failsCleanly(s, errno.EINVAL, un({ pgsize: 0x1000n, size: 8n, data })); // 70 pages need 16 bytes
    failsCleanly(s, errno.EINVAL, un({ pgsize: 0x1000n, size: 16n, data: uapi.TASK_SIZE_MAX - 8n }));
  });
});

describe('V9 DIRTY_PAGES framing (docs/conformance.md §3.4, §7.1)', () => {
  it('V9 DIRTY_PAGES framing', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(4)), 'MAP');
    const D = { START: F.VFIO_IOMMU_DIRTY_PAGES_FLAG_START, STOP: F.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP, GET: F.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP };
    failsCleanly(s, errno.EINVAL, () => s.dirty(D.START, 7));
    failsCleanly(s, errno.EINVAL, () => s.dirty(0));
    failsCleanly(s, errno.EINVAL, () => s.dirty(D.START | D.STOP));
    failsCleanly(s, errno.EINVAL, () => s.dirty(D.START | D.GET));
    failsCleanly(s, errno.EINVAL, () => s.dirty(0x8));
    failsCleanly(s, errno.EINVAL, () =>
      s.proc.ioctl(s.cfd, DIRTY, dirtyBitmapGet({ argsz: 47, iova: 0n, size: P(4), bitmap: { pgsize: 0x1000n, size: 8n, data: s.userBitmap(8) } })));
    expect(s.STOP()).toBe(0); // STOP while off
    expect(s.container().tracking).toBe(false);
    const v1 = await setup('E', { v1: true });
    failsCleanly(v1, errno.EACCES, () => v1.START());
    // The whole ioctl requires a v2 container, STOP and GET_BITMAP included.
    failsCleanly(v1, errno.EACCES, () => v1.STOP());
    must(v1.MAP(0n, P(4)), 'MAP v1');
    failsCleanly(v1, errno.EACCES, () => v1.GET(0n, P(4), 8).ret);
  });

  it('an unreadable header is EFAULT; a GET_BITMAP body that is not there is EFAULT', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(4)), 'MAP');
    must(s.START(), 'START');
    failsCleanly(s, errno.EFAULT, () => s.proc.ioctl(s.cfd, DIRTY, dirtyBitmap({ flags: F.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP, length: 7 })));
    const get = (argsz: number) => () =>
      s.proc.ioctl(s.cfd, DIRTY, dirtyBitmapGet({ argsz, length: 8, iova: 0n, size: P(4), bitmap: { pgsize: 0x1000n, size: 8n, data: 0n } }));
    failsCleanly(s, errno.EINVAL, get(47)); // argsz is checked before the body is copied
    failsCleanly(s, errno.EFAULT, get(48));
  });
});

describe('GROUP_GET_STATUS argsz (docs/conformance.md §3.4)', () => {
  it('argsz < 8 is EINVAL, a short buffer EFAULT; 8 bytes are written', async () => {
    const s = await setup('none');
    const g = s.engine.createGroup({ kind: 'iommu' });
    const gfd = must(s.proc.open(`/dev/vfio/${g.id}`), 'open');
    expect(s.proc.ioctl(gfd, F.VFIO_GROUP_GET_STATUS, groupStatus(7))).toBe(-errno.EINVAL);
    expect(s.proc.ioctl(gfd, F.VFIO_GROUP_GET_STATUS, groupStatus(8, { length: 7 }))).toBe(-errno.EFAULT);
    const b = groupStatus(16, { fill: 0xee });
    expect(s.proc.ioctl(gfd, F.VFIO_GROUP_GET_STATUS, b)).toBe(0);
    expect(hex(b)).toBe('10 00 00 00 01 00 00 00 ee ee ee ee ee ee ee ee');
  });
});
