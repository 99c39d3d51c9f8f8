// IOMMU groups and their devices in the reference model (docs/conformance.md §2), and the group
// fd's ioctls: GET_STATUS, SET_CONTAINER, UNSET_CONTAINER, GET_DEVICE_FD.
import type { RefContainer } from './container.js';
import type { RefEngine } from './engine.js';
import { refDmaRw, refPinPages, refUnpinPages } from './pin.js';
import type { RefProcess } from './process.js';
import {
  EBADF, EBADFD, EBUSY, EFAULT, EINVAL, ENODEV, ENOTTY, EPERM, VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE, VFIO_GROUP_GET_DEVICE_FD, VFIO_GROUP_GET_STATUS, VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER, rd32, wr32,
} from './uapi.js';

export interface RefGroupOptions {
  kind: 'iommu' | 'emulated';
  devices?: string[];
  viable?: boolean;
  pgsizeBitmap?: bigint;
  aperture?: [bigint, bigint];
  reserved?: [bigint, bigint][];
}

export class RefGroup {
  readonly engine: RefEngine;
  readonly id: number;
  readonly kind: 'iommu' | 'emulated';
  readonly devices: RefDevice[];
  readonly viable: boolean;
  readonly pgsizeBitmap: bigint;
  /** Inclusive IOVA aperture. */
  readonly aperture: [bigint, bigint];
  /** Inclusive reserved regions. */
  readonly reserved: [bigint, bigint][];
  /** The group fd itself is open. */
  fdOpen = false;
  /** Open device fds obtained from this group (each holds the group file). */
  deviceFds = 0;
  /** The container set with SET_CONTAINER, or null. */
  container: RefContainer | null = null;

  constructor(engine: RefEngine, id: number, o: RefGroupOptions) {
    this.engine = engine;
    this.id = id;
    this.kind = o.kind;
    this.devices = (o.devices ?? [`group${id}-dev0`]).map((n) => new RefDevice(this, n));
    this.viable = o.viable ?? true;
    this.pgsizeBitmap = o.pgsizeBitmap ?? 0x40201000n;
    this.aperture = o.aperture ?? [0n, 0xffff_ffff_ffffn];
    this.reserved = o.reserved ?? [[0xfee0_0000n, 0xfeef_ffffn]];
  }

  /** The group file is alive: its fd or any device fd from it is open. */
  get fileOpen(): boolean {
    return this.fdOpen || this.deviceFds > 0;
  }

  /** The last reference to the group file went away: detach from the container (docs/conformance.md §2). */
  releaseFile(): void {
    if (this.container) this.container.detachGroup(this);
  }
}

export class RefDevice {
  readonly group: RefGroup;
  readonly name: string;
  /** The vendor driver's dma_unmap op. */
  dmaUnmap: ((iova: bigint, size: bigint) => void) | null = null;
  /** Open device fds. */
  openCount = 0;

  constructor(group: RefGroup, name: string) {
    this.group = group;
    this.name = name;
  }

  /** Open and with an op: may pin and is notified of unmaps. */
  get participating(): boolean {
    return this.openCount > 0 && this.dmaUnmap !== null;
  }

  registerDmaUnmap(op: (iova: bigint, size: bigint) => void): void {
    this.dmaUnmap = op;
  }

  pinPages(iova: bigint, npage: number, prot: number, _pfns?: BigUint64Array): number {
    return refPinPages(this, iova, npage, prot);
  }

  unpinPages(iova: bigint, npage: number): void {
    refUnpinPages(this, iova, npage);
  }

  dmaRw(iova: bigint, data: Uint8Array, write: boolean): number {
    return refDmaRw(this, iova, data, write);
  }
}

/** An ioctl on a group fd. */
export function groupIoctl(proc: RefProcess, g: RefGroup, req: number, arg: unknown): number {
  switch (req) {
    case VFIO_GROUP_GET_STATUS:
      return getStatus(g, arg);
    case VFIO_GROUP_SET_CONTAINER:
      return setContainer(proc, g, arg);
    case VFIO_GROUP_UNSET_CONTAINER:
      if (!g.container) return -EINVAL;
      if (g.deviceFds > 0) return -EBUSY; // container_users != 1
      g.container.detachGroup(g);
      return 0;
    case VFIO_GROUP_GET_DEVICE_FD:
      return getDeviceFd(proc, g, arg);
    default:
      return -ENOTTY;
  }
}

function getStatus(g: RefGroup, arg: unknown): number {
  if (!(arg instanceof Uint8Array) || arg.length < 8) return -EFAULT;
  if (rd32(arg, 0) < 8) return -EINVAL;
  let flags = 0;
  if (g.container) flags = VFIO_GROUP_FLAGS_CONTAINER_SET | VFIO_GROUP_FLAGS_VIABLE;
  else if (g.viable) flags = VFIO_GROUP_FLAGS_VIABLE;
  wr32(arg, 4, flags); // argsz (bytes 0..3) is copied back unchanged
  return 0;
}

function setContainer(proc: RefProcess, g: RefGroup, arg: unknown): number {
  const fd = Number(arg);
  const entry = proc.fds.get(fd);
  if (!entry) return -EBADF;
  if (g.container) return -EINVAL;
  if (entry.kind !== 'container') return -EBADFD;
  if (!g.viable) return -EPERM;
  return entry.container.attachGroup(g);
}

function getDeviceFd(proc: RefProcess, g: RefGroup, arg: unknown): number {
  const name = String(arg);
  const dev = g.devices.find((d) => d.name === name);
  if (!dev) return -ENODEV;
  if (!g.container || !g.container.iommu) return -EINVAL;
  dev.openCount++;
  g.deviceFds++;
  return proc.allocFd({ kind: 'device', device: dev });
}
