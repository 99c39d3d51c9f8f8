// The ioctls of a device file with access (docs/conformance.md §20.1, §20.3, §20.4):
// VFIO_DEVICE_FEATURE's framing and the per-feature checks, MIGRATION, DMA_LOGGING_START / STOP /
// REPORT, and VFIO_DEVICE_RESET. The access gate, the first check, is the caller's: a cdev fd
// answers EINVAL until bound.
import { E2BIG, EFAULT, EINVAL, ENOMEM, ENOTTY, EOVERFLOW } from '../../assembly/constants.js';
import type { IoctlArg } from '../file.js';
import type { Process } from '../process.js';
import { U64_MAX } from '../u64.js';
import { loggingReport, loggingStart, loggingStop, type IovaRange } from './dma_logging.js';
import {
  LOG_MAX_RANGES, VFIO_DEVICE_FEATURE, VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_START, VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_MIGRATION, VFIO_DEVICE_FEATURE_PROBE, VFIO_DEVICE_FEATURE_SET, VFIO_DEVICE_RESET,
} from './device_uapi.js';
import type { VfioDevice } from './group.js';

const GET = VFIO_DEVICE_FEATURE_GET;
const SET = VFIO_DEVICE_FEATURE_SET;
const PROBE = VFIO_DEVICE_FEATURE_PROBE;

/** The struct argument (a Uint8Array), or null for none (the kernel faults on NULL). */
export function bytesArg(arg: IoctlArg): Uint8Array | null {
  if (arg === undefined || arg === null) return null;
  if (!(arg instanceof Uint8Array)) throw new TypeError('this ioctl takes its struct as a Uint8Array');
  return arg;
}

/** A little-endian view of the argument bytes. */
export function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** A device ioctl on a file with access: FEATURE, RESET, or -ENOTTY. */
export function deviceIoctl(proc: Process, dev: VfioDevice, request: number, arg: IoctlArg): number {
  if (request === VFIO_DEVICE_FEATURE) return deviceFeature(proc, dev, bytesArg(arg));
  if (request === VFIO_DEVICE_RESET) return 0; // mlx5's reset leaves the tracker alone
  return -ENOTTY;
}

/**
 * vfio_check_feature, in order: GET or SET where the feature lacks it → EINVAL; PROBE → 0;
 * neither GET nor SET → EINVAL; a payload smaller than the feature's → EINVAL. 1 to go on, 0 for
 * a PROBE answered, or -EINVAL.
 */
function checkFeature(flags: number, argsz: number, supported: number, minsz: number): number {
  if ((flags & (GET | SET)) & ~supported) return -EINVAL;
  if (flags & PROBE) return 0;
  if (!(flags & (GET | SET))) return -EINVAL;
  if (argsz - 8 < minsz) return -EINVAL;
  return 1;
}

/**
 * VFIO_DEVICE_FEATURE after the access gate: the header checks and the feature index
 * (docs/conformance.md §20.3), then the handlers.
 */
export function deviceFeature(proc: Process, dev: VfioDevice, b: Uint8Array | null): number {
  if (!b || b.length < 8) return -EFAULT;
  const v = dv(b);
  const argsz = v.getUint32(0, true);
  const flags = v.getUint32(4, true);
  if (argsz < 8) return -EINVAL;
  if (flags & ~0x7ffff) return -EINVAL;
  if ((flags & GET) && (flags & SET) && !(flags & PROBE)) return -EINVAL;
  const st = dev.state;
  let c: number;
  switch (flags & 0xffff) {
    case VFIO_DEVICE_FEATURE_MIGRATION:
      if (!st.migrationFlags) return -ENOTTY;
      if ((c = checkFeature(flags, argsz, GET, 8)) <= 0) return c;
      if (b.length < 16) return -EFAULT;
      v.setBigUint64(8, BigInt(st.migrationFlags), true);
      return 0;
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_START:
      if (!st.tracker) return -ENOTTY;
      if ((c = checkFeature(flags, argsz, SET, 24)) <= 0) return c;
      return start(proc, dev, b, v);
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP:
      if (!st.tracker) return -ENOTTY;
      if ((c = checkFeature(flags, argsz, SET, 0)) <= 0) return c;
      loggingStop(dev);
      return 0;
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT:
      if (!st.tracker) return -ENOTTY;
      if ((c = checkFeature(flags, argsz, GET, 32)) <= 0) return c;
      if (b.length < 40) return -EFAULT;
      return loggingReport(dev, proc, v.getBigUint64(8, true), v.getBigUint64(16, true), v.getBigUint64(24, true),
        v.getBigUint64(32, true));
    default:
      return -ENOTTY;
  }
}

/**
 * DMA_LOGGING_START (docs/conformance.md §20.4): the control and range checks, then the tracker;
 * writes back the tracked page size.
 */
function start(proc: Process, dev: VfioDevice, b: Uint8Array, v: DataView): number {
  if (b.length < 32) return -EFAULT;
  const pageSize = v.getBigUint64(8, true);
  const n = v.getUint32(16, true);
  const ptr = v.getBigUint64(24, true);
  if (n === 0) return -EINVAL;
  if (n > LOG_MAX_RANGES) return -E2BIG;
  const mask = (pageSize - 1n) & U64_MAX;
  const ranges: IovaRange[] = [];
  for (let i = 0; i < n; i++) {
    const at = ptr + BigInt(16 * i);
    if (!proc.isMapped(at, 16n)) return -EFAULT;
    const raw = proc.um.read(at, 16);
    if (typeof raw === 'number') return -ENOMEM; // the host's staging copy (no kernel analogue)
    const e = dv(raw);
    const iova = e.getBigUint64(0, true);
    const length = e.getBigUint64(8, true);
    if ((iova | length) & mask) return -EINVAL;
    if (length === 0n) return -EINVAL;
    if (iova + length > U64_MAX) return -EOVERFLOW;
    const last = iova + length - 1n;
    if (ranges.some(([s, l]) => s <= last && l >= iova)) return -EINVAL;
    ranges.push([iova, last]);
  }
  const T = loggingStart(dev, ranges, pageSize);
  if (typeof T === 'number') return T;
  v.setBigUint64(8, T, true);
  return 0;
}
