// Setup P of the PASID acceptance vectors: a process whose TYPE1v2 container holds a syswidePasid
// group, and the PASID_REQUEST notation (REQ, ALLOC).
import { expect } from 'vitest';
import { createEngine, uapi, type Process } from '../../src/index.js';

const { VFIO_IOMMU_PASID_REQUEST: REQ_IOCTL, VFIO_GROUP_SET_CONTAINER, VFIO_SET_IOMMU } = uapi;

export function buf(argsz: number, flags: number, min: number, max: number, len = 16): Uint8Array {
  const b = new Uint8Array(len);
  const v = new DataView(b.buffer);
  v.setUint32(0, argsz, true);
  v.setUint32(4, flags, true);
  v.setUint32(8, min, true);
  v.setUint32(12, max, true);
  return b;
}

/** A container of `proc` holding `group`, driver type 3: { c, g } fds. */
export function vfioSetup(proc: Process, group: { id: number }) {
  const c = proc.open('/dev/vfio/vfio');
  const g = proc.open(`/dev/vfio/${group.id}`);
  expect(proc.ioctl(g, VFIO_GROUP_SET_CONTAINER, c)).toBe(0);
  expect(proc.ioctl(c, VFIO_SET_IOMMU, 3)).toBe(0);
  return { c, g };
}

export async function setupP(o: { vfioPasidQuota?: number } = {}) {
  const engine = await createEngine(o);
  const P1 = engine.createProcess();
  const G1 = engine.createGroup({ kind: 'iommu', syswidePasid: true });
  const { c: c1, g: g1 } = vfioSetup(P1, G1);
  const REQ = (argsz: number, flags: number, min: number, max: number, fd = c1, p = P1) =>
    p.ioctl(fd, REQ_IOCTL, buf(argsz, flags, min, max));
  const ALLOC = (fd = c1) => REQ(16, 1, 1, 0xfffff, fd);
  return { engine, P1, G1, c1, g1, REQ, ALLOC };
}

