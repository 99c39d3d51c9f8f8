// The iommufd subsystem's answer to `proc.open`: /dev/iommu (a new context) and the device
// cdevs /dev/vfio/devices/vfio<N> (a new unbound cdev fd; ENOENT for an index with no cdev).
import { ENOENT } from '../../assembly/constants.js';
import type { Subsystem } from '../file.js';
import type { Process } from '../process.js';
import type { VfioDevice } from '../vfio/group.js';
import { IommufdCtx, IommufdFile } from './context.js';
import { CdevFile } from './device.js';

/** The device with index n that has a cdev, or undefined. */
function cdevDevice(proc: Process, n: number): VfioDevice | undefined {
  for (const g of proc.engine.groups.values()) {
    for (const d of g.devices) if (d.index === n && d.cdevPath !== null) return d;
  }
  return undefined;
}

export const iommufdFiles: Subsystem = {
  open(proc: Process, path: string): number | undefined {
    if (path === '/dev/iommu') return proc.allocFd(new IommufdFile(new IommufdCtx(proc.engine)));
    const m = /^\/dev\/vfio\/devices\/vfio(0|[1-9][0-9]*)$/.exec(path);
    if (!m) return undefined;
    const dev = cdevDevice(proc, Number(m[1]));
    return dev ? proc.allocFd(new CdevFile(dev)) : -ENOENT;
  },
};
