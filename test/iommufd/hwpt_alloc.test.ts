// HWPT_ALLOC's checks on an IOAS's areas, IOAS_MAP's last check (memory mapped under a HWPT) and
// the attach rule on page sizes (docs/conformance.md §21.2-§21.4): one test per rule, each with
// its errno and nothing made.
import { describe, expect, it } from 'vitest';
import { createEngine, errno, type GroupOptions } from '../../src/index.js';
import { attach, bind, Iommufd } from '../devdirty/helpers.js';

const { EINVAL, EADDRINUSE, EFAULT, ENOENT } = errno;

async function ctx(o: GroupOptions = {}): Promise<{ fd: Iommufd; C: number; proc: import('../../src/index.js').Process; engine: import('../../src/index.js').Engine }> {
  const engine = await createEngine();
  const g = engine.createGroup({ kind: 'iommu', ...o });
  const proc = engine.createProcess();
  const I = proc.open('/dev/iommu');
  const fd = new Iommufd(proc, I);
  expect(fd.ioasAlloc()).toBe(1);
  const C = proc.open(g.devices[0].cdevPath!);
  expect(bind(proc, C, I)).toBe(2);
  return { fd, C, proc, engine };
}

describe('HWPT_ALLOC domain rules', () => {
  it('(d) a domain whose smallest page is above 4 KiB is EINVAL', async () => {
    const { fd } = await ctx({ pgsizeBitmap: 0x200000n });
    expect(fd.hwptAlloc(0, 2, 1)).toBe(-EINVAL);
    expect(fd.destroy(3)).toBe(-ENOENT);
  });

  it('(e) an IOAS with no HWPT and an unaligned area is EADDRINUSE', async () => {
    const { fd, proc } = await ctx();
    expect(fd.map(1, 0x100000n, 0x800n, proc.mmap(0x1000)).ret).toBe(0);
    expect(fd.hwptAlloc(0, 2, 1)).toBe(-EADDRINUSE);
    expect(fd.destroy(3)).toBe(-ENOENT);
  });

  it('(f) an area outside the aperture is EADDRINUSE', async () => {
    const { fd, proc } = await ctx({ aperture: [0n, 0xffffffffn] });
    expect(fd.map(1, 0x100000000n, 0x1000n, proc.mmap(0x1000)).ret).toBe(0);
    expect(fd.hwptAlloc(0, 2, 1)).toBe(-EADDRINUSE);
    expect(fd.unmap(1, 0x100000000n, 0x1000n).ret).toBe(0);
    expect(fd.hwptAlloc(0, 2, 1)).toBe(3);
    expect(fd.map(1, 0x100000000n, 0x1000n, proc.mmap(0x1000)).ret).toBe(-EINVAL); // reserved now
  });

  it('IOAS_MAP: a map under a HWPT needs mapped user memory (EFAULT); without one it does not', async () => {
    const { fd } = await ctx();
    expect(fd.map(1, 0x100000n, 0x1000n, 0x7000_0000_0000n).ret).toBe(0);
    expect(fd.hwptAlloc(0, 2, 1)).toBe(-EFAULT); // (g) every area must be mapped
    expect(fd.unmap(1, 0x100000n, 0x1000n).ret).toBe(0);
    expect(fd.hwptAlloc(0, 2, 1)).toBe(3);
    expect(fd.map(1, 0x100000n, 0x1000n, 0x7000_0000_0000n).ret).toBe(-EFAULT);
  });

  it('attach rule (3): another group with other page sizes cannot use the HWPT', async () => {
    const { fd, proc, engine } = await ctx();
    expect(fd.hwptAlloc(0, 2, 1)).toBe(3);
    const g2 = engine.createGroup({ kind: 'iommu', pgsizeBitmap: 0x1000n });
    const C2 = proc.open(g2.devices[0].cdevPath!);
    expect(bind(proc, C2, fd.fd)).toBe(4);
    expect(attach(proc, C2, 3)).toBe(-EINVAL);
    const g3 = engine.createGroup({ kind: 'iommu', aperture: [0n, 0xffffffffn] });
    const C3 = proc.open(g3.devices[0].cdevPath!);
    expect(bind(proc, C3, fd.fd)).toBe(5);
    expect(attach(proc, C3, 3)).toBe(-EINVAL); // the HWPT's aperture is wider than the group's
  });
});
