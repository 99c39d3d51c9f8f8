// The files of /dev/vfio: the container (/dev/vfio/vfio) and group (/dev/vfio/<id>) fds, and the
// VFIO subsystem's answer to `proc.open`.
import { EBUSY, ENOENT } from '../../assembly/constants.js';
import type { IoctlArg, OpenFile, Subsystem } from '../file.js';
import type { Process } from '../process.js';
import type { Container } from './container.js';
import { groupFileReleasedBy, groupReleaseBlocked, releaseIfUnused, type GroupFile } from './group.js';
import { containerIoctl, groupIoctl } from './ioctl.js';

/** An fd of /dev/vfio/vfio. */
export class ContainerFile implements OpenFile {
  readonly kind = 'vfio-container';
  readonly container: Container;

  constructor(container: Container) {
    this.container = container;
  }

  ioctl(proc: Process, request: number, arg: IoctlArg): number {
    return containerIoctl(proc, this.container, request, arg);
  }

  close(): void {
    this.container.fds--;
    this.container.engine.forgetIfUnused(this.container);
  }
}

/** The fd of /dev/vfio/<id>: the group file. */
export class GroupFd implements OpenFile {
  readonly kind = 'vfio-group';
  readonly file: GroupFile;

  constructor(file: GroupFile) {
    this.file = file;
  }

  ioctl(proc: Process, request: number, arg: IoctlArg): number {
    return groupIoctl(proc, this.file.group, request, arg);
  }

  /** The group detaches once its fd and its device fds are all closed. */
  close(): void {
    this.file.fdOpen = false;
    releaseIfUnused(this.file);
  }

  /** Closing the last reference detaches the group: refused while its container notifies. */
  releaseBlocked(all: boolean): boolean {
    return groupReleaseBlocked(this.file, all || groupFileReleasedBy(this.file, { fd: true }));
  }
}

/** `proc.open` of /dev/vfio/vfio (a new container) and /dev/vfio/<id> (-ENOENT, -EBUSY). */
export const vfioFiles: Subsystem = {
  open(proc: Process, path: string): number | undefined {
    if (path === '/dev/vfio/vfio') {
      return proc.allocFd(new ContainerFile(proc.engine.newContainer(proc.lowestFreeFd())));
    }
    const m = /^\/dev\/vfio\/(0|[1-9][0-9]*)$/.exec(path);
    if (!m) return undefined;
    const g = proc.engine.groups.get(Number(m[1]));
    if (!g) return -ENOENT;
    if (g.file || g.boundCdevs > 0) return -EBUSY; // a bound cdev blocks the group
    const file: GroupFile = { group: g, fdOpen: true, deviceFds: 0 };
    g.file = file;
    return proc.allocFd(new GroupFd(file));
  },
};
