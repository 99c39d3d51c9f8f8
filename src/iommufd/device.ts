// A device cdev (/dev/vfio/devices/vfio<N>) and its iommufd device object (docs/conformance.md
// §20.1, §21.2): BIND_IOMMUFD, ATTACH_IOMMUFD_PT (to a HWPT, or to an IOAS through an automatic
// HWPT, replacing a current attachment), DETACH_IOMMUFD_PT, and unbind at release. A cdev file
// lives while its fd is open or a KVM-VFIO entry holds it, and has its own KVM (docs/conformance.md
// §19.9).
import {
  E2BIG, EADDRINUSE, EBADF, EBADFD, EBUSY, EFAULT, EINVAL, ENOENT, EOPNOTSUPP, EPERM,
} from '../../assembly/constants.js';
import { KvmHeldFile, type IoctlArg, type OpenFile } from '../file.js';
import type { Kvm } from '../kvm/kvm.js';
import type { Process } from '../process.js';
import { bytesArg, deviceIoctl, dv } from '../vfio/device_feature.js';
import {
  VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_BIND_FLAG_TOKEN, VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
} from '../vfio/device_uapi.js';
import { deviceClosedIfUnused } from '../vfio/dma_logging.js';
import type { VfioDevice } from '../vfio/group.js';
import type { IommufdCtx, IommufdFile } from './context.js';
import { compatible, hwptCreate, hwptDestroy, type Hwpt } from './hwpt.js';
import type { Ioas } from './ioas.js';

/** The iommufd device object of a bound device. */
export class DeviceBinding {
  readonly type = 'device';
  readonly id: number;
  readonly ctx: IommufdCtx;
  readonly dev: VfioDevice;
  readonly file: CdevFile;
  /** The HWPT it is attached to, or null. */
  hwpt: Hwpt | null = null;

  constructor(ctx: IommufdCtx, id: number, dev: VfioDevice, file: CdevFile) {
    this.ctx = ctx;
    this.id = id;
    this.dev = dev;
    this.file = file;
  }
}

/**
 * A device cdev file: unbound until BIND_IOMMUFD, then a device file with access. It lives while
 * its fd is open or a KVM-VFIO entry holds it; its release unbinds a bound device.
 */
export class CdevFile extends KvmHeldFile implements OpenFile {
  readonly kind = 'vfio-device-cdev';
  readonly dev: VfioDevice;
  binding: DeviceBinding | null = null;
  /**
   * The file's KVM (docs/conformance.md §19.9): set by FILE_ADD, cleared by FILE_DEL or a release.
   */
  kvm: Kvm | null = null;

  constructor(dev: VfioDevice) {
    super();
    this.dev = dev;
  }

  ioctl(proc: Process, request: number, arg: IoctlArg): number {
    if (request === VFIO_DEVICE_BIND_IOMMUFD) return bind(proc, this, bytesArg(arg));
    const b = this.binding;
    if (!b) return -EINVAL; // the access gate of an unbound cdev fd
    if (request === VFIO_DEVICE_ATTACH_IOMMUFD_PT) return attachIoctl(b, bytesArg(arg));
    if (request === VFIO_DEVICE_DETACH_IOMMUFD_PT) return detachIoctl(b, bytesArg(arg));
    return deviceIoctl(proc, this.dev, request, arg);
  }

  /** Release: a bound device is detached and unbound, and closes. */
  protected release(): void {
    if (this.binding) unbind(this.binding);
  }
}

/** BIND_IOMMUFD (docs/conformance.md §21.2), in the kernel's order. */
function bind(proc: Process, file: CdevFile, b: Uint8Array | null): number {
  if (!b || b.length < 4) return -EFAULT;
  const v = dv(b);
  const argsz = v.getUint32(0, true);
  if (argsz < 16) return -EINVAL;
  if (argsz > 24) {
    if (b.length < argsz) return -EFAULT;
    if (b.subarray(24, argsz).some((x) => x !== 0)) return -E2BIG;
  }
  if (b.length < Math.min(argsz, 24)) return -EFAULT;
  const flags = v.getUint32(4, true);
  const fd = v.getInt32(8, true);
  if (fd < 0 || (flags & ~VFIO_DEVICE_BIND_FLAG_TOKEN)) return -EINVAL;
  const dev = file.dev;
  const g = dev.group;
  if (g.file) return -EBUSY;
  if (file.binding) return -EINVAL;
  if (flags & VFIO_DEVICE_BIND_FLAG_TOKEN) return -EINVAL; // no engine device takes a VF token
  const f = proc.fds.get(fd);
  if (!f) return -EBADF;
  if (f.kind !== 'iommufd') return -EBADFD;
  const ctx = (f as IommufdFile).ctx;
  if (dev.state.binding) return -EINVAL;
  if (!g.viable || g.devices.some((d) => d.state.binding && d.state.binding.ctx !== ctx)) return -EPERM;
  const binding = new DeviceBinding(ctx, ctx.allocId(), dev, file);
  ctx.objects.set(binding.id, binding);
  ctx.bindings++;
  g.boundCdevs++;
  dev.state.binding = binding;
  file.binding = binding;
  dev.takeKvm(file.kvm); // the device opens with its cdev file's KVM
  v.setUint32(12, binding.id, true);
  return 0;
}

/** The bound devices of b's group attached to a HWPT. */
function attachedOfGroup(b: DeviceBinding): DeviceBinding[] {
  return b.dev.group.devices.map((d) => d.state.binding).filter((x): x is DeviceBinding => !!x?.hwpt);
}

/** Rules (1)-(3) of attaching b to H: 0 or -errno. `replace` skips rule (1). */
function attachCheck(b: DeviceBinding, h: Hwpt, replace: boolean): number {
  const g = b.dev.group;
  if (!replace && attachedOfGroup(b).some((x) => x !== b && x.hwpt !== h)) return -EINVAL;
  if (g.reserved.some(([s, l]) => h.ioas.iopt.areasIn(s, l).length > 0)) return -EADDRINUSE;
  if (!compatible(h, g)) return -EINVAL;
  return 0;
}

/** Resolves an IOAS target: an automatic HWPT that accepts b, or a new one; or -errno. */
function resolveIoas(b: DeviceBinding, ioas: Ioas, replace: boolean): Hwpt | number {
  for (const h of ioas.hwpts) {
    if (!h.auto) continue;
    const r = attachCheck(b, h, replace);
    if (r === 0) return h;
    if (r !== -EINVAL) return r;
  }
  const g = b.dev.group;
  if (!replace && attachedOfGroup(b).some((x) => x !== b)) return -EINVAL;
  if (g.reserved.some(([s, l]) => ioas.iopt.areasIn(s, l).length > 0)) return -EADDRINUSE;
  return hwptCreate(b.ctx, ioas, g, false, true, false);
}

/** Moves b onto H (reservations follow), leaving its old HWPT (destroyed if automatic and empty). */
function moveTo(b: DeviceBinding, h: Hwpt): void {
  const old = b.hwpt;
  if (old === h) return;
  if (old) leave(b);
  h.ioas.iopt.reserve(b, b.dev.group.reserved);
  h.devices.add(b);
  b.hwpt = h;
}

/** b leaves its HWPT. */
function leave(b: DeviceBinding): void {
  const h = b.hwpt;
  if (!h) return;
  h.devices.delete(b);
  h.ioas.iopt.unreserve(b);
  b.hwpt = null;
  if (h.auto && h.devices.size === 0) hwptDestroy(h);
}

/** ATTACH_IOMMUFD_PT (docs/conformance.md §21.2). */
function attachIoctl(b: DeviceBinding, buf: Uint8Array | null): number {
  if (!buf || buf.length < 12) return -EFAULT;
  const v = dv(buf);
  if (v.getUint32(0, true) < 12) return -EINVAL;
  const flags = v.getUint32(4, true);
  if (flags & ~1) return -EINVAL;
  if (flags & 1) return -EOPNOTSUPP;
  const obj = b.ctx.objects.get(v.getUint32(8, true));
  if (!obj) return -ENOENT;
  if (obj.type === 'device') return -EINVAL;
  const replace = b.hwpt !== null;
  let h: Hwpt;
  if (obj.type === 'hwpt') {
    const r = attachCheck(b, obj, replace);
    if (r < 0) return r;
    h = obj;
  } else {
    const r = resolveIoas(b, obj, replace);
    if (typeof r === 'number') return r;
    h = r;
  }
  if (replace) for (const x of attachedOfGroup(b)) moveTo(x, h);
  else moveTo(b, h);
  v.setUint32(8, h.id, true);
  return 0;
}

/** DETACH_IOMMUFD_PT (docs/conformance.md §21.2). */
function detachIoctl(b: DeviceBinding, buf: Uint8Array | null): number {
  if (!buf || buf.length < 8) return -EFAULT;
  const v = dv(buf);
  if (v.getUint32(0, true) < 8) return -EINVAL;
  const flags = v.getUint32(4, true);
  if (flags & ~1) return -EINVAL;
  if (flags & 1) return -EOPNOTSUPP;
  leave(b);
  return 0;
}

/**
 * Unbind at the cdev file's release: detach, destroy the device object, close the device (its
 * logging stops), and only then drop its KVM (docs/conformance.md §19.9).
 */
export function unbind(b: DeviceBinding): void {
  leave(b);
  const ctx = b.ctx;
  ctx.objects.delete(b.id);
  ctx.bindings--;
  b.dev.group.boundCdevs--;
  b.dev.state.binding = null;
  b.file.binding = null;
  deviceClosedIfUnused(b.dev);
  b.dev.dropKvm();
  ctx.releaseIfUnused();
}
