// docs/conformance.md §2: opening groups and containers, SET/UNSET_CONTAINER, GET_STATUS,
// GET_DEVICE_FD, detaching and closing the last group, deferred detach while a device fd is open.
import { describe, expect, it } from 'vitest';
import { errno } from '../../src/errors.js';
import { uapi } from '../../src/uapi.js';
import { groupStatus, u32 } from '../helpers/uapi_structs.js';
import { failsCleanly, must, P, setup, type Setup } from '../helpers/setups.js';

const { VFIO_GROUP_FLAGS_VIABLE: VIABLE, VFIO_GROUP_FLAGS_CONTAINER_SET: CSET } = uapi;

function status(s: Setup, gfd: number): number {
  const b = groupStatus();
  must(s.proc.ioctl(gfd, uapi.VFIO_GROUP_GET_STATUS, b), 'GET_STATUS');
  return u32(b, 4);
}

describe('§2 opening', () => {
  it('a group opens once: a second open is EBUSY, from any process; closing frees it', async () => {
    const s = await setup('none');
    const g = s.engine.createGroup({ kind: 'iommu' });
    const path = `/dev/vfio/${g.id}`;
    const gfd = s.proc.open(path);
    expect(gfd).toBeGreaterThanOrEqual(0);
    expect(s.proc.open(path)).toBe(-errno.EBUSY);
    expect(s.engine.createProcess().open(path)).toBe(-errno.EBUSY);
    expect(s.proc.close(gfd)).toBe(0);
    expect(s.proc.open(path)).toBeGreaterThanOrEqual(0);
  });

  it('a missing group is ENOENT; each open of /dev/vfio/vfio is a new container', async () => {
    const s = await setup('none');
    const g = s.engine.createGroup({ kind: 'iommu' });
    expect(s.proc.open(`/dev/vfio/${g.id + 1000}`)).toBe(-errno.ENOENT);
    const c2 = s.proc.open('/dev/vfio/vfio');
    expect(c2).toBeGreaterThanOrEqual(0);
    expect(c2).not.toBe(s.cfd);
  });

  it('GET_STATUS: VIABLE before SET_CONTAINER, VIABLE|CONTAINER_SET after, VIABLE after UNSET', async () => {
    const s = await setup('none');
    s.createGroup('G', 'iommu');
    const gfd = s.proc.open(`/dev/vfio/${s.groups.G.id}`);
    s.gfds.G = gfd;
    expect(status(s, gfd)).toBe(VIABLE);
    expect(s.attach('G')).toBe(0);
    expect(status(s, gfd)).toBe(VIABLE | CSET);
    expect(s.proc.ioctl(gfd, uapi.VFIO_GROUP_UNSET_CONTAINER)).toBe(0);
    expect(status(s, gfd)).toBe(VIABLE);
  });
});

describe('§2 SET_CONTAINER', () => {
  it('a non-viable group: GET_STATUS without VIABLE, SET_CONTAINER EPERM', async () => {
    const s = await setup('none');
    const g = s.engine.createGroup({ kind: 'iommu', viable: false });
    const gfd = must(s.proc.open(`/dev/vfio/${g.id}`), 'open');
    // v6.x: another driver claims DMA ownership, so VIABLE is not reported (docs/conformance.md §2.8).
    expect(status(s, gfd)).toBe(0);
    failsCleanly(s, errno.EPERM, () => s.proc.ioctl(gfd, uapi.VFIO_GROUP_SET_CONTAINER, s.cfd));
  });

  it('a group that already has a container is EINVAL; a bad fd EBADF; a non-container fd EBADFD', async () => {
    const s = await setup('I');
    failsCleanly(s, errno.EINVAL, () => s.proc.ioctl(s.gfds.G, uapi.VFIO_GROUP_SET_CONTAINER, s.cfd));
    const c2 = must(s.proc.open('/dev/vfio/vfio'), 'open container 2');
    failsCleanly(s, errno.EINVAL, () => s.proc.ioctl(s.gfds.G, uapi.VFIO_GROUP_SET_CONTAINER, c2));
    const g2 = s.createGroup('G2', 'iommu', { devices: ['0000:66:00.0'] });
    const g2fd = must(s.proc.open(`/dev/vfio/${g2.id}`), 'open G2');
    failsCleanly(s, errno.EBADF, () => s.proc.ioctl(g2fd, uapi.VFIO_GROUP_SET_CONTAINER, 999));
    failsCleanly(s, errno.EBADFD, () => s.proc.ioctl(g2fd, uapi.VFIO_GROUP_SET_CONTAINER, s.gfds.G));
    failsCleanly(s, errno.EBADFD, () => s.proc.ioctl(g2fd, uapi.VFIO_GROUP_SET_CONTAINER, s.devFds[s.dev.G.name]));
  });

  it('SET_CONTAINER into a container with a driver attaches at once (new group is non-pinned)', async () => {
    const s = await setup('I');
    must(s.MAP(0x10000n, P(2)), 'MAP');
    s.createGroup('G2', 'iommu', { devices: ['0000:66:00.0'] });
    expect(s.attach('G2')).toBe(0);
    const c = s.container();
    expect(c.groups.slice().sort()).toEqual([s.groups.G.id, s.groups.G2.id].sort());
    expect(c.nonPinnedGroups).toBe(2);
    expect(s.proc.lockedVm).toBe(2n); // a further domain does not charge again
  });

  it('SET_IOMMU attaches every group in order', async () => {
    const s = await setup('X');
    const c = s.container();
    expect(c.iommu).toBe('type1v2');
    expect(c.groups.slice().sort()).toEqual([s.groups.G.id, s.groups.M.id].sort());
    expect(c.nonPinnedGroups).toBe(1);
  });
});

describe('§2 GET_DEVICE_FD', () => {
  it('before SET_IOMMU EINVAL; an unknown name ENODEV (docs/conformance.md §2.5); a known one a new fd', async () => {
    const s = await setup('none');
    const g = s.createGroup('G', 'iommu', { devices: ['0000:65:00.0', '0000:65:00.1'] });
    must(s.attach('G'), 'attach');
    expect(s.proc.ioctl(s.gfds.G, uapi.VFIO_GROUP_GET_DEVICE_FD, '0000:65:00.0')).toBe(-errno.EINVAL);
    must(s.proc.ioctl(s.cfd, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU), 'SET_IOMMU');
    expect(s.proc.ioctl(s.gfds.G, uapi.VFIO_GROUP_GET_DEVICE_FD, 'nope')).toBe(-errno.ENODEV);
    const a = s.proc.ioctl(s.gfds.G, uapi.VFIO_GROUP_GET_DEVICE_FD, g.devices[0].name);
    const b = s.proc.ioctl(s.gfds.G, uapi.VFIO_GROUP_GET_DEVICE_FD, g.devices[1].name);
    expect(a).toBeGreaterThanOrEqual(0);
    expect(b).toBeGreaterThanOrEqual(0);
    expect(new Set([a, b, s.cfd, s.gfds.G]).size).toBe(4);
  });

  it('a group with no container is EINVAL', async () => {
    const s = await setup('none');
    const g = s.createGroup('G', 'iommu');
    const gfd = must(s.proc.open(`/dev/vfio/${g.id}`), 'open');
    expect(s.proc.ioctl(gfd, uapi.VFIO_GROUP_GET_DEVICE_FD, g.devices[0].name)).toBe(-errno.EINVAL);
  });
});

describe('§2 UNSET_CONTAINER and closing', () => {
  it('no container is EINVAL; device fds open is EBUSY', async () => {
    const s = await setup('I');
    const g2 = s.createGroup('G2', 'iommu', { devices: ['0000:66:00.0'] });
    const g2fd = must(s.proc.open(`/dev/vfio/${g2.id}`), 'open');
    expect(s.proc.ioctl(g2fd, uapi.VFIO_GROUP_UNSET_CONTAINER)).toBe(-errno.EINVAL);
    failsCleanly(s, errno.EBUSY, () => s.proc.ioctl(s.gfds.G, uapi.VFIO_GROUP_UNSET_CONTAINER));
    must(s.proc.close(s.devFds[s.dev.G.name]), 'close device');
    expect(s.proc.ioctl(s.gfds.G, uapi.VFIO_GROUP_UNSET_CONTAINER)).toBe(0);
  });

  it('the last group leaving releases the IOMMU and discards every mapping, pin and tracking state', async () => {
    const s = await setup('I');
    must(s.MAP(0x10000n, P(4)), 'MAP');
    must(s.START(), 'START');
    expect(s.proc.lockedVm).toBe(4n);
    must(s.proc.close(s.devFds[s.dev.G.name]), 'close device');
    expect(s.proc.ioctl(s.gfds.G, uapi.VFIO_GROUP_UNSET_CONTAINER)).toBe(0);
    expect(s.proc.lockedVm).toBe(0n);
    const c = s.container();
    expect([c.iommu, c.tracking, c.dmas, c.groups]).toEqual([null, false, [], []]);
    expect(s.MAP(0x10000n, P(1))).toBe(-errno.EINVAL); // no driver
    expect(s.info().ret).toBe(-errno.EINVAL);
    // A later group and SET_IOMMU start from zero.
    expect(s.attach('G')).toBe(0);
    must(s.proc.ioctl(s.cfd, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU), 'SET_IOMMU');
    const d = s.container();
    expect([d.tracking, d.dmas, d.dmaAvail]).toEqual([false, [], 65535]);
  });

  it('closing the last group fd detaches the same way (E: every dma freed)', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(4)), 'MAP');
    must(s.PIN('M', 0n, 1), 'PIN');
    must(s.proc.close(s.devFds[s.dev.M.name]), 'close device');
    expect(s.proc.close(s.gfds.M)).toBe(0);
    const c = s.container();
    expect([c.iommu, c.dmas, c.groups]).toEqual([null, [], []]);
    // lockedVm is not asserted: docs/conformance.md §2.7 says the dmas are freed "with a warning if devices are
    // still registered" but not whether a pin the driver never released is uncharged.
    expect(s.proc.open(`/dev/vfio/${s.groups.M.id}`)).toBeGreaterThanOrEqual(0);
  });

  it('a group leaving a domain that keeps other groups leaves mappings untouched', async () => {
    const s = await setup('I');
    must(s.MAP(0x10000n, P(4)), 'MAP');
    s.createGroup('G2', 'iommu', { devices: ['0000:66:00.0'] });
    must(s.attach('G2'), 'attach G2');
    expect(s.proc.ioctl(s.gfds.G2, uapi.VFIO_GROUP_UNSET_CONTAINER)).toBe(0);
    expect(s.dmas()).toEqual([[0x10000n, P(4)]]);
    expect(s.container().dmas[0].iommuMapped).toBe(true);
    expect(s.proc.lockedVm).toBe(4n);
    expect(s.container().nonPinnedGroups).toBe(1);
  });

  it('§2.7: closing a group fd with a device fd open defers the detach to the last device close', async () => {
    const s = await setup('I');
    must(s.MAP(0x10000n, P(2)), 'MAP');
    const path = `/dev/vfio/${s.groups.G.id}`;
    expect(s.proc.close(s.gfds.G)).toBe(0);
    expect(s.container().groups).toEqual([s.groups.G.id]);
    expect(s.dmas()).toEqual([[0x10000n, P(2)]]);
    expect(s.proc.open(path)).toBe(-errno.EBUSY);
    expect(s.MAP(0x20000n, P(1))).toBe(0); // the container still has its IOMMU
    expect(s.proc.close(s.devFds[s.dev.G.name])).toBe(0);
    const c = s.container();
    expect([c.iommu, c.dmas, c.groups]).toEqual([null, [], []]);
    expect(s.proc.lockedVm).toBe(0n);
    expect(s.proc.open(path)).toBeGreaterThanOrEqual(0);
  });
});
