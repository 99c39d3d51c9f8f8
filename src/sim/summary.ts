// What a simulated migration produces: one record per round and a summary, in plain units
// (bytes, seconds; engine cost in real milliseconds). `--json` prints `SimSummary` as is; the
// README documents this schema and `SUMMARY_SCHEMA` names its version.
import type { SimConfig } from './config.js';
import type { CpuLogMode, CpuLogSync } from './cpu_log.js';

/** The schema name and version of the JSON summary. */
export const SUMMARY_SCHEMA = 'vfio-dirty/simulate-summary/v2';

/**
 * The phase of a round:
 * - `bulk`: round 0, every RAM page sent while tracking runs;
 * - `precopy`: an iteration sending the pages its harvest found dirty;
 * - `stop-copy`: the guest is stopped and the last dirty pages are sent (the downtime);
 * - `unconverged`: the harvest after the last allowed round; nothing is sent;
 * - `postcopy`: the guest stops to send the device's stop-copy data, then runs at the destination
 *   while the dirty pages are streamed (--postcopy-after).
 */
export type RoundPhase = 'bulk' | 'precopy' | 'stop-copy' | 'unconverged' | 'postcopy';

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
  /** RAM pages sent in this round (0 when unconverged): normalPages + zeroPages. */
  pagesSent: number;
  /** Normal pages sent (a header and 4 KiB each). */
  normalPages: number;
  /** Zero pages sent (a header and one byte each): the bulk round's zero RAM. */
  zeroPages: number;
  /** Device migration data sent in this round, bytes. */
  deviceBytes: number;
  /** Bytes on the wire in this round: RAM pages with their headers, and device data. */
  bytesSent: number;
  /** Virtual seconds the round takes at the link bandwidth: bytesSent / bandwidth. */
  durationS: number;
  /** Dirty bytes found over virtual time since the previous harvest, bytes/s; bulk: 0. */
  dirtyRate: number;
  /** QEMU's expected downtime: RAM dirty bytes at this harvest / bandwidth, s; bulk: all RAM. */
  expectedDowntimeS: number;
  /** Device data pending at this harvest: pre-copy dirty_bytes and stop_copy_length, bytes. */
  devicePendingBytes: number;
  /** What the switch-over rule compared with bandwidth x limit: RAM dirty bytes + device pending. */
  pendingBytes: number;
  /** Dirty syncs so far (info migrate's dirty sync count; the set-up's sync is the first). */
  dirtySyncCount: number;
  /** info migrate's dirty pages rate after this sync: pages/s over the last period of > 1 s. */
  dirtyPagesRate: number;
  /** The vCPU throttle while this round is sent, percent (0: none). */
  throttlePct: number;
  /** The guest's dirty limit (vCPUs x vcpu-dirty-limit) while this round is sent, bytes/s; 0: none. */
  dirtyLimit: number;
  /** Bytes on the wire since the start, this round included (info migrate's transferred). */
  transferredBytes: number;
  /** Throughput of this round, Mbit/s (10^6 bits); 0 when nothing was sent. */
  mbps: number;
  /** RAM pages sent per second in this round. */
  pagesPerSecond: number;
  /** The accelerator's buffer pages written by PASID since the previous harvest (distinct). */
  accelPages: number;
  /** Buffer pages the accelerator wrote that no harvest has reported since (after this one). */
  accelUnseen: number;
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

/**
 * The figures of QEMU's `info migrate` / `query-migrate` at the end of the run (names as QMP's
 * MigrationInfo and MigrationStats, in camel case; bytes, seconds, Mbit/s).
 */
export interface MigrateInfo {
  /** `completed` when the guest switched over, `active` when the run gave up. */
  status: 'completed' | 'active';
  /** Virtual time of the set-up: 0 in the model (its real engine cost is in `engine`). */
  setupTimeS: number;
  /** Virtual time from the start to the end of the stop-copy (or to giving up). */
  totalTimeS: number;
  /** completed: the stop-copy time (bytes sent with the guest stopped / bandwidth); else null. */
  downtimeS: number | null;
  /** RAM dirty bytes at the last harvest / bandwidth. */
  expectedDowntimeS: number;
  /** Bytes on the wire, headers and device data included. */
  transferredBytes: number;
  /** RAM dirty and not sent: 0 when completed, the last harvest's dirty bytes otherwise. */
  remainingBytes: number;
  /** Guest RAM. */
  totalBytes: number;
  /** Zero pages sent as a header alone (QEMU's `duplicate`). */
  duplicatePages: number;
  /** Pages sent whole. */
  normalPages: number;
  /** normalPages x 4 KiB. */
  normalBytes: number;
  /** transferredBytes x 8 / (totalTimeS - setupTimeS) / 10^6. */
  mbps: number;
  /** (normalPages + duplicatePages) / (totalTimeS - setupTimeS). */
  pagesPerSecond: number;
  /** Dirty pages per second over the last closed sync period. */
  dirtyPagesRate: number;
  /** Dirty syncs, the set-up's included. */
  dirtySyncCount: number;
  /** Bytes sent while the guest ran (bulk and pre-copy rounds). */
  precopyBytes: number;
  /** Bytes sent with the guest stopped. */
  downtimeBytes: number;
  /** Bytes sent after the switch to postcopy (the stream). */
  postcopyBytes: number;
  /** The vCPU throttle at the end, percent (`cpu-throttle-percentage`). */
  cpuThrottlePercentage: number;
  /** The guest's dirty limit in service at the end, bytes/s (0: none). */
  dirtyLimit: number;
  /** The switch-over threshold: bandwidth x downtime limit, bytes. */
  thresholdBytes: number;
}

/** The trade of postcopy: a short stop, then faults. */
export interface PostcopySummary {
  /** The round whose harvest switched to postcopy. */
  round: number;
  /** Pages still dirty at the switch: streamed, or fetched on demand. */
  pages: number;
  /** Pages the guest touched before the stream sent them: fetched on demand. */
  faults: number;
  /** Virtual seconds the guest's vCPUs waited for them: faults x (rtt + one page's transfer). */
  waitS: number;
  /** Virtual seconds of the background stream. */
  streamS: number;
}

/** What the shared accelerator did, and what the migration missed of it. */
export interface AccelSummary {
  /** The PASID the accelerator wrote through. */
  pasid: number;
  /** Jobs run: 64 KiB results written by PASID. */
  jobs: number;
  fallback: 'none' | 'mark-buffers';
  /** Buffer pages written, counted once per round in which they were written. */
  pagesWritten: number;
  /** After the last harvest: buffer pages written and not reported since. */
  unseenAtEnd: number;
  /** Converged: those pages, stale at the destination (what the migration lost); else 0. */
  lost: number;
}

/** The guest CPU's dirty log in KVM, as the VMM read it (--cpu-log). */
export interface CpuLogSummary {
  mode: CpuLogMode;
  vcpus: number;
  /** Guest stores made through the vCPUs (8 bytes each): the workload's page writes and the GPU driver's entries. */
  stores: number;
  /** Per harvest, round 1 on (element i is round i + 1): the pages the CPU log reported and the calls. */
  rounds: CpuLogSync[];
  /** The sums over every harvest. */
  total: CpuLogSync;
  /** The vGPU's shadow of a guest GPU page table through KVM write tracking, or null without a vGPU. */
  shadow: ShadowSummary | null;
}

/** What the vGPU's write-tracking notifier saw. */
export interface ShadowSummary {
  /** Guest pages of the GPU page table the vGPU write-protects. */
  trackedPages: number;
  /** Guest stores to those pages. */
  guestStores: number;
  /** trackWrite calls that named one of its pages (each updates the shadow). */
  trackedWrites: number;
  /** Shadow entries updated from the guest's bytes. */
  shadowUpdates: number;
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
  /** Bytes sent over the link in all rounds, the stop-copy included (headers, device data). */
  bytesSent: number;
  /** The figures of `info migrate` at the end. */
  migrate: MigrateInfo;
  /** The postcopy phase (--postcopy-after), or null. */
  postcopy: PostcopySummary | null;
  /** The shared accelerator (--accelerator), or null. */
  accelerator: AccelSummary | null;
  /** Whether any harvest was all-dirty because a non-pinning IOMMU-backed group was attached. */
  allDirtyRounds: number;
  /** The guest CPU's dirty log in KVM. */
  cpuLog: CpuLogSummary;
  /** Real cost of the engine. */
  engine: EngineCost;
  /** Real milliseconds the whole run took. */
  wallMs: number;
  /** Every round, in order; the last is `stop-copy` or `unconverged`. */
  roundsDetail: RoundRecord[];
}
