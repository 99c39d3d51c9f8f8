// Setup KC: setup K of the KVM acceptance vectors with device cdevs (docs/conformance.md §20.1) as
// KVM-VFIO files.
import { expect } from 'vitest';
import { uapi } from '../../src/index.js';
import type { Group, VfioDevice } from '../../src/vfio/group.js';
import type { CdevFile } from '../../src/iommufd/device.js';
import { Iommufd } from '../devdirty/helpers.js';
import { u32 } from '../helpers/uapi_structs.js';
import { createDevice, deviceAttr, setupK, type K } from './setup.js';

/** Setup K plus an IOMMU group with devices d0 and d1, /dev/iommu with an IOAS, and a KVM-VFIO device. */
export async function setupKC(k?: K): Promise<KC> {
  const base = k ?? (await setupK());
  const { engine, P } = base;
  const G = engine.createGroup({ kind: 'iommu', iommuDirtyTracking: true, devices: ['d0', { name: 'd1', dmaLogging: true }] });
  const [D, D1] = G.devices;
  const I = P.open('/dev/iommu');
  const fd = new Iommufd(P, I);
  const ioas = fd.ioasAlloc();
  const va = P.mmap(0x10000);
  expect(fd.map(ioas, 0n, 0x10000n, va, 7).ret).toBe(0);
  const kv = newKvmVfio(base);
  const fdBuf = P.mmap(4096);
  /** KVM_SET_DEVICE_ATTR, in two steps: the fd is written to user memory, then the ioctl runs. */
  const attrCall = (dev: number, attr: number, f: number): (() => number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, f, true);
    P.write(fdBuf, b);
    const arg = deviceAttr(0, 1, BigInt(attr), fdBuf);
    return () => P.ioctl(dev, uapi.KVM_SET_DEVICE_ATTR, arg);
  };
  const ATTR = (dev: number, attr: number, f: number): number => attrCall(dev, attr, f)();
  const s: KC = {
    ...base, G, D, D1, I, fd, ioas, va, kv, ATTR, attrCall,
    ADD: (f: number, dev = s.kv) => ATTR(dev, 1, f),
    DEL: (f: number, dev = s.kv) => ATTR(dev, 2, f),
    cdev: (d = D) => P.open(d.cdevPath!),
    file: (c: number) => P.fds.get(c) as CdevFile,
  };
  return s;
}

/** Setup KC's fields beyond K. */
export interface KC extends K {
  G: Group;
  D: VfioDevice;
  D1: VfioDevice;
  /** The /dev/iommu fd, its calls, its IOAS (id 1) mapping [0, 0x10000) at `va`. */
  I: number;
  fd: Iommufd;
  ioas: number;
  va: bigint;
  /** The KVM-VFIO device fd. */
  kv: number;
  ATTR(dev: number, attr: number, f: number): number;
  attrCall(dev: number, attr: number, f: number): () => number;
  ADD(f: number, dev?: number): number;
  DEL(f: number, dev?: number): number;
  /** A new fd of the device's cdev (D by default). */
  cdev(d?: VfioDevice): number;
  /** The cdev file behind fd c. */
  file(c: number): CdevFile;
}

/** A KVM-VFIO device on k's VM: its fd. */
export function newKvmVfio(k: K): number {
  const cd = createDevice(4, 0, 0);
  expect(k.P.ioctl(k.vm, uapi.KVM_CREATE_DEVICE, cd)).toBe(0);
  return u32(cd, 4);
}

