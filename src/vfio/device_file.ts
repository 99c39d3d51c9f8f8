// A device fd (VFIO_GROUP_GET_DEVICE_FD): keeps its group file open and the device taking part.
import { ENOTTY } from '../../assembly/constants.js';
import type { OpenFile } from '../file.js';
import { groupReleaseBlocked, releaseIfUnused, type GroupFile, type VfioDevice } from './group.js';

export class DeviceFile implements OpenFile {
  readonly kind = 'vfio-device';
  readonly device: VfioDevice;
  /** The group file it was obtained through. */
  readonly group: GroupFile;

  constructor(device: VfioDevice, group: GroupFile) {
    this.device = device;
    this.group = group;
  }

  ioctl(): number {
    return -ENOTTY; // no device ioctl is modelled
  }

  close(): void {
    this.device.openCount--;
    this.group.deviceFds--;
    releaseIfUnused(this.group);
  }

  /** Closing the group file's last reference detaches the group: refused while its container notifies. */
  releaseBlocked(all: boolean): boolean {
    return groupReleaseBlocked(this.group, all || (!this.group.fdOpen && this.group.deviceFds === 1));
  }
}
