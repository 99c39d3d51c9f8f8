// The pre-copy convergence arithmetic, in virtual time. A round sends its pages at the link
// bandwidth; after each harvest the expected downtime is what stopping the guest now would cost:
// the dirty bytes left, sent at the same bandwidth. Switch-over happens as in QEMU, when the
// bytes left fit in bandwidth x downtime limit (expected downtime <= limit); a run that has done
// maxRounds pre-copy rounds (the bulk round included) without getting there stops unconverged.

/** The parameters of the switch-over decision. */
export interface ConvergenceRule {
  /** Link bandwidth, bytes per second (> 0). */
  bandwidth: number;
  /** Largest acceptable downtime, seconds (> 0). */
  downtimeLimit: number;
  /** Most pre-copy rounds, the bulk round included (>= 1). */
  maxRounds: number;
}

/** Seconds to send `bytes` at `bandwidth` bytes/s. */
export function roundDuration(bytes: number, bandwidth: number): number {
  return bytes / bandwidth;
}

/** Seconds of downtime if the guest stopped now with `remainingBytes` dirty. */
export function expectedDowntime(remainingBytes: number, bandwidth: number): number {
  return remainingBytes / bandwidth;
}

/**
 * Bytes/s of newly dirtied memory seen by a harvest: its dirty bytes over the virtual time since
 * the previous harvest (or since tracking started). 0 when no time passed.
 */
export function dirtyRate(dirtyBytes: number, seconds: number): number {
  return seconds > 0 ? dirtyBytes / seconds : 0;
}

/** What to do after a harvest. */
export type Decision = 'switch-over' | 'continue' | 'give-up';

/**
 * The switch-over rule after a harvest, when `roundsDone` pre-copy rounds have been sent and
 * `pendingBytes` are left (RAM dirty bytes, and a device's pending migration data): switch over
 * when they fit in the downtime; otherwise give up once the round limit is reached; otherwise
 * send another round.
 */
export function decide(rule: ConvergenceRule, roundsDone: number, pendingBytes: number): Decision {
  // QEMU's form of the test (migration_iteration_run): pending <= threshold = bandwidth x limit.
  if (pendingBytes <= rule.bandwidth * rule.downtimeLimit) return 'switch-over';
  if (roundsDone >= rule.maxRounds) return 'give-up';
  return 'continue';
}

/** Throughput of `bytes` sent in `seconds`, in Mbit/s (10^6 bits, as QEMU's mbps); 0 for no time. */
export function throughputMbps(bytes: number, seconds: number): number {
  return seconds > 0 ? (bytes * 8) / seconds / 1e6 : 0;
}
