// Kernel-version profiles: the errno table of docs/conformance.md §9 and nothing else.
import { EINVAL, EOVERFLOW } from '../../assembly/constants.js';

/** Which kernel's overflow behaviour the engine reproduces. */
export type ProfileName = 'linux-6.18' | 'linux-6.6';

export interface Profile {
  readonly name: ProfileName;
  /** errno for an address or size that wraps past 2^64 (EOVERFLOW from v6.18, EINVAL before). */
  readonly overflow: number;
  /**
   * True from v6.18: ranges ending exactly at 2^64 work everywhere. Before, unmap and GET_BITMAP
   * computed an exclusive end that overflowed to 0: such an unmap removed nothing and GET_BITMAP
   * refused the range.
   */
  readonly topEndUsable: boolean;
  /** v6.18 checks size and wrap before the prot bits of MAP_DMA; earlier kernels after. */
  readonly earlyMapChecks: boolean;
}

const profiles: Record<ProfileName, Profile> = {
  'linux-6.18': { name: 'linux-6.18', overflow: EOVERFLOW, topEndUsable: true, earlyMapChecks: true },
  'linux-6.6': { name: 'linux-6.6', overflow: EINVAL, topEndUsable: false, earlyMapChecks: false },
};

/** The profile named `name`; throws RangeError for an unknown name. */
export function profileOf(name: string | undefined): Profile {
  const p = profiles[(name ?? 'linux-6.18') as ProfileName];
  if (!p) throw new RangeError(`unknown profile '${name}': expected 'linux-6.18' or 'linux-6.6'`);
  return p;
}
