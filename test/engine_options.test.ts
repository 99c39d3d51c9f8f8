// createEngine's options: one table of known names (src/engine_options.ts); anything else is refused
// before an engine exists.
import { describe, expect, it } from 'vitest';
import { createEngine } from '../src/index.js';

const bad: [string, unknown, ErrorConstructor, string][] = [
  ['unknown name', { bogus: 1 }, TypeError, 'unknown createEngine option: bogus'],
  ['two unknown names', { bogus: 1, profil: 'linux-6.6', dmaEntryLimit: 1 }, TypeError, 'unknown createEngine options: bogus, profil'],
  ['options not an object', 5, TypeError, 'createEngine options must be an object'],
  ['options null', null, TypeError, 'createEngine options must be an object'],
  ['options an array', [], TypeError, 'createEngine options must be an object'],
  ['profile not a string', { profile: 6 }, TypeError, "profile must be a string: 'linux-6.18' or 'linux-6.6'"],
  ['profile unknown', { profile: 'linux-5.10' }, RangeError, "unknown profile 'linux-5.10'"],
  ['flavour unknown', { flavour: 'fast' }, RangeError, "unknown flavour 'fast'"],
  ['dmaEntryLimit a string', { dmaEntryLimit: '10' }, TypeError, 'dmaEntryLimit must be a number, not string'],
  ['dmaEntryLimit a bigint', { dmaEntryLimit: 10n }, TypeError, 'dmaEntryLimit must be a number, not bigint'],
  ['dmaEntryLimit negative', { dmaEntryLimit: -1 }, RangeError, 'dmaEntryLimit must be an integer in [0, 4294967295], not -1'],
  ['dmaEntryLimit fractional', { dmaEntryLimit: 1.5 }, RangeError, 'dmaEntryLimit must be an integer in [0, 4294967295]'],
  ['dmaEntryLimit 2^32', { dmaEntryLimit: 2 ** 32 }, RangeError, 'dmaEntryLimit must be an integer in [0, 4294967295]'],
  ['memoryLimit below one Wasm page', { memoryLimit: 65535 }, RangeError, 'memoryLimit must be an integer in [65536'],
  ['memoryLimit NaN', { memoryLimit: NaN }, RangeError, 'memoryLimit must be an integer'],
];

describe('createEngine options', () => {
  for (const [name, o, type, message] of bad) {
    it(`rejects ${name}`, async () => {
      const r = createEngine(o as never);
      await expect(r).rejects.toThrow(type);
      await expect(r).rejects.toThrow(message);
    });
  }

  it('accepts every known option, and undefined values as their defaults', async () => {
    const e = await createEngine({ profile: 'linux-6.6', dmaEntryLimit: 0, memoryLimit: 1 << 24, flavour: 'release' });
    expect([e.profile.name, e.dmaEntryLimit]).toEqual(['linux-6.6', 0]);
    const d = await createEngine({ profile: undefined, dmaEntryLimit: undefined, memoryLimit: undefined, flavour: undefined });
    expect([d.profile.name, d.dmaEntryLimit]).toEqual(['linux-6.18', 65535]);
    expect((await createEngine()).dmaEntryLimit).toBe(65535);
  });
});
