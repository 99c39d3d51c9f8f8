// The simulator's configuration, in plain units (bytes, bytes per second, seconds). The command
// line builds it from flags and a JSON file (src/cli/options.ts, the one table of options, their
// defaults and their help); tests and library users may build it directly.
import type { WorkloadKind } from './workload.js';

/** How a passthrough (IOMMU-backed) device takes part: absent, never pinning, or pinning. */
export type PassthroughMode = 'none' | 'unpinned' | 'pinning';
export const PASSTHROUGH_MODES: readonly PassthroughMode[] = ['none', 'unpinned', 'pinning'];

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
  /** The passthrough device's part. */
  passthrough: PassthroughMode;
  /** Seed of every random choice. */
  seed: number;
  /** Virtual time step of the guest and device activity inside a round, seconds. */
  step: number;
  /** Memory cells per round in the report's heat map. */
  heatmapColumns: number;
}
