// A device fd (VFIO_GROUP_GET_DEVICE_FD): keeps its group file open and the device taking part.
// The file lives while its fd is open or a KVM-VFIO entry holds it (docs/conformance.md §19.9).
import { EINVAL } from '../../assembly/constants.js';
import type { IoctlArg, OpenFile } from '../file.js';
import type { Process } from '../process.js';
import { deviceIoctl } from './device_feature.js';
import { VFIO_DEVICE_BIND_IOMMUFD } from './device_uapi.js';
import { groupFileReleasedBy, groupReleaseBlocked, releaseIfUnused, type GroupFile, type VfioDevice } from './group.js';
import { deviceClosedIfUnused } from './dma_logging.js';

export class DeviceFile implements OpenFile {
  readonly kind = 'vfio-device';
  readonly device: VfioDevice;
  /** The group file it was obtained through. */
  readonly group: GroupFile;

  /** The fd is still open. */
  fdOpen = true;
  /** KVM-VFIO entries holding the file. */
  kvmRefs = 0;

  constructor(device: VfioDevice, group: GroupFile) {
    this.device = device;
    this.group = group;
    if (device.openCount === 1) device.takeKvm();
  }

  /**
   * Device ioctls (docs/conformance.md §20.1): a group-path fd has access; BIND is for cdevs only.
   */
  ioctl(proc: Process, request: number, arg: IoctlArg): number {
    if (request === VFIO_DEVICE_BIND_IOMMUFD) return -EINVAL;
    return deviceIoctl(proc, this.device, request, arg);
  }

  close(): void {
    this.fdOpen = false;
    this.releaseIfUnused();
  }

  /** A KVM-VFIO entry lets go of the file. */
  dropRef(): void {
    this.kvmRefs--;
    this.releaseIfUnused();
  }

  private releaseIfUnused(): void {
    if (this.fdOpen || this.kvmRefs > 0) return;
    this.device.openCount--;
    this.group.deviceFds--;
    deviceClosedIfUnused(this.device);
    if (this.device.openCount === 0) this.device.dropKvm(); // after it stopped taking part (F5)
    releaseIfUnused(this.group);
  }

  /** Closing the group file's last reference detaches the group: refused while its container notifies. */
  releaseBlocked(all: boolean): boolean {
    if (!all && this.kvmRefs > 0) return false; // a KVM-VFIO entry keeps the file: nothing is released
    return groupReleaseBlocked(this.group, all || groupFileReleasedBy(this.group, { deviceFds: 1 }));
  }
}
