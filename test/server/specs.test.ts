// The text forms of groups (the keys of device dirty tracking and PASIDs) and accelerators:
// exact options out, a RangeError naming the key for each bad input.
import { describe, expect, it } from 'vitest';
import { parseAccelSpec } from '../../src/server/accel_spec.js';
import { parseGroupSpec } from '../../src/server/group_spec.js';

describe('group spec keys of device dirty tracking and PASIDs', () => {
  it('trackers on the named devices, their options, migration flags on every device', () => {
    expect(parseGroupSpec('devices=a+b,dmaLogging=b,maxRanges=2,pageSizes=0x1000,addressSpaceBits=20-42,migrationFlags=7'))
      .toEqual({ devices: [{ name: 'a', migrationFlags: 7 },
        { name: 'b', dmaLogging: { maxRanges: 2, pageSizes: 0x1000n, addressSpaceBits: [20, 42] }, migrationFlags: 7 }] });
    expect(parseGroupSpec('devices=a+b,dmaLogging=all')).toEqual({ devices: [{ name: 'a', dmaLogging: true }, { name: 'b', dmaLogging: true }] });
    expect(parseGroupSpec('devices=a,migrationFlags=1')).toEqual({ devices: [{ name: 'a', migrationFlags: 1 }] });
    expect(parseGroupSpec('iommuDirtyTracking=1,hugeIoptes=0,syswidePasid=1'))
      .toEqual({ iommuDirtyTracking: true, hugeIoptes: false, syswidePasid: true });
    expect(parseGroupSpec('')).toEqual({});
  });

  it.each([
    ['dmaLogging=all', 'dmaLogging, migrationFlags: need devices='],
    ['migrationFlags=3', 'dmaLogging, migrationFlags: need devices='],
    ['devices=a,maxRanges=2', 'maxRanges, pageSizes, addressSpaceBits: need dmaLogging='],
    ['devices=a,dmaLogging=b', 'dmaLogging: no device "b"'],
    ['devices=a,dmaLogging=a,addressSpaceBits=20', 'addressSpaceBits: expected START-END, not "20"'],
    ['devices=a,migrationFlags=0x100000000', 'migrationFlags: too large'],
    ['iommuDirtyTracking=yes', 'iommuDirtyTracking: 1 or 0'],
    ['viable=2', 'viable: 1 or 0'],
    ['colour=red', 'group spec: unknown key "colour"'],
    ['kind', 'group spec: expected key=value, not "kind"'],
  ])('%s: RangeError %s', (spec, message) => {
    expect(() => parseGroupSpec(spec)).toThrow(new RangeError(message));
  });
});

describe('accelerator spec', () => {
  it('every key', () => {
    expect(parseAccelSpec('name=zip,api=hisi_qm_v2,algorithms=zlib,queues=2,sva=0,maxPasids=0x10,mmioSize=4096,dusSize=0'))
      .toEqual({ name: 'zip', api: 'hisi_qm_v2', algorithms: 'zlib', queues: 2, sva: false, maxPasids: 16, mmioSize: 4096, dusSize: 0 });
    expect(parseAccelSpec('')).toEqual({});
  });

  it.each([
    ['queues=x', 'queues: not a number: "x"'],
    ['sva=2', 'sva: 1 or 0'],
    ['colour=red', 'accelerator spec: unknown key "colour"'],
    ['=zip', 'accelerator spec: expected key=value, not "=zip"'],
  ])('%s: RangeError %s', (spec, message) => {
    expect(() => parseAccelSpec(spec)).toThrow(new RangeError(message));
  });
});
