// A device fd (VFIO_GROUP_GET_DEVICE_FD): keeps its group file open and the device taking part.
// The file lives while its fd is open or a KVM-VFIO entry holds it (docs/conformance.md §19.9).
import { EINVAL } from '../../assembly/constants.js';
import { KvmHeldFile, type IoctlArg, type OpenFile } from '../file.js';
import type { Process } from '../process.js';
import { deviceIoctl } from './device_feature.js';
import { VFIO_DEVICE_BIND_IOMMUFD } from './device_uapi.js';
import { groupFileReleasedBy, groupReleaseBlocked, releaseIfUnused, type GroupFile, type VfioDevice } from './group.js';
import { deviceClosedIfUnused } from './dma_logging.js';

export class DeviceFile extends KvmHeldFile implements OpenFile {
  readonly kind = 'vfio-device';
  readonly device: VfioDevice;
  /** The group file it was obtained through. */
  readonly group: GroupFile;

  constructor(device: VfioDevice, group: GroupFile) {
    super();
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

  /** Release: the device stops taking part, and the group file may go. */
  protected release(): void {
    this.device.openCount--;
    this.group.deviceFds--;
    deviceClosedIfUnused(this.device);
    if (this.device.openCount === 0) this.device.dropKvm(); // after it stopped taking part
    // (docs/conformance.md §19.9: dev.kvm is kept until the device closes)
    releaseIfUnused(this.group);
  }

  /** Closing the group file's last reference detaches the group: refused while its container notifies. */
  releaseBlocked(all: boolean): boolean {
    if (!all && this.kvmRefs > 0) return false; // a KVM-VFIO entry keeps the file: nothing is released
    return groupReleaseBlocked(this.group, all || groupFileReleasedBy(this.group, { deviceFds: 1 }));
  }
}
