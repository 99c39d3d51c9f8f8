// KVM-VFIO releases inside a type1 dma_unmap op (docs/conformance.md §14.3, §19.9: a call that
// would change the running container's groups gets -EDEADLK and changes nothing; an entry holds
// its file, so a close that leaves a file held by an entry releases nothing and is allowed).
import { describe, expect, it } from 'vitest';
import { errno, uapi } from '../../src/index.js';
import { dmaUnmap } from '../helpers/uapi_structs.js';
import { setupKV, type KV } from './setup.js';

const { EDEADLK, EINVAL } = errno;

/** UNMAP_DMA of [0, 0x1000) on the container: D's op runs `inside` once, after unpinning. */
function unmapRunning(k: KV, inside: () => void): number {
  k.D.registerDmaUnmap(() => {
    k.D.unpinPages(0n, 1);
    inside();
  });
  expect(k.D.pinPages(0n, 1, 3)).toBe(1);
  return k.P.ioctl(k.cfd, uapi.VFIO_IOMMU_UNMAP_DMA, dmaUnmap({ argsz: 24, flags: 0, iova: 0n, size: 0x1000n }));
}

/** A second emulated group in k's container, its fd open. */
function secondGroup(k: KV): { gfd2: number; id: number } {
  const M2 = k.engine.createGroup({ kind: 'emulated', devices: ['vgpu1'] });
  const gfd2 = k.P.open(`/dev/vfio/${M2.id}`);
  expect(k.P.ioctl(gfd2, uapi.VFIO_GROUP_SET_CONTAINER, k.cfd)).toBe(0);
  return { gfd2, id: M2.id };
}

describe('KVM-VFIO closes inside a dma_unmap op', () => {
  it('closing the KVM-VFIO fd whose release would detach the running group: -EDEADLK, nothing changed', async () => {
    const k = await setupKV();
    expect(k.MAP(0n, 0x1000n)).toBe(0);
    expect(k.ADD(k.gfd)).toBe(0);
    const dfd = k.dfd();
    expect(k.ADD(dfd)).toBe(0);
    expect(k.P.close(dfd)).toBe(0);
    expect(k.P.close(k.gfd)).toBe(0);
    let inside: number | undefined;
    let unlinks = 0;
    k.D.registerKvmUnlink(() => void unlinks++);
    expect(unmapRunning(k, () => void (inside = k.P.close(k.kv)))).toBe(0);
    expect(inside).toBe(-EDEADLK);
    expect([k.M.kvm, k.D.kvm, k.kvm.usersCount, unlinks, k.P.fds.has(k.kv)]).toEqual([k.kvm, k.kvm, 3, 0, true]);
    expect(k.MAP(0x1000n, 0x1000n)).toBe(0); // the group is still in the container
    expect(k.P.close(k.kv)).toBe(0);
    expect([k.M.kvm, k.D.kvm, k.kvm.usersCount, unlinks]).toEqual([null, null, 1, 1]);
    expect(k.MAP(0x2000n, 0x1000n)).toBe(-EINVAL); // detached: the container lost its only group
  });

  it('closing a group fd held by an entry releases nothing: allowed', async () => {
    const k = await setupKV();
    expect(k.MAP(0n, 0x1000n)).toBe(0);
    k.dfd();
    const { gfd2, id } = secondGroup(k);
    expect(k.ADD(gfd2)).toBe(0);
    let inside: number | undefined;
    expect(unmapRunning(k, () => void (inside = k.P.close(gfd2)))).toBe(0);
    expect(inside).toBe(0);
    expect(k.P.open(`/dev/vfio/${id}`)).toBe(-errno.EBUSY); // the entry keeps the group file
  });

  it('closing the last device fd of a group whose file an entry holds: allowed', async () => {
    const k = await setupKV();
    expect(k.MAP(0n, 0x1000n)).toBe(0);
    k.dfd();
    const { gfd2 } = secondGroup(k);
    const dfd2 = k.P.ioctl(gfd2, uapi.VFIO_GROUP_GET_DEVICE_FD, 'vgpu1');
    expect(dfd2).toBeGreaterThan(0);
    expect(k.ADD(gfd2)).toBe(0);
    expect(k.P.close(gfd2)).toBe(0);
    let inside: number | undefined;
    expect(unmapRunning(k, () => void (inside = k.P.close(dfd2)))).toBe(0);
    expect(inside).toBe(0);
  });

  it('the same closes still answer -EDEADLK when they would release the group file', async () => {
    const k = await setupKV();
    expect(k.MAP(0n, 0x1000n)).toBe(0);
    k.dfd();
    const { gfd2 } = secondGroup(k);
    const dfd2 = k.P.ioctl(gfd2, uapi.VFIO_GROUP_GET_DEVICE_FD, 'vgpu1');
    expect(k.P.close(gfd2)).toBe(0);
    let inside: number | undefined;
    expect(unmapRunning(k, () => void (inside = k.P.close(dfd2)))).toBe(0);
    expect(inside).toBe(-EDEADLK);
  });
});
