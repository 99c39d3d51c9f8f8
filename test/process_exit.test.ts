// proc.exit(): the do_exit order (address space, file mappings, anonymous memory, fds ascending),
// what closing each VFIO file releases, and what an exited process answers.
import { describe, expect, it } from 'vitest';
import { createEngine, errno, uapi, type Engine, type Group, type Process } from '../src/index.js';
import type { FileMapping, OpenFile, Subsystem } from '../src/file.js';
import { dmaMap, dmaUnmap } from './helpers/uapi_structs.js';
import { MiB, mixed, world } from './helpers/lifecycle.js';

const { VFIO_GROUP_SET_CONTAINER, VFIO_GROUP_GET_DEVICE_FD, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU } = uapi;

const dmaMapBytes = (vaddr: bigint): Uint8Array =>
  dmaMap({ flags: uapi.VFIO_DMA_MAP_FLAG_READ | uapi.VFIO_DMA_MAP_FLAG_WRITE, vaddr, iova: 0n, size: MiB });

describe('proc.exit releases every VFIO file', () => {
  it('leaves other processes\' containers alone: a container maps only its own process\'s memory', async () => {
    const e = await createEngine();
    const g1 = e.createGroup();
    const g2 = e.createGroup();
    const a = world(e, g1);
    const b = world(e, g2);
    const before = e.inspect();
    a.p.exit();
    expect(e.containers.size).toBe(1);
    const [left] = [...e.containers];
    expect([...left.iommu!.each()].every((d) => d.owner === b.p)).toBe(true);
    expect(b.p.lockedVm).toBe(256n);
    expect(e.inspect().containers).toEqual(before.containers.filter((c) => c.groups[0] === g2.id));
  });

  it('tears down the container: dmas, pins, bitmaps, locked_vm, user memory; no driver op runs', async () => {
    const e = await createEngine();
    const g = e.createGroup();
    const unmaps: bigint[] = [];
    g.devices[0].registerDmaUnmap((iova) => unmaps.push(iova));
    const base = e.memoryInUse();
    const { p, c } = world(e, g);
    c.dirty.start();
    expect(g.devices[0].pinPages(0n, 4, uapi.IOMMU_READ)).toBe(4);
    expect(p.lockedVm).toBe(256n);
    expect(e.memoryInUse()).toBeGreaterThan(base);
    expect(p.exit()).toBe(0);
    // The device fd was the group file's last reference: its close detached the last group,
    // which freed every dma (docs/conformance.md §2.7). The kernel calls no dma_unmap op on that path: a driver
    // releases its pins in its own close.
    expect(unmaps).toEqual([]);
    expect(e.containers.size).toBe(0);
    expect(g.file).toBeNull();
    expect(g.container).toBeNull();
    expect(p.lockedVm).toBe(0n);
    expect(p.fds.size).toBe(0);
    expect(p.um.disposed).toBe(true);
    expect(e.processes).not.toContain(p);
    expect(e.memoryInUse()).toBe(base);
    expect(g.devices[0].pinPages(0n, 1, uapi.IOMMU_READ)).toBe(-errno.EINVAL); // no longer open
  });

  it('releases the group for other processes: EBUSY before the exit, a new fd after', async () => {
    const e = await createEngine();
    const g = e.createGroup();
    const { p } = world(e, g);
    const q = e.createProcess();
    expect(q.open(`/dev/vfio/${g.id}`)).toBe(-errno.EBUSY);
    p.exit();
    expect(q.open(`/dev/vfio/${g.id}`)).toBe(3);
  });

  it('gives the same result whatever order the files were opened in', async () => {
    for (const order of [['container', 'group'], ['group', 'container']] as const) {
      for (const withDevice of [false, true]) {
        const e = await createEngine();
        const g = e.createGroup();
        const base = e.memoryInUse();
        const p = e.createProcess();
        const fd: Record<string, number> = {};
        for (const k of order) fd[k] = p.open(k === 'container' ? '/dev/vfio/vfio' : `/dev/vfio/${g.id}`);
        expect(p.ioctl(fd.group, VFIO_GROUP_SET_CONTAINER, fd.container)).toBe(0);
        expect(p.ioctl(fd.container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(0);
        if (withDevice) expect(p.ioctl(fd.group, VFIO_GROUP_GET_DEVICE_FD, g.devices[0].name)).toBe(5);
        const va = p.mmap(MiB);
        const c = e.openContainer(p); // a second fd of a new container: closed at exit too
        expect(c.fd).toBe(withDevice ? 6 : 5);
        expect(p.ioctl(fd.container, uapi.VFIO_IOMMU_MAP_DMA, dmaMapBytes(va))).toBe(0);
        expect(p.lockedVm).toBe(256n);
        p.exit();
        expect([e.containers.size, g.file, p.lockedVm, e.memoryInUse()]).toEqual([0, null, 0n, base]);
        expect(e.createProcess().open(`/dev/vfio/${g.id}`)).toBe(3);
      }
    }
  });

  it('keeps nothing charged: external pins a driver never released (emulated group) go with the mm', async () => {
    const e = await createEngine();
    const m = e.createGroup({ kind: 'emulated' });
    m.devices[0].registerDmaUnmap(() => {});
    const base = e.memoryInUse();
    const { p } = world(e, m);
    expect(m.devices[0].pinPages(0n, 3, uapi.IOMMU_READ)).toBe(3);
    expect(p.lockedVm).toBe(3n);
    p.exit();
    expect(p.lockedVm).toBe(0n);
    expect(e.memoryInUse()).toBe(base);
  });

  it('detaches a container holding an IOMMU and an emulated group, the groups in fd order', async () => {
    const e = await createEngine();
    const { p, g, m, base } = mixed(e);
    p.exit();
    expect([e.containers.size, g.file, m.file, p.lockedVm, e.memoryInUse()]).toEqual([0, null, null, 0n, base]);
  });

  it('closes a container that has no group, and one whose group fd was already closed', async () => {
    const e = await createEngine();
    const g = e.createGroup();
    const base = e.memoryInUse();
    const p = e.createProcess();
    p.open('/dev/vfio/vfio');
    const c = e.openContainer(p);
    c.attach(g);
    c.setIommu();
    p.close(c.fd + 1); // the group fd: the group leaves, the driver is released
    p.exit();
    expect([e.containers.size, e.memoryInUse()]).toEqual([0, base]);
  });
});

describe('an exited process', () => {
  it('throws on every method but exit and exited; exit answers 0 again', async () => {
    const e = await createEngine();
    const p = e.createProcess();
    const va = p.mmap(4096);
    p.open('/dev/vfio/vfio');
    expect(p.exited).toBe(false);
    expect(p.exit()).toBe(0);
    expect(p.exited).toBe(true);
    expect(p.isDisposed).toBe(true);
    const calls: [string, () => unknown][] = [
      ['mmap', () => p.mmap(4096)],
      ['mmapFd', () => p.mmapFd(3, 0n, 4096)],
      ['munmap', () => p.munmap(va, 4096)],
      ['read', () => p.read(va, 1)],
      ['write', () => p.write(va, new Uint8Array(1))],
      ['open', () => p.open('/dev/vfio/vfio')],
      ['ioctl', () => p.ioctl(3, uapi.VFIO_GET_API_VERSION)],
      ['close', () => p.close(3)],
      ['markSoftDirty', () => p.markSoftDirty(va, 1)],
      ['lowestFreeFd', () => p.lowestFreeFd()],
      ['allocFd', () => p.allocFd({ kind: 'x', ioctl: () => 0, close: () => {} })],
    ];
    for (const [name, f] of calls) expect(f, name).toThrow(`${name}: the process has exited`);
    expect(p.exit()).toBe(0);
    // Device-side queries see no memory: DMA through the released address space faults.
    expect([p.isMapped(va, 1n), p.firstUnmappedPage(va, 1)]).toEqual([false, 0]);
  });

  it('runs the steps in order and throws in the callbacks the exit runs', async () => {
    const e = await createEngine();
    const log: string[] = [];
    const p = e.createProcess();
    const probe = (what: string) => {
      if (!p.exited) return; // the explicit close below, before the exit
      for (const [name, f] of [['read', () => p.read(0x10_0000_0000n, 1)], ['open', () => p.open('/x')],
        ['close', () => p.close(3)], ['mmap', () => p.mmap(1)]] as const) {
        try {
          f();
          log.push(`${what}: ${name} did not throw`);
        } catch (err) {
          expect((err as Error).message).toBe(`${name}: the process has exited`);
        }
      }
      expect(p.exited).toBe(true);
      expect(p.exit()).toBe(0); // a nested exit is a no-op
    };
    const sub: Subsystem = { mmRelease: (q) => { expect(q).toBe(p); log.push('mmRelease'); probe('mmRelease'); } };
    e.subsystems.push(sub);
    const mapping = (n: number): FileMapping => ({
      read: () => new Uint8Array(0), write: () => {}, unmap: () => 0,
      release: () => { log.push(`release mapping ${n}`); probe('release'); },
    });
    let maps = 0;
    const file = (n: number): OpenFile => ({
      kind: 'test', ioctl: () => 0, mmap: () => mapping(maps++),
      close: () => { log.push(`close ${n} (user memory ${p.um.disposed ? 'freed' : 'held'})`); probe('close'); },
    });
    p.mmap(4096);
    const fds = [p.allocFd(file(0)), p.allocFd(file(1)), p.allocFd(file(2))];
    expect(fds).toEqual([3, 4, 5]);
    expect(p.close(3)).toBe(0);
    log.length = 0;
    expect(p.allocFd(file(3))).toBe(3); // fd 3 again, opened last: closed first all the same
    expect(p.mmapFd(5, 0n, 4096)).toBeGreaterThan(0n);
    expect(p.mmapFd(4, 0n, 4096)).toBeGreaterThan(0n);
    p.exit();
    expect(log).toEqual([
      'mmRelease', 'release mapping 0', 'release mapping 1',
      'close 3 (user memory freed)', 'close 1 (user memory freed)', 'close 2 (user memory freed)',
    ]);
  });

  it('a dma_unmap op of another process\'s container runs after the exit and sees the throw', async () => {
    // The only driver callback near an exit: a device of a live process's container whose driver
    // calls into a process that has exited.
    const e = await createEngine();
    const g = e.createGroup({ kind: 'emulated' });
    const dead = e.createProcess();
    dead.exit();
    let seen = '';
    g.devices[0].registerDmaUnmap((iova, size) => {
      try {
        dead.write(0x10_0000_0000n, new Uint8Array(1));
      } catch (err) {
        seen = (err as Error).message;
      }
      g.devices[0].unpinPages(iova, Number(size >> 12n));
    });
    const { c } = world(e, g);
    expect(g.devices[0].pinPages(0n, 1, uapi.IOMMU_READ)).toBe(1);
    expect(c.unmap({ iova: 0n, size: MiB })).toBe(MiB);
    expect(seen).toBe('write: the process has exited');
  });
});

describe('close and exit inside a dma_unmap op', () => {
  it('exit of the process running the UNMAP answers EDEADLK; another process exits', async () => {
    const e = await createEngine();
    const g = e.createGroup({ kind: 'emulated' });
    const other = world(e, e.createGroup());
    const results: number[] = [];
    let disposeError = '';
    const { p, c } = world(e, g);
    g.devices[0].registerDmaUnmap((iova, size) => {
      results.push(p.exit(), other.p.exit());
      try {
        e.dispose();
      } catch (err) {
        disposeError = (err as Error).message;
      }
      g.devices[0].unpinPages(iova, Number(size >> 12n));
    });
    expect(g.devices[0].pinPages(0n, 1, uapi.IOMMU_READ)).toBe(1);
    expect(c.unmap({ iova: 0n, size: MiB })).toBe(MiB);
    expect(results).toEqual([-errno.EDEADLK, 0]);
    expect(disposeError).toBe('engine.dispose() cannot run inside a dma_unmap callback');
    expect([p.exited, other.p.exited, e.isDisposed, p.fds.size, e.containers.size]).toEqual([false, true, false, 3, 1]);
    expect(p.exit()).toBe(0);
    expect(e.containers.size).toBe(0);
  });

  it('a close that would detach a group from the running container answers EDEADLK; others close', async () => {
    const e = await createEngine();
    const m = e.createGroup({ kind: 'emulated' });
    const p = e.createProcess();
    const c = e.openContainer(p);
    c.attach(m);
    c.setIommu();
    const va = p.mmap(4n * MiB);
    for (let i = 0n; i < 4n; i++) c.map({ iova: i * MiB, size: MiB, vaddr: va + i * MiB });
    const dev = c.openDevice(m);
    const gfd = c.fd + 1;
    const closes: number[] = [];
    const g = e.createGroup();
    const g2 = e.createGroup();
    const gGfd = p.open(`/dev/vfio/${g.id}`);
    c.attach(g); // an IOMMU group without a device fd: UNSET_CONTAINER would only need no devices
    const g2fd = p.open(`/dev/vfio/${g2.id}`);
    const groupCalls: number[] = [];
    m.devices[0].registerDmaUnmap((iova, size) => {
      m.devices[0].unpinPages(iova, Number(size >> 12n));
      groupCalls.push(
        p.ioctl(gGfd, uapi.VFIO_GROUP_UNSET_CONTAINER),
        p.ioctl(g2fd, VFIO_GROUP_SET_CONTAINER, c.fd),
      );
      // The device fd: the group fd still holds the group file. The group fd: now its last
      // reference, whose release would free the container's dmas under the running UNMAP.
      // The container fd: the group still holds the container.
      closes.push(p.close(dev), p.close(gfd), p.close(c.fd));
    });
    expect(m.devices[0].pinPages(MiB, 1, uapi.IOMMU_READ)).toBe(1);
    const container = [...e.containers][0];
    expect(p.ioctl(c.fd, uapi.VFIO_IOMMU_UNMAP_DMA, dmaUnmap({ flags: uapi.VFIO_DMA_UNMAP_FLAG_ALL, iova: 0n, size: 0n }))).toBe(0);
    expect(closes).toEqual([0, -errno.EDEADLK, 0]);
    expect(groupCalls).toEqual([-errno.EDEADLK, -errno.EDEADLK]);
    expect([g.container, g2.container]).toEqual([container, null]);
    expect([...p.fds.keys()]).toEqual([gfd, gGfd, g2fd]);
    expect([container.iommu!.all().length, container.notifying]).toEqual([0, false]);
    expect(p.close(gfd)).toBe(0); // outside the op
    expect(p.ioctl(gGfd, uapi.VFIO_GROUP_UNSET_CONTAINER)).toBe(0);
    expect(e.containers.size).toBe(0);
  });
});

describe('exit allocates nothing', () => {
  it('completes with fail-the-Nth armed: nothing fails, everything is released', async () => {
    const e = await createEngine();
    const { p, g, m, base } = mixed(e);
    const calls = e.core.x.heap_alloc_calls();
    e.failNthAllocation(1);
    expect(p.exit()).toBe(0);
    expect(e.core.x.heap_alloc_calls()).toBe(calls);
    expect(e.core.x.heap_fail_pending()).toBe(1); // still armed: no allocation was attempted
    e.failNthAllocation(0);
    expect([e.containers.size, g.file, m.file, p.lockedVm, e.memoryInUse()]).toEqual([0, null, null, 0n, base]);
  });

  it('a detach that re-grains the bitmaps may fail to allocate; the exit still releases everything', async () => {
    for (let n = 1; n <= 3; n++) {
      const e = await createEngine();
      // Two IOMMU groups of different smallest page sizes: closing the 2 MiB one first re-grains
      // the bitmaps to 4 KiB.
      const big = e.createGroup({ pgsizeBitmap: 0x40200000n });
      const small = e.createGroup();
      const base = e.memoryInUse();
      const p = e.createProcess();
      const c = e.openContainer(p);
      c.attach(big);
      c.attach(small);
      c.setIommu();
      const va = p.mmap(4n * MiB);
      c.map({ iova: 0n, size: 2n * MiB, vaddr: va });
      c.dirty.start();
      const calls = e.core.x.heap_alloc_calls();
      e.failNthAllocation(n);
      expect(p.exit()).toBe(0);
      e.failNthAllocation(0);
      expect(e.core.x.heap_alloc_calls()).toBeGreaterThan(calls); // the re-grain was tried
      expect([e.containers.size, small.file, big.file, p.lockedVm, e.memoryInUse()]).toEqual([0, null, null, 0n, base]);
    }
  });
});
