// A device's options and state beyond type1 (docs/conformance.md §20.1): its DMA-logging tracker
// (mlx5's page tracker), its migration flags, its active log, and its iommufd binding.
import type { UnitLog } from '../core/unit_log.js';
import { PAGE_SIZE } from '../u64.js';
import type { DeviceBinding } from '../iommufd/device.js';

/** The tracker's capabilities (mlx5: pg_track_max_num_range, supported page sizes, log2 limits). */
export interface TrackerOptions {
  /** Ranges the tracker holds after combining; 1..256, default 4. */
  maxRanges?: number;
  /** Tracked page sizes as a bitmap of powers of two, none below 4 KiB; default 0x3FF000n. */
  pageSizes?: bigint;
  /** Accepted [lo, hi] of ⌈log2 total tracked bytes⌉, 0 ≤ lo ≤ hi ≤ 64; default [12, 42]. */
  addressSpaceBits?: [number, number];
}

/** A `devices` entry of createGroup: a name, or a name with a tracker and migration flags. */
export type DeviceSpec = string | {
  name: string;
  /** A DMA-logging tracker: true for the defaults, or its options. */
  dmaLogging?: boolean | TrackerOptions;
  /** VFIO_MIGRATION_* flags; default 3 (STOP_COPY | P2P) with dmaLogging, else 0. */
  migrationFlags?: number;
};

/** A tracker's resolved capabilities. */
export interface Tracker {
  readonly maxRanges: number;
  readonly pageSizes: bigint;
  readonly addressSpaceBits: readonly [number, number];
}

/** An active DMA log: the combined ranges, the tracked page size T, and the marked units. */
export interface DmaLog {
  /** Inclusive [start, last] of each combined range, ascending. */
  readonly ranges: readonly (readonly [bigint, bigint])[];
  /** log2 of T. */
  readonly shift: number;
  /** Units of T over the ranges' T-aligned cover. */
  readonly units: UnitLog;
}

/** What a device holds beyond type1. */
export class DeviceState {
  readonly tracker: Tracker | null;
  readonly migrationFlags: number;
  /** The active log while logging is on. */
  log: DmaLog | null = null;
  /** The iommufd device object while a cdev fd is bound. */
  binding: DeviceBinding | null = null;

  constructor(tracker: Tracker | null, migrationFlags: number) {
    this.tracker = tracker;
    this.migrationFlags = migrationFlags;
  }
}

/** A resolved device entry. */
export interface ResolvedDevice {
  readonly name: string;
  readonly state: DeviceState;
}

function resolveTracker(t: true | TrackerOptions): Tracker {
  const o: TrackerOptions = t === true ? {} : t;
  if (typeof o !== 'object' || o === null) throw new TypeError('dmaLogging must be true or an options object');
  const maxRanges = o.maxRanges ?? 4;
  if (!Number.isInteger(maxRanges) || maxRanges < 1 || maxRanges > 256) {
    throw new RangeError('dmaLogging.maxRanges must be an integer in 1..256');
  }
  const pageSizes = o.pageSizes ?? 0x3ff000n;
  if (typeof pageSizes !== 'bigint' || pageSizes <= 0n || pageSizes >= 1n << 64n || (pageSizes & (PAGE_SIZE - 1n)) !== 0n) {
    throw new RangeError('dmaLogging.pageSizes must be a non-zero u64 bigint with no bit below 12');
  }
  const asb = o.addressSpaceBits ?? [12, 42];
  if (!Array.isArray(asb) || asb.length !== 2 || !asb.every((v) => Number.isInteger(v))
      || asb[0] < 0 || asb[0] > asb[1] || asb[1] > 64) {
    throw new RangeError('dmaLogging.addressSpaceBits must be [lo, hi] with 0 <= lo <= hi <= 64');
  }
  return { maxRanges, pageSizes, addressSpaceBits: [asb[0], asb[1]] };
}

/**
 * Resolves createGroup's `devices` (default: one device named after the group). Throws TypeError
 * for a malformed entry, RangeError for a bad option or a tracker on an emulated group.
 */
export function resolveDevices(devices: readonly DeviceSpec[] | undefined, groupId: number, emulated: boolean): ResolvedDevice[] {
  const specs = devices ?? [`group${groupId}-dev0`];
  if (!Array.isArray(specs) || specs.length === 0) throw new TypeError('devices must be a non-empty array');
  const out = specs.map((s): ResolvedDevice => {
    if (typeof s === 'string') {
      if (!s) throw new TypeError('device names must be non-empty strings');
      return { name: s, state: new DeviceState(null, 0) };
    }
    if (typeof s !== 'object' || s === null || typeof s.name !== 'string' || !s.name) {
      throw new TypeError('a device is a non-empty name or { name, dmaLogging?, migrationFlags? }');
    }
    const logging = s.dmaLogging ?? false;
    if (logging !== false && emulated) throw new RangeError('dmaLogging is for kind: \'iommu\' groups only');
    const tracker = logging === false ? null : resolveTracker(logging);
    const mf = s.migrationFlags ?? (tracker ? 3 : 0);
    if (!Number.isInteger(mf) || mf < 0 || (mf & ~7) !== 0 || (mf !== 0 && (mf & 1) === 0)) {
      throw new RangeError('migrationFlags must use bits 0..2 only and include STOP_COPY (1) when non-zero');
    }
    return { name: s.name, state: new DeviceState(tracker, mf) };
  });
  if (new Set(out.map((d) => d.name)).size !== out.length) throw new RangeError('device names must be unique');
  return out;
}
