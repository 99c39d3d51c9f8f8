// The options of createEngine: one table of every known name with its validator. A subsystem that
// adds an option adds one row here (and the field to EngineOptions); createEngine rejects any
// other name with a TypeError, a value of the wrong type with a TypeError, and a value out of
// range with a RangeError, before anything is created.
import type { CoreFlavour } from './wasm.js';
import type { ProfileName } from './vfio/profile.js';

export interface EngineOptions {
  /** Errno table of docs/conformance.md §9: 'linux-6.18' (default) or 'linux-6.6'. */
  profile?: ProfileName;
  /** The type1 module parameter dma_entry_limit; default 65535. */
  dmaEntryLimit?: number;
  /** Bytes of Wasm memory the core may use; default (and at most) just under 2 GiB. */
  memoryLimit?: number;
  /** Which build of the core: 'release' (default) or 'debug' (assertions kept). */
  flavour?: CoreFlavour;
  /** IOASID capacity installed at creation; default 0x100000, 0 = none. */
  ioasidCapacity?: number;
  /** Quota of the system set made at creation when the capacity is > 0; default 32768, 0 = none. */
  ioasidSystemQuota?: number;
  /** Quota of each VM's PASID set (the vfio pasid_quota module parameter); default 1000. */
  vfioPasidQuota?: number;
  /**
   * KVM_USER_MEM_SLOTS: memslot ids per address space, 1..32764; default 32764 (docs/conformance.md
   * §13.6).
   */
  kvmUserMemSlots?: number;
  /** KVM_MAX_VCPUS, 1..4096 (vCPU ids below 4 × this); default 1024 (docs/conformance.md §13.6). */
  kvmMaxVcpus?: number;
}

/** Checks one option's value (never undefined: an undefined value means the default). */
type Validator = (name: string, value: unknown) => void;

/** A validator accepting one of the strings in `choices`. */
export function oneOf(...choices: string[]): Validator {
  return (name, value) => {
    const list = choices.map((c) => `'${c}'`).join(' or ');
    if (typeof value !== 'string') throw new TypeError(`${name} must be a string: ${list}`);
    if (!choices.includes(value)) throw new RangeError(`unknown ${name} '${value}': expected ${list}`);
  };
}

/** A validator accepting an integer number in [min, max]. */
export function integerIn(min: number, max: number): Validator {
  return (name, value) => {
    if (typeof value !== 'number') throw new TypeError(`${name} must be a number, not ${typeof value}`);
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new RangeError(`${name} must be an integer in [${min}, ${max}], not ${value}`);
    }
  };
}

/** Every option createEngine knows, with its validator. */
const ENGINE_OPTIONS: { readonly [K in keyof Required<EngineOptions>]: Validator } = {
  profile: oneOf('linux-6.18', 'linux-6.6'),
  dmaEntryLimit: integerIn(0, 0xffff_ffff),
  memoryLimit: integerIn(65536, Number.MAX_SAFE_INTEGER), // larger than the core can use: capped
  flavour: oneOf('release', 'debug'),
  ioasidCapacity: integerIn(0, 0xffff_ffff),
  ioasidSystemQuota: integerIn(0, 0xffff_ffff),
  vfioPasidQuota: integerIn(1, 0xffff_ffff),
  kvmUserMemSlots: integerIn(1, 32764),
  kvmMaxVcpus: integerIn(1, 4096),
};

/**
 * Validates createEngine's options: unknown names (TypeError naming them all), then each known
 * option's type (TypeError) and range (RangeError). Undefined values stand for the defaults.
 */
export function checkEngineOptions(o: unknown): EngineOptions {
  if (o === undefined) return {};
  if (typeof o !== 'object' || o === null || Array.isArray(o)) {
    throw new TypeError('createEngine options must be an object');
  }
  const unknown = Object.keys(o).filter((k) => !Object.hasOwn(ENGINE_OPTIONS, k));
  if (unknown.length) {
    throw new TypeError(`unknown createEngine option${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`);
  }
  for (const [k, v] of Object.entries(o)) {
    if (v !== undefined) ENGINE_OPTIONS[k as keyof EngineOptions](k, v);
  }
  return o as EngineOptions;
}
