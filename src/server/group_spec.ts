// The text form of a host IOMMU group, shared by `serve --group SPEC` and the CREATE_GROUP request:
// comma-separated key=value pairs, e.g. `kind=iommu,devices=0000:65:00.0+0000:65:00.1`.
import type { GroupOptions } from '../vfio/group.js';

/** Help text for the group spec (serve --help and docs/PROTOCOL.md say the same). */
export const GROUP_SPEC_HELP = [
  'kind=iommu|emulated            default iommu',
  'devices=NAME[+NAME...]         default one device named after the group',
  'viable=1|0                     default 1',
  'pgsizes=BITMAP                 iommu only; default 0x40201000',
  'aperture=START-END             iommu only, inclusive; default 0x0-0xffffffffffff',
  'reserved=START-END[+...]|none  iommu only, inclusive; default 0xfee00000-0xfeefffff',
  'iommuDirtyTracking=1|0         iommu only: the IOMMU reports dirty tracking; default 0',
  'hugeIoptes=1|0                 iommu only: IOPTEs of the largest page sizes; default 0',
  'syswidePasid=1|0               iommu only: needs system-wide PASIDs; default 0',
  'dmaLogging=all|NAME[+NAME...]  iommu only: devices with a DMA-logging tracker (needs devices=)',
  'maxRanges=N                    the trackers\' ranges, 1..256; default 4',
  'pageSizes=BITMAP               the trackers\' page sizes; default 0x3ff000',
  'addressSpaceBits=LO-HI         the trackers\' address-space log2 range; default 12-42',
  'migrationFlags=N               VFIO_MIGRATION_* of every device; default 3 with a tracker, else 0',
];

/** A decimal or 0x-hex number of a spec; throws RangeError naming `what`. */
export function big(s: string, what: string): bigint {
  if (!/^(0x[0-9a-fA-F]+|[0-9]+)$/.test(s)) throw new RangeError(`${what}: not a number: ${JSON.stringify(s)}`);
  return BigInt(s);
}

function range(s: string, what: string): [bigint, bigint] {
  const m = /^([^-]+)-([^-]+)$/.exec(s);
  if (!m) throw new RangeError(`${what}: expected START-END, not ${JSON.stringify(s)}`);
  return [big(m[1], what), big(m[2], what)];
}

/** `1` or `0` of a spec. */
export function flag(v: string, what: string): boolean {
  if (v !== '0' && v !== '1') throw new RangeError(`${what}: 1 or 0`);
  return v === '1';
}

/** A number of a spec that fits a u32. */
export function int(v: string, what: string): number {
  const n = big(v, what);
  if (n > 0xffff_ffffn) throw new RangeError(`${what}: too large`);
  return Number(n);
}

/** Device options of a spec, applied to `devices` once every key is read. */
interface DeviceKeys {
  logging?: string[] | 'all';
  maxRanges?: number;
  pageSizes?: bigint;
  addressSpaceBits?: [number, number];
  migrationFlags?: number;
}

/** The `devices` entries with the tracker and migration options of `k` (createGroup checks values). */
function withDeviceKeys(o: GroupOptions, k: DeviceKeys): void {
  const tracker = k.maxRanges !== undefined || k.pageSizes !== undefined || k.addressSpaceBits !== undefined;
  if (!k.logging && tracker) throw new RangeError('maxRanges, pageSizes, addressSpaceBits: need dmaLogging=');
  if (!k.logging && k.migrationFlags === undefined) return;
  if (!o.devices) throw new RangeError('dmaLogging, migrationFlags: need devices=');
  const names = o.devices as string[];
  const logging = k.logging === 'all' ? names : k.logging ?? [];
  for (const n of logging) if (!names.includes(n)) throw new RangeError(`dmaLogging: no device ${JSON.stringify(n)}`);
  const opts = tracker ? { maxRanges: k.maxRanges, pageSizes: k.pageSizes, addressSpaceBits: k.addressSpaceBits } : true;
  o.devices = names.map((name) => ({
    name,
    ...(logging.includes(name) ? { dmaLogging: opts } : {}),
    ...(k.migrationFlags !== undefined ? { migrationFlags: k.migrationFlags } : {}),
  }));
}

/** The `key=value` pairs of a comma-separated spec (none for an empty one). */
export function specPairs(spec: string, what: string): [string, string][] {
  if (spec.trim() === '') return [];
  return spec.split(',').map((part) => {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new RangeError(`${what}: expected key=value, not ${JSON.stringify(part)}`);
    return [part.slice(0, eq), part.slice(eq + 1)];
  });
}

/** Parses a group spec; throws RangeError naming the bad key. */
export function parseGroupSpec(spec: string): GroupOptions {
  const o: GroupOptions = {};
  const dk: DeviceKeys = {};
  for (const [k, v] of specPairs(spec, 'group spec')) {
    if (k === 'kind') {
      if (v !== 'iommu' && v !== 'emulated') throw new RangeError(`kind: iommu or emulated, not ${JSON.stringify(v)}`);
      o.kind = v;
    } else if (k === 'devices') {
      o.devices = v.split('+');
    } else if (k === 'viable') {
      o.viable = flag(v, 'viable');
    } else if (k === 'pgsizes') {
      o.pgsizeBitmap = big(v, 'pgsizes');
    } else if (k === 'aperture') {
      o.aperture = range(v, 'aperture');
    } else if (k === 'reserved') {
      o.reserved = v === 'none' ? [] : v.split('+').map((r) => range(r, 'reserved'));
    } else if (k === 'iommuDirtyTracking' || k === 'hugeIoptes' || k === 'syswidePasid') {
      o[k] = flag(v, k);
    } else if (k === 'dmaLogging') {
      dk.logging = v === 'all' ? 'all' : v.split('+');
    } else if (k === 'maxRanges' || k === 'migrationFlags') {
      dk[k] = int(v, k);
    } else if (k === 'pageSizes') {
      dk.pageSizes = big(v, k);
    } else if (k === 'addressSpaceBits') {
      const [lo, hi] = range(v, k);
      dk.addressSpaceBits = [int(String(lo), k), int(String(hi), k)];
    } else {
      throw new RangeError(`group spec: unknown key ${JSON.stringify(k)}`);
    }
  }
  withDeviceKeys(o, dk);
  return o;
}
