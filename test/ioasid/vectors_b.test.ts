// The acceptance vectors of VFIO_IOMMU_PASID_REQUEST (group B), by name (docs/conformance.md
// §15.6, §15.7).
import { describe, expect, it } from 'vitest';
import { createEngine, errno, uapi, type Engine } from '../../src/index.js';
import type { IoasidNbArgs } from '../../src/ioasid/ioasid.js';
import { buf, setupP, vfioSetup } from './setup_p.js';

const { EINVAL, EFAULT, EOPNOTSUPP, ENOSPC } = errno;
const { VFIO_IOMMU_PASID_REQUEST: REQ_IOCTL, VFIO_GROUP_SET_CONTAINER, VFIO_SET_IOMMU } = uapi;

function globalLog(engine: Engine) {
  const log: [number, IoasidNbArgs][] = [];
  engine.ioasid.addNotifier((e, a) => {
    log.push([e, a]);
  });
  return log;
}

describe('PASID_REQUEST vectors B', () => {
  it('setup P makes the VM set', async () => {
    const { engine, P1 } = await setupP();
    expect(engine.ioasid.setInfo(1)).toEqual({
      sid: 1, token: P1, quota: 1000, used: 0, destroying: false, owner: 'vfio',
    });
    expect(engine.ioasid.getAvailable()).toBe(1014808);
  });

  it('V18. Checks', async () => {
    const { engine, P1, c1, REQ } = await setupP();
    expect(P1.ioctl(c1, REQ_IOCTL, new Uint8Array(12))).toBe(-EFAULT);
    expect(REQ(12, 1, 1, 10)).toBe(-EINVAL);
    expect(REQ(16, 4, 1, 10)).toBe(-EINVAL);
    expect(REQ(16, 1, 10, 5)).toBe(-EINVAL);
    expect(REQ(16, 1, 1, 0x80000000)).toBe(-EINVAL);
    expect(REQ(16, 1, 0x80000001, 0x80000002)).toBe(-EINVAL);
    expect(REQ(16, 3, 1, 10)).toBe(-EINVAL);
    expect(REQ(16, 0, 1, 10)).toBe(-EINVAL);
    expect(engine.ioasid.setInfo(1)!.used).toBe(0);
    const b = buf(16, 1, 1, 0xfffff);
    const b20 = buf(20, 1, 1, 0xfffff, 20);
    const before = [b.slice(), b20.slice()];
    expect(P1.ioctl(c1, REQ_IOCTL, b)).toBe(1);
    expect(P1.ioctl(c1, REQ_IOCTL, b)).toBe(2);
    expect(P1.ioctl(c1, REQ_IOCTL, b20)).toBe(3);
    expect([b, b20]).toEqual(before);
    expect(engine.ioasid.setInfo(1)!.used).toBe(3);

    const P2 = engine.createProcess();
    const plain = engine.createGroup({ kind: 'iommu' });
    const { c } = vfioSetup(P2, plain);
    const R2 = (f: number, min: number, max: number) => P2.ioctl(c, REQ_IOCTL, buf(16, f, min, max));
    expect(R2(1, 1, 10)).toBe(-EOPNOTSUPP);
    expect(R2(0, 1, 10)).toBe(-EOPNOTSUPP);
    expect(R2(4, 1, 10)).toBe(-EINVAL);
    expect(R2(1, 10, 5)).toBe(-EINVAL);
  });

  it('V18. no driver set: EINVAL; type1 (v1): EOPNOTSUPP', async () => {
    const engine = await createEngine();
    const P = engine.createProcess();
    const c = P.open('/dev/vfio/vfio');
    expect(P.ioctl(c, REQ_IOCTL, buf(16, 1, 1, 10))).toBe(-EINVAL);
    const G = engine.createGroup({ kind: 'iommu', syswidePasid: true });
    const g = P.open(`/dev/vfio/${G.id}`);
    expect(P.ioctl(g, VFIO_GROUP_SET_CONTAINER, c)).toBe(0);
    expect(P.ioctl(c, VFIO_SET_IOMMU, 1)).toBe(0);
    expect(P.ioctl(c, REQ_IOCTL, buf(16, 1, 1, 10))).toBe(-EOPNOTSUPP);
    expect(engine.ioasid.setInfo(1)).toBe(null);
  });

  it('V19. Quota and FREE ranges', async () => {
    const { engine, REQ, ALLOC } = await setupP({ vfioPasidQuota: 3 });
    expect([ALLOC(), ALLOC(), ALLOC()]).toEqual([1, 2, 3]);
    expect(ALLOC()).toBe(-ENOSPC);
    expect(engine.ioasid.getAvailable()).toBe(1015805);
    expect(REQ(16, 2, 2, 2)).toBe(0);
    expect(ALLOC()).toBe(2);
    expect(REQ(16, 2, 100, 200)).toBe(0);
    expect(REQ(16, 2, 0, 0x7fffffff)).toBe(0);
    expect(engine.ioasid.setInfo(1)!.used).toBe(0);
    expect(ALLOC()).toBe(1);
  });

  it('V21. Notifications', async () => {
    const { engine, P1, REQ, ALLOC } = await setupP();
    const G: [number, IoasidNbArgs][] = globalLog(engine);
    const S: [number, IoasidNbArgs][] = [];
    engine.ioasid.addNotifier((e, a) => {
      S.push([e, a]);
    }, { sid: 1 });
    expect([ALLOC(), ALLOC(), ALLOC()]).toEqual([1, 2, 3]);
    const pl = (id: number) => ({ id, sid: 1, token: P1, pdata: null });
    expect(S).toEqual([[1, pl(1)], [1, pl(2)], [1, pl(3)]]);
    expect(G).toEqual([]);
    expect(engine.ioasid.idInfo(1)!.owner).toBe('vfio');
    S.length = 0;
    const order: string[] = [];
    engine.ioasid.addNotifier((e, a) => {
      order.push(`G${a.id}`);
    }, { priority: 0 });
    engine.ioasid.addNotifier((e, a) => {
      order.push(`S${a.id}`);
    }, { sid: 1 });
    expect(REQ(16, 2, 1, 3)).toBe(0);
    expect(G).toEqual([[2, pl(1)], [2, pl(2)], [2, pl(3)]]);
    expect(S).toEqual([[2, pl(1)], [2, pl(2)], [2, pl(3)]]);
    expect(order).toEqual(['G1', 'S1', 'G2', 'S2', 'G3', 'S3']);
  });

  it('V22. Shared vmm and release', async () => {
    const { engine, P1, g1, ALLOC } = await setupP();
    expect([ALLOC(), ALLOC()]).toEqual([1, 2]);
    const G = globalLog(engine);
    const G2 = engine.createGroup({ kind: 'iommu', syswidePasid: true });
    const { c: c2, g: g2 } = vfioSetup(P1, G2);
    expect(engine.ioasid.setInfo(2)).toBe(null);
    expect(engine.ioasid.getAvailable()).toBe(1014808);
    expect(ALLOC(c2)).toBe(3);
    expect(P1.close(g1)).toBe(0);
    expect(G).toEqual([]);
    expect(ALLOC()).toBe(-EINVAL);
    expect(ALLOC(c2)).toBe(4);
    expect(P1.close(g2)).toBe(0);
    expect(G).toEqual([1, 2, 3, 4].map((id) => [2, { id, sid: 1, token: P1, pdata: null }]));
    expect(engine.ioasid.setInfo(1)).toBe(null);
    expect(engine.ioasid.getAvailable()).toBe(1015808);
  });

  it('an attach whose VM set cannot be made fails with ENOSPC and is undone', async () => {
    const engine = await createEngine({ ioasidCapacity: 100, ioasidSystemQuota: 10, vfioPasidQuota: 91 });
    const P = engine.createProcess();
    const G = engine.createGroup({ kind: 'iommu', syswidePasid: true });
    const c = P.open('/dev/vfio/vfio');
    const g = P.open(`/dev/vfio/${G.id}`);
    expect(P.ioctl(g, VFIO_GROUP_SET_CONTAINER, c)).toBe(0);
    expect(P.ioctl(c, VFIO_SET_IOMMU, 3)).toBe(-ENOSPC);
    expect(engine.ioasid.getAvailable()).toBe(90);
    expect(engine.ioasid.setInfo(1)).toBe(null);
    expect(G.attached).toBe(false);
    expect(engine.ioasid.adjustSet(0, 9)).toBe(0);
    expect(P.ioctl(c, VFIO_SET_IOMMU, 3)).toBe(0);
    expect(engine.ioasid.setInfo(1)!.quota).toBe(91);
  });

  it('createGroup: syswidePasid with kind emulated throws TypeError', async () => {
    const engine = await createEngine();
    expect(() => engine.createGroup({ kind: 'emulated', syswidePasid: true })).toThrow(TypeError);
  });
});
