// The typed API names the rule behind a MAP or UNMAP refusal, decided by the check that refused
// (src/vfio/dma_map.ts); the ioctl answers the same errno without words.
import { describe, expect, it } from 'vitest';
import { createEngine, errno, uapi, VfioError, type VfioContainer } from '../src/index.js';

async function container(o: { memlockLimit?: bigint } = {}): Promise<{ c: VfioContainer; ram: bigint }> {
  const engine = await createEngine();
  const g = engine.createGroup({ kind: 'iommu' });
  const proc = engine.createProcess(o);
  const c = engine.openContainer(proc);
  c.attach(g);
  c.setIommu('type1v2');
  return { c, ram: proc.mmap(1n << 24n) };
}

function refusal(f: () => unknown): [number, string] {
  try {
    f();
  } catch (e) {
    if (e instanceof VfioError) return [e.errno, e.message];
    throw e;
  }
  throw new Error('no error');
}

describe('MAP refusals name their rule', () => {
  it.each([
    ['size 0', { iova: 0n, size: 0n }, errno.EINVAL, 'map [0x0, +0x0): EINVAL (size is 0)'],
    ['unaligned iova', { iova: 0x800n, size: 0x1000n }, errno.EINVAL,
      'map [0x800, +0x1000): EINVAL (iova, vaddr and size must be multiples of the 4 KiB IOMMU page size)'],
    ['a reserved region', { iova: 0xfee0_0000n, size: 0x1000n }, errno.EINVAL,
      'map [0xfee00000, +0x1000): EINVAL (outside the IOMMU aperture or inside a reserved region)'],
  ])('%s', async (_name, r, e, msg) => {
    const { c, ram } = await container();
    expect(refusal(() => c.map({ vaddr: ram, ...r }))).toEqual([e, msg]);
  });

  it('an overlap names the mapping it hits', async () => {
    const { c, ram } = await container();
    c.map({ vaddr: ram, iova: 0x10000n, size: 0x4000n });
    expect(refusal(() => c.map({ vaddr: ram, iova: 0x12000n, size: 0x4000n }))).toEqual([
      errno.EEXIST, 'map [0x12000, +0x4000): EEXIST (overlaps the mapping [0x10000, 0x14000))',
    ]);
  });

  it('an unmapped vaddr page and RLIMIT_MEMLOCK', async () => {
    const { c, ram } = await container({ memlockLimit: 0x2000n });
    expect(refusal(() => c.map({ vaddr: ram + (1n << 24n) - 0x1000n, iova: 0n, size: 0x2000n }))).toEqual([
      errno.EFAULT, `map [0x0, +0x2000): EFAULT (vaddr page 0x${(ram + (1n << 24n)).toString(16)} is not mapped in the process)`,
    ]);
    expect(refusal(() => c.map({ vaddr: ram, iova: 0n, size: 0x4000n }))).toEqual([
      errno.ENOMEM, 'map [0x0, +0x4000): ENOMEM (pinning it would pass the RLIMIT_MEMLOCK of the process)',
    ]);
  });
});

describe('UNMAP refusals name their rule', () => {
  it('a range that cuts a mapping, and the ioctl answers the same errno', async () => {
    const { c, ram } = await container();
    c.map({ vaddr: ram, iova: 0x10000n, size: 0x4000n });
    expect(refusal(() => c.unmap({ iova: 0x11000n, size: 0x1000n }))).toEqual([
      errno.EINVAL, 'unmap [0x11000, +0x1000): EINVAL (the range cuts the mapping [0x10000, 0x14000))',
    ]);
    const u = new Uint8Array(24);
    const v = new DataView(u.buffer);
    v.setUint32(0, 24, true);
    v.setBigUint64(8, 0x11000n, true);
    v.setBigUint64(16, 0x1000n, true);
    expect(c.proc.ioctl(c.fd, uapi.VFIO_IOMMU_UNMAP_DMA, u)).toBe(-errno.EINVAL);
  });

  it('size 0, and GET_DIRTY_BITMAP without tracking', async () => {
    const { c, ram } = await container();
    c.map({ vaddr: ram, iova: 0n, size: 0x4000n });
    expect(refusal(() => c.unmap({ iova: 0n, size: 0n }))).toEqual([errno.EINVAL, 'unmap [0x0, +0x0): EINVAL (size is 0)']);
    expect(refusal(() => c.unmapWithBitmap({ iova: 0n, size: 0x4000n }))).toEqual([
      errno.EINVAL, 'unmapWithBitmap [0x0, +0x4000): EINVAL (GET_DIRTY_BITMAP while dirty tracking is not started)',
    ]);
  });

  it('an out-of-memory failure has no rule to name and no stale one', async () => {
    const { c, ram } = await container();
    expect(refusal(() => c.map({ vaddr: ram, iova: 0n, size: 0n }))[1]).toMatch(/size is 0/);
    c.proc.engine.failNthAllocation(1);
    expect(refusal(() => c.map({ vaddr: ram, iova: 0n, size: 0x1000n }))).toEqual([errno.ENOMEM, 'map [0x0, +0x1000): ENOMEM']);
  });
});
