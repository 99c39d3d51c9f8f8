// The simulator's configuration, in plain units (bytes, bytes per second, seconds). The command
// line builds it from flags and a JSON file (src/cli/options.ts, the one table of options, their
// defaults and their help); tests and library users may build it directly.
import type { AccelConfig } from './accel_workload.js';
import type { WorkloadKind } from './workload.js';
import type { CpuLogMode } from './cpu_log.js';

/** How a passthrough (IOMMU-backed) device takes part: absent, never pinning, or pinning. */
export type PassthroughMode = 'none' | 'unpinned' | 'pinning';
export const PASSTHROUGH_MODES: readonly PassthroughMode[] = ['none', 'unpinned', 'pinning'];

/**
 * How the passthrough device's writes are tracked: by the type1 container (GET_BITMAP), by the
 * device's own tracker (VFIO device DMA logging), or by an IOMMU with dirty bits (iommufd).
 */
export type TrackingMode = 'type1' | 'device' | 'iommufd';
export const TRACKING_MODES: readonly TrackingMode[] = ['type1', 'device', 'iommufd'];

/** Everything a simulated pre-copy migration depends on. */
export interface SimConfig {
  /** Guest RAM, bytes (multiple of 4 KiB). */
  memory: number;
  /** Most RAM placed below the 32-bit PCI hole, bytes. */
  lowMemory: number;
  /** Migration link bandwidth, bytes/s. */
  bandwidth: number;
  /** Downtime limit of the switch-over rule, seconds. */
  downtimeLimit: number;
  /** Most pre-copy rounds, the bulk round included. */
  maxRounds: number;
  /** Guest CPU write pattern. */
  workload: WorkloadKind;
  /** Guest CPU page writes, bytes/s. */
  dirtyRate: number;
  /** hotcold/mixed: hot set share of RAM. */
  hotFraction: number;
  /** hotcold/mixed: share of writes that go to the hot set. */
  hotWeight: number;
  /** Whether the emulated vGPU is present. */
  vgpu: boolean;
  /** Bytes the vGPU keeps pinned (its working set), a multiple of 2 MiB. */
  vgpuPinned: number;
  /** Bytes/s of the working set the vGPU unpins and replaces by newly pinned buffers. */
  vgpuChurn: number;
  /** Bytes/s the vGPU writes into guest memory through dmaRw (its command ring). */
  vgpuDmaRate: number;
  /** Guest memory the vGPU's buffers live in (the top of RAM), bytes. */
  vgpuRegion: number;
  /** Pages of the guest GPU page table the vGPU shadows with KVM write tracking (0: none), at the top of RAM. */
  gpuPtPages: number;
  /** Entries of that table the guest's driver writes per second (8-byte stores through the vCPUs). */
  gpuPtRate: number;
  /** The passthrough device's part. */
  passthrough: PassthroughMode;
  /** Who tracks the passthrough device's writes. */
  tracking: TrackingMode;
  /** --tracking device: the ranges the device's tracker holds (its maxRanges), 1..256. */
  trackerRanges: number;
  /** The page size dirty tracking reports in (the tracker's or the IOMMU's), bytes: a power of two. */
  trackingPageSize: number;
  /** Seed of every random choice. */
  seed: number;
  /** Virtual time step of the guest and device activity inside a round, seconds. */
  step: number;
  /** Memory cells per round in the report's heat map. */
  heatmapColumns: number;
  /** Share of guest RAM that is zero when migration starts (sent as a page header alone), [0, 1]. */
  zeroFraction: number;
  /** The guest's vCPUs (dirty-limit caps each one). */
  vcpus: number;
  /** How the VMM reads KVM's dirty log of the guest CPU's writes (cpu_log.ts). */
  cpuLog: CpuLogMode;
  /** --cpu-log ring: entries per vCPU dirty ring (QEMU's dirty-ring-size). */
  dirtyRingSize: number;
  /** --cpu-log manual: pages per KVM_CLEAR_DIRTY_LOG chunk, as a power of two (QEMU's clear-bitmap-shift). */
  clearBitmapShift: number;
  /** Convergence aids (QEMU's auto-converge and dirty-limit capabilities and parameters). */
  throttle: ThrottleConfig;
  /** The migration state of a VFIO device (migration v2); all 0 when it has none. */
  deviceState: DeviceStateConfig;
  /** A guest process sharing an SVA accelerator that writes results by PASID. */
  accelerator: AccelConfig;
  /** Switch to postcopy after this many pre-copy rounds, the bulk round included; 0: never. */
  postcopyAfter: number;
  /** Postcopy: round-trip time of a page request from the destination, seconds. */
  postcopyRtt: number;
}

/** QEMU's throttling of a guest that dirties memory faster than it is sent. */
export interface ThrottleConfig {
  /** The auto-converge capability: throttle the vCPUs. */
  autoConverge: boolean;
  /** cpu-throttle-initial, percent (1..99). */
  initial: number;
  /** cpu-throttle-increment, percent (1..99). */
  increment: number;
  /** max-cpu-throttle, percent (1..99). */
  max: number;
  /** cpu-throttle-tailslow: smaller increments near the rate that would match the transfer. */
  tailslow: boolean;
  /** throttle-trigger-threshold, percent (1..100): dirty bytes against bytes sent in a period. */
  triggerThreshold: number;
  /** The dirty-limit capability: cap each vCPU's dirty page rate. */
  dirtyLimit: boolean;
  /** vcpu-dirty-limit: the cap per vCPU, bytes/s. */
  vcpuDirtyLimit: number;
}

/**
 * A VFIO migration v2 device's state as it reports it: VFIO_MIG_GET_PRECOPY_INFO's initial_bytes
 * and dirty_bytes, VFIO_DEVICE_FEATURE_MIG_DATA_SIZE's stop_copy_length.
 */
export interface DeviceStateConfig {
  /** initial_bytes: device data to send in pre-copy before anything else. */
  precopyInitial: number;
  /** How fast dirty_bytes grows while the device runs, bytes/s. */
  precopyDirtyRate: number;
  /** stop_copy_length: device data sent with the guest stopped, bytes. */
  stopCopy: number;
}
