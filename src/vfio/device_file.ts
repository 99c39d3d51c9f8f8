// A device fd (VFIO_GROUP_GET_DEVICE_FD): keeps its group file open and the device taking part.
// The file lives while its fd is open or a KVM-VFIO entry holds it (SPEC-KVM F3).
import { ENOTTY } from '../../assembly/constants.js';
import type { OpenFile } from '../file.js';
import { groupReleaseBlocked, releaseIfUnused, type GroupFile, type VfioDevice } from './group.js';

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

  ioctl(): number {
    return -ENOTTY; // no device ioctl is modelled
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
    if (this.device.openCount === 0) this.device.dropKvm();
    this.group.deviceFds--;
    releaseIfUnused(this.group);
  }

  /** Closing the group file's last reference detaches the group: refused while its container notifies. */
  releaseBlocked(all: boolean): boolean {
    if (!all && this.kvmRefs > 0) return false; // a KVM-VFIO entry keeps the file: nothing is released
    return groupReleaseBlocked(this.group, all || (!this.group.fdOpen && this.group.deviceFds === 1));
  }
}
