// The KVM-VFIO device (virt/kvm/vfio.c): KVM_CREATE_DEVICE of type VFIO, its attributes FILE_ADD
// and FILE_DEL with a group, device or device cdev fd as the token, the file's KVM, the unlink
// notification of the devices that took their KVM from it, and its release, entry by entry in
// list order (docs/conformance.md §19.9).
import { kvmUapi } from './uapi.js';
import { EBADF, EBUSY, EEXIST, EFAULT, EINVAL, ENODEV, ENOENT, ENOMEM, ENOTTY, ENXIO, EPERM } from '../../assembly/constants.js';
import type { IoctlArg, OpenFile } from '../file.js';
import type { Process } from '../process.js';
import { USER_TOP } from '../u64.js';
import { DeviceFile } from '../vfio/device_file.js';
import { GroupFd } from '../vfio/files.js';
import {
  groupFileReleasedBy, groupReleaseBlocked, releaseIfUnused, type GroupFile, type VfioDevice,
} from '../vfio/group.js';
import { CdevFile } from '../iommufd/device.js';
import { structIn } from './args.js';
import { callbackScope, rethrow } from './callbacks.js';
import type { Kvm } from './kvm.js';

export const KVM_DEV_TYPE_VFIO = kvmUapi.KVM_DEV_TYPE_VFIO;
export const KVM_CREATE_DEVICE_TEST = kvmUapi.KVM_CREATE_DEVICE_TEST;
export const KVM_DEV_VFIO_FILE = kvmUapi.KVM_DEV_VFIO_FILE;
export const KVM_DEV_VFIO_FILE_ADD = kvmUapi.KVM_DEV_VFIO_FILE_ADD;
export const KVM_DEV_VFIO_FILE_DEL = kvmUapi.KVM_DEV_VFIO_FILE_DEL;
const KVM_SET_DEVICE_ATTR = kvmUapi.KVM_SET_DEVICE_ATTR;
const KVM_GET_DEVICE_ATTR = kvmUapi.KVM_GET_DEVICE_ATTR;
const KVM_HAS_DEVICE_ATTR = kvmUapi.KVM_HAS_DEVICE_ATTR;

/** A VFIO file held by an entry: the group file, a group-path device file, or a device cdev file. */
type Entry =
  | { kind: 'group'; file: GroupFile }
  | { kind: 'device'; file: DeviceFile }
  | { kind: 'cdev'; file: CdevFile };

/** A VM's KVM-VFIO device: its list of entries. */
export class KvmVfio {
  readonly kvm: Kvm;
  readonly entries: Entry[] = [];

  constructor(kvm: Kvm) {
    this.kvm = kvm;
  }
}

/**
 * The file behind a VFIO fd (group, group-path device or device cdev), or undefined for every
 * other kind of file: FILE_ADD answers EINVAL for those.
 */
function vfioEntry(f: OpenFile): Entry | undefined {
  if (f instanceof GroupFd) return { kind: 'group', file: f.file };
  if (f instanceof DeviceFile) return { kind: 'device', file: f };
  if (f instanceof CdevFile) return { kind: 'cdev', file: f };
  return undefined;
}

/**
 * The unlink notification: the devices that took their `dev.kvm` (still `from`) from a file
 * whose KVM just changed from `from` are told, in the order given, if they have a callback. The
 * first exception, if any.
 */
function unlink(from: Kvm, devices: VfioDevice[], err: unknown): unknown {
  const calls: (() => void)[] = [];
  for (const d of devices) {
    const cb = d.kvmUnlink;
    if (d.kvm === from && cb) calls.push(() => cb(from));
  }
  return callbackScope(from.engine).runAll('unlink', calls, err);
}

/**
 * The KVM of an entry's file becomes `to` (a group-path device file has none). A group
 * file tells its open group-path devices, in the group's device order; a cdev file tells the
 * device it bound. The first exception, if any.
 */
function setFileKvm(e: Entry, to: Kvm | null, err: unknown): unknown {
  if (e.kind === 'device') return err;
  const from = e.kind === 'group' ? e.file.group.kvm : e.file.kvm;
  if (e.kind === 'group') e.file.group.kvm = to;
  else e.file.kvm = to;
  if (!from || from === to) return err;
  const opened = e.kind === 'group'
    ? e.file.group.devices.filter((d) => d.openCount > 0)
    : e.file.binding ? [e.file.dev] : [];
  return unlink(from, opened, err);
}

/** Takes an entry's reference on its file. */
function takeRef(e: Entry): void {
  if (e.kind === 'group') e.file.kvmRefs = (e.file.kvmRefs ?? 0) + 1;
  else e.file.kvmRefs++;
}

/** Drops an entry's reference on its file, which may release the file. */
function dropRef(e: Entry): void {
  if (e.kind === 'group') {
    e.file.kvmRefs = (e.file.kvmRefs ?? 0) - 1;
    releaseIfUnused(e.file);
  } else {
    e.file.dropRef();
  }
}

function sameFile(a: Entry, b: Entry): boolean {
  return a.file === b.file;
}

/**
 * KVM_CREATE_DEVICE (docs/conformance.md §19.9) on a VM fd: 0 or -errno; the new fd is written at
 * @4.
 */
export function createDevice(proc: Process, kvm: Kvm, arg: IoctlArg): number {
  const v = structIn(arg, 12, 'KVM_CREATE_DEVICE');
  if (!v) return -EFAULT;
  if (v.getUint32(0, true) !== KVM_DEV_TYPE_VFIO) return -ENODEV;
  if (v.getUint32(8, true) & KVM_CREATE_DEVICE_TEST) return 0;
  if (kvm.kvmVfio) return -EBUSY;
  const dev = new KvmVfio(kvm);
  kvm.kvmVfio = dev;
  kvm.get();
  const fd = proc.allocFd(new KvmDeviceFile(dev));
  v.setUint32(4, fd, true);
  return 0;
}

/** A KVM device fd. */
export class KvmDeviceFile implements OpenFile {
  readonly kind = 'kvm-device';
  readonly dev: KvmVfio;

  constructor(dev: KvmVfio) {
    this.dev = dev;
  }

  ioctl(proc: Process, request: number, arg: IoctlArg): number {
    switch (request) {
      case KVM_GET_DEVICE_ATTR:
        return -EPERM;
      case KVM_HAS_DEVICE_ATTR: {
        const v = structIn(arg, 24, 'KVM_HAS_DEVICE_ATTR');
        if (!v) return -EFAULT;
        const a = v.getBigUint64(8, true);
        return v.getUint32(4, true) === KVM_DEV_VFIO_FILE && (a === 1n || a === 2n) ? 0 : -ENXIO;
      }
      case KVM_SET_DEVICE_ATTR:
        return setAttr(proc, this.dev, arg);
      default:
        return -ENOTTY;
    }
  }

  /**
   * Whether the release would detach a group from a container that is notifying its drivers of
   * an UNMAP (docs/conformance.md §14.3: -EDEADLK, nothing closed): a group file that no fd, device
   * file or other entry holds once this device's entries let go.
   */
  releaseBlocked(all: boolean): boolean {
    const drops = new Map<GroupFile, { deviceFds: number; kvmRefs: number }>();
    for (const e of this.dev.entries) {
      if (e.kind === 'cdev') continue; // a cdev-bound device is in no container
      const gf = e.kind === 'group' ? e.file : e.file.group;
      const d = drops.get(gf) ?? { deviceFds: 0, kvmRefs: 0 };
      drops.set(gf, d);
      if (e.kind === 'group') d.kvmRefs++;
      else if (!e.file.fdOpen && e.file.kvmRefs === 1) d.deviceFds++;
    }
    for (const [gf, d] of drops) if (groupReleaseBlocked(gf, all || groupFileReleasedBy(gf, d))) return true;
    return false;
  }

  /**
 * Release: entry by entry, its file's KVM cleared (callbacks), then its hold dropped; then the
 * VM's reference.
 */
  close(): void {
    const dev = this.dev;
    let err: unknown;
    for (const e of dev.entries.splice(0)) {
      err = setFileKvm(e, null, err);
      dropRef(e);
    }
    dev.kvm.kvmVfio = null;
    dev.kvm.put();
    rethrow(err);
  }
}

/** KVM_SET_DEVICE_ATTR (docs/conformance.md §19.9): FILE_ADD / FILE_DEL. */
function setAttr(proc: Process, dev: KvmVfio, arg: IoctlArg): number {
  const v = structIn(arg, 24, 'KVM_SET_DEVICE_ATTR');
  if (!v) return -EFAULT;
  if (v.getUint32(4, true) !== KVM_DEV_VFIO_FILE) return -ENXIO;
  const attr = v.getBigUint64(8, true);
  if (attr !== 1n && attr !== 2n) return -ENXIO;
  const p = v.getBigUint64(16, true);
  if (p + 4n > USER_TOP || !proc.isMapped(p, 4n)) return -EFAULT;
  const b = proc.um.read(p, 4);
  if (typeof b === 'number') return -ENOMEM; // the host's staging copy (no kernel analogue)
  const fd = new DataView(b.buffer, b.byteOffset, 4).getInt32(0, true);
  const f = proc.fds.get(fd);
  if (!f) return -EBADF;
  const e = vfioEntry(f);
  const i = e ? dev.entries.findIndex((x) => sameFile(x, e)) : -1;
  if (attr === 1n) {
    if (!e) return -EINVAL;
    if (i >= 0) return -EEXIST;
    dev.entries.push(e);
    takeRef(e);
    rethrow(setFileKvm(e, dev.kvm, undefined));
    return 0;
  }
  if (i < 0) return -ENOENT;
  const [gone] = dev.entries.splice(i, 1);
  const err = setFileKvm(gone, null, undefined);
  dropRef(gone);
  rethrow(err);
  return 0;
}
