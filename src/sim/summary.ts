// What a simulated migration produces: one record per round and a summary, in plain units
// (bytes, seconds; engine cost in real milliseconds). `--json` prints `SimSummary` as is; the
// README documents this schema and `SUMMARY_SCHEMA` names its version.
import type { SimConfig } from './config.js';

/** The schema name and version of the JSON summary. */
export const SUMMARY_SCHEMA = 'vfio-dirty/simulate-summary/v1';

/**
 * The phase of a round:
 * - `bulk`: round 0, every RAM page sent while tracking runs;
 * - `precopy`: an iteration sending the pages its harvest found dirty;
 * - `stop-copy`: the guest is stopped and the last dirty pages are sent (the downtime);
 * - `unconverged`: the harvest after the last allowed round; nothing is sent.
 */
export type RoundPhase = 'bulk' | 'precopy' | 'stop-copy' | 'unconverged';

/** One round: the harvest that decided it (none for the bulk round) and what it sent. */
export interface RoundRecord {
  /** 0-based; round 0 is the bulk round. */
  round: number;
  phase: RoundPhase;
  /** Virtual time at which the round starts, seconds. */
  startS: number;
  /** Pages the device report (GET_BITMAP) found dirty; bulk: 0. */
  devicePages: number;
  /** Pages dirty after merging the CPU dirty log; bulk: every RAM page. */
  dirtyPages: number;
  /** Page runs (maximal ranges of dirty pages) in the merged harvest. */
  runs: number;
  /** Pages sent in this round (0 when unconverged). */
  pagesSent: number;
  /** pagesSent x 4 KiB. */
  bytesSent: number;
  /** Virtual seconds the round takes at the link bandwidth. */
  durationS: number;
  /** Dirty bytes found over virtual time since the previous harvest, bytes/s; bulk: 0. */
  dirtyRate: number;
  /** Dirty bytes / bandwidth at this harvest, seconds; bulk: all RAM / bandwidth. */
  expectedDowntimeS: number;
  /** Whether the device report had every mapped page dirty (the non-pinned-group rule). */
  allDirty: boolean;
  /** Real milliseconds the engine spent on this round's harvest (GET_BITMAP, merge, count, runs). */
  harvestMs: number;
}

/** Engine cost, real time, apart from the virtual time of the migration. */
export interface EngineCost {
  /** Number of harvests (GET_BITMAP reads of the whole guest). */
  harvests: number;
  /** Real milliseconds over all harvests. */
  totalMs: number;
  /** Mean real milliseconds per harvest. */
  meanMs: number;
  /** Slowest harvest, real milliseconds. */
  maxMs: number;
  /** Real milliseconds the guest and device activity took (dirty log, pins, dmaRw). */
  activityMs: number;
  /** Peak bytes held by the engine's Wasm heap, sampled at each harvest. */
  peakHeapBytes: number;
}

/** The summary of one simulated migration. */
export interface SimSummary {
  schema: typeof SUMMARY_SCHEMA;
  /** The configuration, in plain units. */
  config: SimConfig;
  /** Guest RAM slots as mapped: guest-physical start and size, bytes. */
  slots: { gpa: number; size: number }[];
  /** Whether switch-over happened within the round limit. */
  converged: boolean;
  /** Pre-copy rounds sent, the bulk round included. */
  rounds: number;
  /** Virtual seconds from the start to the end of the stop-copy (or to giving up). */
  totalTimeS: number;
  /** Converged: the stop-copy time. Not converged: the expected downtime at the last harvest. */
  downtimeS: number;
  /** Bytes sent over the link in all rounds, the stop-copy included. */
  bytesSent: number;
  /** Whether any harvest was all-dirty because a non-pinning IOMMU-backed group was attached. */
  allDirtyRounds: number;
  /** Real cost of the engine. */
  engine: EngineCost;
  /** Real milliseconds the whole run took. */
  wallMs: number;
  /** Every round, in order; the last is `stop-copy` or `unconverged`. */
  roundsDetail: RoundRecord[];
}
