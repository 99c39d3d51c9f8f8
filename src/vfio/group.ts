// IOMMU groups and the devices in them, as the host (and a vendor driver) sees them.
import { EBUSY } from '../../assembly/constants.js';
import type { Container } from './container.js';
import type { Kvm } from '../kvm/kvm.js';
import { callbackScope } from '../kvm/callbacks.js';
import type { Engine } from '../engine.js';
import { pinPages, unpinPages, dmaRw } from './pin.js';
import { resolveDevices, type DeviceSpec, type DeviceState } from './device_state.js';
import { dmaRead, dmaWrite } from './device_dma.js';

/** 'iommu': behind a real IOMMU (has a domain); 'emulated': a mediated device (DMA only by pinning). */
export type GroupKind = 'iommu' | 'emulated';

export interface GroupOptions {
  /** Default 'iommu'. */
  kind?: GroupKind;
  /** Devices: names, or { name, dmaLogging?, migrationFlags? }; default one device named after the group. */
  devices?: DeviceSpec[];
  /** Default true; SET_CONTAINER of a non-viable group fails with EPERM. */
  viable?: boolean;
  /** IOMMU page sizes ('iommu' only); default 0x40201000n (4 KiB | 2 MiB | 1 GiB). */
  pgsizeBitmap?: bigint;
  /** Inclusive IOVA aperture ('iommu' only); default [0, 0xffff_ffff_ffff]. */
  aperture?: [bigint, bigint];
  /** Inclusive reserved regions ('iommu' only); default the x86 MSI window. */
  reserved?: [bigint, bigint][];
  /**
   * Behind an IOMMU that needs system-wide PASIDs (docs/conformance.md §15.6); 'iommu' only,
   * default false.
   */
  syswidePasid?: boolean;
  /** The IOMMU reports IOMMU_CAP_DIRTY_TRACKING ('iommu' only); default false. */
  iommuDirtyTracking?: boolean;
  /** IOPTEs use the largest page sizes the mapping allows ('iommu' only); default false. */
  hugeIoptes?: boolean;
}

/** The open group file: alive while its fd is open or any device fd obtained from it is. */
export interface GroupFile {
  group: Group;
  /** The group fd itself is still open. */
  fdOpen: boolean;
  /** Device fds obtained through this group file and still open. */
  deviceFds: number;
  /** KVM-VFIO entries holding the file (docs/conformance.md §19.9); absent means 0. */
  kvmRefs?: number;
}

export class Group {
  readonly engine: Engine;
  /** The group's number: its file is /dev/vfio/<id>. */
  readonly id: number;
  readonly kind: GroupKind;
  readonly devices: VfioDevice[];
  readonly viable: boolean;
  readonly pgsizeBitmap: bigint;
  readonly aperture: readonly [bigint, bigint];
  readonly reserved: readonly (readonly [bigint, bigint])[];
  /** The open group file, or null while the group is not open. */
  file: GroupFile | null = null;
  /** The container the group is set to (SET_CONTAINER), or null. */
  container: Container | null = null;
  /** Attached to the container's IOMMU driver (after SET_IOMMU). */
  attached = false;
  /** pinned_page_dirty_scope: every DMA of this group goes through pinning or dma_rw. */
  pinnedScope = false;
  /**
   * The KVM of the group file (docs/conformance.md §19.9): set by KVM-VFIO FILE_ADD, cleared by
   * DEL/release.
   */
  kvm: Kvm | null = null;
  private removedFlag = false;
  /**
   * Its IOMMU needs system-wide PASIDs: a TYPE1v2 container then holds a vmm (docs/conformance.md
   * §15.6).
   */
  readonly syswidePasid: boolean;
  /** IOMMU_CAP_DIRTY_TRACKING of the group's IOMMU. */
  readonly iommuDirtyTracking: boolean;
  /** Huge IOPTEs in its iommufd domains (docs/conformance.md §21.4). */
  readonly hugeIoptes: boolean;
  /** Bound cdev files of its devices: the group file cannot be opened while any lives. */
  boundCdevs = 0;

  constructor(engine: Engine, id: number, o: GroupOptions) {
    this.engine = engine;
    this.id = id;
    this.kind = o.kind ?? 'iommu';
    if (this.kind !== 'iommu' && this.kind !== 'emulated') {
      throw new RangeError(`group kind must be 'iommu' or 'emulated', not '${String(o.kind)}'`);
    }
    const emulated = this.kind === 'emulated';
    if (emulated && (o.iommuDirtyTracking || o.hugeIoptes)) {
      throw new RangeError('iommuDirtyTracking and hugeIoptes are for kind: \'iommu\' groups only');
    }
    this.iommuDirtyTracking = o.iommuDirtyTracking ?? false;
    this.hugeIoptes = o.hugeIoptes ?? false;
    const resolved = resolveDevices(o.devices, id, emulated);
    this.viable = o.viable ?? true;
    this.syswidePasid = o.syswidePasid ?? false;
    if (typeof this.syswidePasid !== 'boolean' || (this.syswidePasid && this.kind !== 'iommu')) {
      throw new TypeError("syswidePasid must be a boolean, and true only for kind 'iommu'");
    }
    this.pgsizeBitmap = o.pgsizeBitmap ?? 0x40201000n;
    this.aperture = o.aperture ?? [0n, 0xffff_ffff_ffffn];
    this.reserved = o.reserved ?? [[0xfee0_0000n, 0xfeef_ffffn]];
    if (typeof this.pgsizeBitmap !== 'bigint' || this.pgsizeBitmap <= 0n || this.pgsizeBitmap >= 1n << 64n) {
      throw new RangeError('pgsizeBitmap must be a non-zero u64 bigint');
    }
    const [a0, a1] = this.aperture;
    if (typeof a0 !== 'bigint' || typeof a1 !== 'bigint' || a0 < 0n || a1 < a0 || a1 >= 1n << 64n) {
      throw new RangeError('aperture must be [start, end] bigints with start <= end < 2^64');
    }
    for (const r of this.reserved) {
      if (!Array.isArray(r) || typeof r[0] !== 'bigint' || typeof r[1] !== 'bigint' || r[1] < r[0] || r[0] < 0n) {
        throw new RangeError('reserved regions must be [start, end] bigints with start <= end');
      }
    }
    this.devices = resolved.map((d) => new VfioDevice(this, d.name, engine.devicesCreated++, d.state));
  }

  /** The device named `name`, or undefined. */
  device(name: string): VfioDevice | undefined {
    return this.devices.find((d) => d.name === name);
  }

  /** True once `remove()` has succeeded. */
  get removed(): boolean {
    return this.removedFlag;
  }

  /** The same as `removed` (the lifetime getter every engine object has). */
  get isDisposed(): boolean {
    return this.removedFlag;
  }

  /**
   * Removes the group from the host, as unbinding its devices from VFIO does: 0, or -EBUSY while
   * the group file is open (its fd, or a device fd obtained through it). The kernel's removal
   * waits for the device fds to close; the engine cannot wait, so it refuses, and nothing
   * changes. Afterwards `/dev/vfio/<id>` is ENOENT, the engine no longer lists the group, and its
   * number is never handed out again. 0 and nothing if already removed. Throws inside a KVM
   * callback.
   */
  remove(): number {
    callbackScope(this.engine).forbid('group.remove'); // not from a KVM callback
    if (this.removedFlag) return 0; // engine.dispose() removes every group before it ends
    if (this.file || this.boundCdevs > 0) return -EBUSY; // a bound cdev holds its device too
    this.removedFlag = true;
    this.engine.forgetGroup(this);
    return 0;
  }
}

/**
 * A device as its vendor (mdev) driver holds it: the kernel-internal API (docs/conformance.md §6).
 */
export class VfioDevice {
  readonly group: Group;
  readonly name: string;
  /** The driver's dma_unmap op, or null before registerDmaUnmap. */
  dmaUnmap: ((iova: bigint, size: bigint) => void) | null = null;
  /** Open device fds. */
  openCount = 0;
  /** Order in which devices started to take part (open with an op): notification order. */
  joinSeq = 0;
  /**
   * The VM taken from the group's KVM when the device opened, with a reference (docs/conformance.md
   * §19.9).
   */
  kvm: Kvm | null = null;
  /** Called when the file that gave `kvm` loses that KVM (docs/conformance.md §19.9), or null. */
  kvmUnlink: ((kvm: Kvm) => void) | null = null;
  /** The device index N: engine-wide creation order from 0, never reused. */
  readonly index: number;
  /** `/dev/vfio/devices/vfio<N>` for a device of an IOMMU-backed group, else null. */
  readonly cdevPath: string | null;
  /** Tracker, migration flags, DMA log and iommufd binding (docs/conformance.md §20). */
  readonly state: DeviceState;

  constructor(group: Group, name: string, index: number, state: DeviceState) {
    this.group = group;
    this.name = name;
    this.index = index;
    this.cdevPath = group.kind === 'iommu' ? `/dev/vfio/devices/vfio${index}` : null;
    this.state = state;
  }

  /**
   * The device's own DMA write through its IOMMU mappings: 0 or -errno (docs/conformance.md §20.2).
   */
  dmaWrite(iova: bigint, data: Uint8Array): number {
    return dmaWrite(this, iova, data);
  }

  /** The device's own DMA read through its IOMMU mappings: the bytes, or -errno. */
  dmaRead(iova: bigint, length: number): Uint8Array | number {
    return dmaRead(this, iova, length);
  }

  /** Open and registered: may pin and is notified of unmaps. */
  get participating(): boolean {
    return this.openCount > 0 && this.dmaUnmap !== null;
  }

  /** Throws once the engine is disposed (the driver-side calls below check it first). */
  private live(): void {
    if (this.group.engine.isDisposed) throw new Error('engine disposed');
  }

  /**
   * Registers the driver's dma_unmap op (docs/conformance.md §5.6); may come before or after the
   * open. The op runs inside the unmap that needs the range: it should unpin there, and may also
   * pin, map, unmap other ranges, dma_rw and read dirty bits. Calls that would change that
   * container's groups, page sizes or tracking state return -EDEADLK and change nothing (a close
   * that would detach a group included: the fd stays open). An exception from the op does not stop
   * the unmap; it is rethrown by the unmap's ioctl (or typed call) after the unmap completed and
   * its results were copied back.
   */
  registerDmaUnmap(op: (iova: bigint, size: bigint) => void): void {
    this.live();
    if (typeof op !== 'function') throw new TypeError('registerDmaUnmap takes a function');
    const was = this.participating;
    this.dmaUnmap = op;
    if (!was && this.participating) this.joinSeq = this.group.engine.nextSeq();
  }

  /**
   * Sets the unlink callback (docs/conformance.md §19.9); null removes it. Before or after open.
   */
  registerKvmUnlink(cb: ((kvm: Kvm) => void) | null): void {
    if (cb !== null && typeof cb !== 'function') throw new TypeError('registerKvmUnlink takes a function or null');
    this.kvmUnlink = cb;
  }

  /**
   * At open (count 0 -> 1): the device takes the KVM of the file that opens it, with a VM
   * reference: the group's (group path) or its cdev file's (at BIND).
   */
  takeKvm(k: Kvm | null = this.group.kvm): void {
    if (k && !k.destroyed) {
      k.get();
      this.kvm = k;
    }
  }

  /** At close (count 1 -> 0), once the device no longer takes part: the VM reference goes. */
  dropKvm(): void {
    const k = this.kvm;
    this.kvm = null;
    k?.put();
  }

  /** vfio_pin_pages: npage on success, -errno on failure (docs/conformance.md §6.1, §6.2). */
  pinPages(iova: bigint, npage: number, prot: number, pfns?: BigUint64Array): number {
    this.live();
    return pinPages(this, iova, npage, prot, pfns);
  }

  /**
   * vfio_unpin_pages (docs/conformance.md §6.4): never fails; bad input is ignored as the kernel
   * does.
   */
  unpinPages(iova: bigint, npage: number): void {
    this.live();
    unpinPages(this, iova, npage);
  }

  /**
   * vfio_dma_rw: copies between `data` and the mapping process's memory; 0 or -errno
   * (docs/conformance.md §6.6).
   */
  dmaRw(iova: bigint, data: Uint8Array, write: boolean): number {
    this.live();
    return dmaRw(this, iova, data, write);
  }
}

/**
/**
 * Whether dropping a reference to `file` that `releases` it now must wait: its group's container
 * is notifying drivers of an UNMAP that is still walking it (docs/conformance.md §14.3: such a
 * close is EDEADLK).
 */
export function groupReleaseBlocked(file: GroupFile, releases: boolean): boolean {
  return releases && (file.group.container?.notifying ?? false);
}

/**
 * Whether dropping these references to `file` releases it: its fd (`fd`), `deviceFds` device files
 * and `kvmRefs` KVM-VFIO entries, with nothing else left holding it (docs/conformance.md §19.9).
 */
export function groupFileReleasedBy(file: GroupFile, drop: { fd?: boolean; deviceFds?: number; kvmRefs?: number }): boolean {
  return (!file.fdOpen || drop.fd === true) && file.deviceFds === (drop.deviceFds ?? 0)
    && (file.kvmRefs ?? 0) === (drop.kvmRefs ?? 0);
}

/**
 * Releases a group file once nothing holds it: the group leaves its container (docs/conformance.md
 * §2.7).
 */
export function releaseIfUnused(file: GroupFile): void {
  if (file.fdOpen || file.deviceFds > 0 || (file.kvmRefs ?? 0) > 0) return;
  const g = file.group;
  if (g.container) g.container.removeGroup(g);
  g.file = null;
}
