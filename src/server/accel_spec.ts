// The text form of a shared accelerator (CREATE_ACCELERATOR, docs/PROTOCOL.md §4): comma-separated
// key=value pairs, e.g. `name=zip,queues=4,maxPasids=16`; values are checked by createAccelerator.
import type { AcceleratorOptions } from '../accel/accelerator.js';
import { flag, int, specPairs } from './group_spec.js';

const STRINGS = ['name', 'api', 'algorithms'] as const;
const NUMBERS = ['queues', 'maxPasids', 'mmioSize', 'dusSize'] as const;

/** Parses an accelerator spec; throws RangeError naming a bad key or value. */
export function parseAccelSpec(spec: string): AcceleratorOptions {
  const o: AcceleratorOptions = {};
  for (const [k, v] of specPairs(spec, 'accelerator spec')) {
    if ((STRINGS as readonly string[]).includes(k)) o[k as (typeof STRINGS)[number]] = v;
    else if ((NUMBERS as readonly string[]).includes(k)) o[k as (typeof NUMBERS)[number]] = int(v, k);
    else if (k === 'sva') o.sva = flag(v, k);
    else throw new RangeError(`accelerator spec: unknown key ${JSON.stringify(k)}`);
  }
  return o;
}
