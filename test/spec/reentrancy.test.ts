// Calls from inside a callback (docs/conformance.md §5.6, §14): what a type1 dma_unmap
// callback may do while the unmap that called it runs. Unpinning, pinning, MAP, UNMAP of other
// ranges, dma_rw and GET_BITMAP work (the kernel drops the container lock around the call); what
// would change the container's groups, page sizes or tracking state answers -EDEADLK and changes
// nothing (a close that would detach a group included: it keeps its fd). A
// callback that throws does not stop the unmap; the exception leaves the ioctl once it is done.
import { describe, expect, it } from 'vitest';
import { errno } from '../../src/errors.js';
import { uapi } from '../../src/uapi.js';
import { must, P, setup, type Setup } from '../helpers/setups.js';
import { dmaUnmap, parseDmaUnmap } from '../helpers/uapi_structs.js';

const MiB4 = 0x40_0000n;
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const K64 = 0x1_0000n;

/**
 * Setup X with G at 64 KiB pages (the container's dirty granularity), one 4 MiB dma with a page
 * pinned by M, tracking on. 64 pages of 64 KiB: one word of user bitmap.
 */
async function x64(): Promise<Setup> {
  const s = await setup('X', { g: { pgsizeBitmap: K64 } });
  must(s.MAP(0n, MiB4), 'MAP');
  must(s.START(), 'START');
  must(s.PIN('M', P(1), 1), 'PIN');
  return s;
}

/** The container's smallest IOMMU page size (GET_INFO iova_pgsizes): its dirty granularity. */
function smallestPage(s: Setup): bigint {
  const v = s.info().info.iovaPgsizes;
  return v & -v;
}

/** The recording driver, plus `extra` run in each notification before it unpins. */
function onUnmap(s: Setup, extra: () => void): void {
  const base = s.onDmaUnmap.bind(s);
  s.onDmaUnmap = (d, iova, size) => {
    extra();
    base(d, iova, size);
  };
}

/** UNMAP with GET_DIRTY_BITMAP of the 4 MiB dma at 64 KiB pages into an 8-byte bitmap whose next 120 bytes are 0xaa. */
function umb8(s: Setup) {
  return s.UMB(0n, MiB4, 128, { pgsize: K64, bsize: 8n, fill: 0xaa });
}

describe('a dma_unmap callback that would change the running container gets EDEADLK', () => {
  it('UNSET_CONTAINER of a 64 KiB group during UNMAP with GET_DIRTY_BITMAP: EDEADLK, nothing written past bitmap.size', async () => {
    const s = await x64();
    must(s.proc.close(s.devFds[s.groups.G.devices[0].name]), 'close G device'); // else UNSET is EBUSY
    const inner: number[] = [];
    onUnmap(s, () => inner.push(s.proc.ioctl(s.gfds.G, uapi.VFIO_GROUP_UNSET_CONTAINER)));
    const u = umb8(s);
    expect(inner).toEqual([-errno.EDEADLK]);
    expect([u.ret, u.size]).toEqual([0, MiB4]);
    // G is not in pinned scope: all 64 pages dirty in the one word; the 120 bytes after it untouched.
    expect(hex(u.bytes)).toBe('ff'.repeat(8) + 'aa'.repeat(120));
    expect(s.container().groups).toEqual([s.groups.G.id, s.groups.M.id]);
    expect(smallestPage(s)).toBe(K64);
  });

  it('SET_CONTAINER of another group onto the container, and SET_IOMMU: EDEADLK, nothing changed', async () => {
    const s = await x64();
    s.createGroup('H', 'iommu', { pgsizeBitmap: K64 });
    const hfd = must(s.proc.open(`/dev/vfio/${s.groups.H.id}`), 'open H');
    const inner: number[] = [];
    onUnmap(s, () => {
      inner.push(s.proc.ioctl(hfd, uapi.VFIO_GROUP_SET_CONTAINER, s.cfd));
      inner.push(s.proc.ioctl(s.cfd, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU));
    });
    const u = umb8(s);
    expect(inner).toEqual(Array(4).fill(-errno.EDEADLK));
    expect(u.ret).toBe(0);
    expect(s.container().groups).toEqual([s.groups.G.id, s.groups.M.id]);
    // H can join once the unmap is over.
    expect(s.proc.ioctl(hfd, uapi.VFIO_GROUP_SET_CONTAINER, s.cfd)).toBe(0);
  });

  it('STOP while tracking: EDEADLK, and the unmap still reports the bits', async () => {
    const s = await x64();
    const inner: number[] = [];
    onUnmap(s, () => {
      inner.push(s.STOP());
      inner.push(s.START()); // already on: changes nothing, so 0
    });
    const u = umb8(s);
    expect(inner).toEqual([-errno.EDEADLK, 0, -errno.EDEADLK, 0]);
    expect(u.ret).toBe(0);
    expect(hex(u.bytes).slice(0, 16)).toBe('ff'.repeat(8));
    expect(s.container().tracking).toBe(true);
  });

  it('START while tracking is off: EDEADLK, tracking stays off', async () => {
    const s = await setup('E');
    must(s.MAP(P(0x10), P(2)), 'MAP');
    must(s.PIN('M', P(0x10), 1), 'PIN');
    const inner: number[] = [];
    onUnmap(s, () => inner.push(s.START()));
    const u = s.UNMAP(P(0x10), P(2));
    expect([u.ret, u.size]).toEqual([0, P(2)]);
    expect(inner).toEqual([-errno.EDEADLK]);
    expect(s.container().tracking).toBe(false);
    expect(s.START()).toBe(0);
  });
});

describe('a group file closed inside the callback', () => {
  it('a close that would detach answers EDEADLK and keeps the fd; a close that releases nothing goes ahead', async () => {
    const s = await x64();
    const gdev = s.groups.G.devices[0].name;
    const inner: number[] = [];
    let done = false;
    onUnmap(s, () => {
      if (done) return;
      done = true;
      inner.push(s.proc.close(s.devFds[gdev])); // the group fd still holds the group file
      inner.push(s.proc.close(s.gfds.G)); // would detach G from the running container
      inner.push(s.proc.open(`/dev/vfio/${s.groups.G.id}`));
      inner.push(s.container().groups.length);
    });
    const u = umb8(s);
    expect(inner).toEqual([0, -errno.EDEADLK, -errno.EBUSY, 2]);
    expect([u.ret, u.size]).toEqual([0, MiB4]);
    expect(hex(u.bytes)).toBe('ff'.repeat(8) + 'aa'.repeat(120));
    // After the unmap G is still attached and its fd open; closing it now detaches it.
    expect(s.container().groups).toEqual([s.groups.G.id, s.groups.M.id]);
    expect(s.proc.close(s.gfds.G)).toBe(0);
    expect(s.container().groups).toEqual([s.groups.M.id]);
    expect(smallestPage(s)).toBe(0x1000n);
    expect(s.proc.open(`/dev/vfio/${s.groups.G.id}`)).toBeGreaterThanOrEqual(0);
  });
});

describe('what a callback may do (the container lock is dropped, docs/conformance.md §14)', () => {
  it('pin, unpin, MAP, UNMAP another range, dma_rw and GET_BITMAP all work', async () => {
    const s = await setup('E');
    must(s.MAP(P(0x10), P(2)), 'A');
    must(s.MAP(P(0x40), P(1)), 'B');
    must(s.START(), 'START');
    must(s.PIN('M', P(0x10), 1), 'PIN');
    const inner: (number | string)[] = [];
    onUnmap(s, () => {
      inner.push(s.MAP(P(0x80), P(1)));
      inner.push(s.PIN('M', P(0x80), 1));
      inner.push(s.RW('M', P(0x80), 4, true).ret);
      inner.push(hex(s.GET(P(0x80), P(1), 8).bytes));
      inner.push(s.UNMAP(P(0x40), P(1)).ret);
    });
    const u = s.UNMAP(P(0x10), P(2));
    expect([u.ret, u.size]).toEqual([0, P(2)]);
    expect(inner).toEqual([0, 1, 0, '0100000000000000', 0]);
    expect(s.dmas()).toEqual([[P(0x80), P(1)]]);
    expect(s.refs(P(0x80))).toEqual({ '0x80000': 1 });
  });
});

describe('a callback that throws', () => {
  /** E with A, B (pinned by M), C one page each, tracking on, A and C written by dma_rw. */
  async function abc(): Promise<Setup> {
    const s = await setup('E');
    for (const i of [0x10, 0x20, 0x30]) must(s.MAP(P(i), P(1)), 'MAP');
    must(s.START(), 'START');
    must(s.PIN('M', P(0x20), 1), 'PIN');
    must(s.RW('M', P(0x10), 1, true).ret, 'RW A');
    must(s.RW('M', P(0x30), 1, true).ret, 'RW C');
    return s;
  }

  function umbArg(s: Setup, data: bigint): Uint8Array {
    return dmaUnmap({
      flags: uapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, iova: P(0x10), size: P(0x30),
      bitmap: { pgsize: 0x1000n, size: 8n, data },
    });
  }

  it('after unpinning: the unmap completes, copies back, then the exception leaves the ioctl', async () => {
    const s = await abc();
    const boom = new Error('driver bug');
    onUnmap(s, () => undefined);
    const base = s.onDmaUnmap;
    s.onDmaUnmap = (d, iova, size) => {
      base(d, iova, size);
      throw boom;
    };
    const data = s.userBitmap(8);
    const arg = umbArg(s, data);
    expect(() => s.proc.ioctl(s.cfd, uapi.VFIO_IOMMU_UNMAP_DMA, arg)).toThrow(boom);
    expect(s.unmapCalls).toHaveLength(1);
    expect(s.dmas()).toEqual([]);
    expect(parseDmaUnmap(arg).size).toBe(P(3));
    // Bits 0 (A), 16 (B: pinned) and 32 (C).
    expect(hex(s.proc.read(data, 8))).toBe('0100010001000000');
    expect(s.container().dmaAvail).toBe(65535);
  });

  it('without unpinning: EBUSY as for any driver that keeps its pins, then the exception', async () => {
    const s = await abc();
    const boom = new Error('driver bug');
    s.onDmaUnmap = () => {
      throw boom;
    };
    const data = s.userBitmap(8);
    const arg = umbArg(s, data);
    expect(() => s.proc.ioctl(s.cfd, uapi.VFIO_IOMMU_UNMAP_DMA, arg)).toThrow(boom);
    // A was reported and removed before B's notification; B keeps its pin; C was never reached.
    expect(s.dmas()).toEqual([[P(0x20), P(1)], [P(0x30), P(1)]]);
    expect(s.refs(P(0x20))).toEqual({ '0x20000': 1 });
    expect(parseDmaUnmap(arg).size).toBe(P(0x30)); // nothing copied back
    expect(hex(s.proc.read(data, 8))).toBe('0100000000000000');
    expect(s.container().dmas.map((d) => d.bitmap)).toEqual(['0100000000000000', '0100000000000000']);
  });

  it('each of two throwing callbacks: one AggregateError', async () => {
    const s = await setup('X');
    must(s.MAP(P(0x10), P(1)), 'MAP');
    must(s.PIN('M', P(0x10), 1), 'PIN');
    const base = s.onDmaUnmap.bind(s);
    s.onDmaUnmap = (d, iova, size) => {
      base(d, iova, size);
      throw new Error(d.name);
    };
    const buf = dmaUnmap({ flags: 0, iova: P(0x10), size: P(1) });
    let caught: unknown;
    try {
      s.proc.ioctl(s.cfd, uapi.VFIO_IOMMU_UNMAP_DMA, buf);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(AggregateError);
    expect((caught as AggregateError).errors.map((e: Error) => e.message).sort()).toEqual(['0000:65:00.0', 'mdev-m0']);
    expect(s.dmas()).toEqual([]);
    expect(parseDmaUnmap(buf).size).toBe(P(1));
  });
});
