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
];

function big(s: string, what: string): bigint {
  if (!/^(0x[0-9a-fA-F]+|[0-9]+)$/.test(s)) throw new RangeError(`${what}: not a number: ${JSON.stringify(s)}`);
  return BigInt(s);
}

function range(s: string, what: string): [bigint, bigint] {
  const m = /^([^-]+)-([^-]+)$/.exec(s);
  if (!m) throw new RangeError(`${what}: expected START-END, not ${JSON.stringify(s)}`);
  return [big(m[1], what), big(m[2], what)];
}

/** Parses a group spec; throws RangeError naming the bad key. */
export function parseGroupSpec(spec: string): GroupOptions {
  const o: GroupOptions = {};
  if (spec.trim() === '') return o;
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new RangeError(`group spec: expected key=value, not ${JSON.stringify(part)}`);
    const k = part.slice(0, eq);
    const v = part.slice(eq + 1);
    if (k === 'kind') {
      if (v !== 'iommu' && v !== 'emulated') throw new RangeError(`kind: iommu or emulated, not ${JSON.stringify(v)}`);
      o.kind = v;
    } else if (k === 'devices') {
      o.devices = v.split('+');
    } else if (k === 'viable') {
      if (v !== '0' && v !== '1') throw new RangeError('viable: 1 or 0');
      o.viable = v === '1';
    } else if (k === 'pgsizes') {
      o.pgsizeBitmap = big(v, 'pgsizes');
    } else if (k === 'aperture') {
      o.aperture = range(v, 'aperture');
    } else if (k === 'reserved') {
      o.reserved = v === 'none' ? [] : v.split('+').map((r) => range(r, 'reserved'));
    } else {
      throw new RangeError(`group spec: unknown key ${JSON.stringify(k)}`);
    }
  }
  return o;
}
