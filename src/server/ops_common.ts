// What every part of the request table shares (docs/PROTOCOL.md §4, §6): the reply type, the
// data limit, and who may act as a device's driver.
import { CdevFile } from '../iommufd/device.js';
import type { OpenFile } from '../file.js';
import type { Process } from '../process.js';
import { DeviceFile } from '../vfio/device_file.js';
import { GroupFd } from '../vfio/files.js';
import type { Group, VfioDevice } from '../vfio/group.js';
import type { Host, Session } from './host.js';
import { PErr, type Reader } from './protocol.js';

/** A result (i64: >= 0, or -errno) and the bytes written back, if any. */
export type Reply = [number | bigint, Uint8Array?];
/** One entry of the request table: decodes the payload, calls the engine, answers. */
export type Handler = (host: Host, s: Session, r: Reader) => Reply;

/** Largest READ_MEM / DMA_RW length and SHM copy chunk: 16 MiB. */
export const MAX_DATA = 16 << 20;

/** How each kind of file refers to its group file (the unit of ownership). */
const groupFileOf: ((f: OpenFile) => unknown)[] = [
  (f) => (f instanceof GroupFd ? f.file : undefined),
  (f) => (f instanceof DeviceFile ? f.group : undefined),
];

/** Whether `proc` holds `g`: its group fd, or a device fd obtained through it, is open there. */
export function holdsGroup(proc: Process, g: Group): boolean {
  if (!g.file) return false;
  for (const f of proc.fds.values()) {
    for (const of of groupFileOf) if (of(f) === g.file) return true;
  }
  return false;
}

/** The device named `name` among all groups, or undefined. */
export function deviceByName(host: Host, name: string): VfioDevice | undefined {
  for (const g of host.engine.groups.values()) {
    const d = g.device(name);
    if (d) return d;
  }
  return undefined;
}

/**
 * Whether `proc` holds device `d` for driver calls: it holds its group (group path), or has the
 * device's cdev fd open and bound to an iommufd (iommufd path; BIND is exclusive, an unbound cdev
 * fd is not: any process may open one).
 */
export function holdsDevice(proc: Process, d: VfioDevice): boolean {
  if (holdsGroup(proc, d.group)) return true;
  for (const f of proc.fds.values()) if (f instanceof CdevFile && f.dev === d && f.binding) return true;
  return false;
}

/** The device for a driver call: the device, or -ENODEV (no such name) / -EPERM (not held). */
export function driverDevice(host: Host, s: Session, name: string): VfioDevice | number {
  const d = deviceByName(host, name);
  if (!d) return -PErr.ENODEV;
  return holdsDevice(s.proc!, d) ? d : -PErr.EPERM;
}

/** An ioctl value argument: a number while it fits an int, else the u64 as a bigint. */
export function valueArg(v: bigint): number | bigint {
  const i = BigInt.asIntN(64, v);
  return i >= -(1n << 31n) && i < 1n << 31n ? Number(i) : v;
}

/** Runs `f`, mapping the RangeError of an unmapped address to -EFAULT. */
export function faulting(f: () => Reply): Reply {
  try {
    return f();
  } catch (e) {
    if (e instanceof RangeError) return [-PErr.EFAULT];
    throw e;
  }
}
