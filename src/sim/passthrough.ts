// The passthrough device: its group as each --tracking mode needs it, its tracker, and its own DMA
// into guest RAM over virtual time (`dev.dmaWrite`, a real engine call through its IOMMU
// mappings), recorded in the truth.
//
// Its DMA: --passthrough-dma-rate bytes/s in 64 KiB writes. A device whose driver pins (type1,
// --passthrough pinning) writes only its pinned rings; otherwise it writes a pool of 512 receive
// buffers of 64 KiB at seeded places across all of RAM, one picked at random per write, so that
// both the 32-bit and the 64-bit logging ranges see writes.
import { vfioError } from '../errors.js';
import type { Core } from '../wasm.js';
import type { SimConfig } from './config.js';
import { DeviceLoggingTracker } from './device_logging_tracker.js';
import { GUEST_PAGE, type GuestLayout } from './guest_layout.js';
import { IommufdTracker } from './iommufd_tracker.js';
import { Prng } from './prng.js';
import { vmmProcess } from './local_kvm.js';
import type { SimEngine, SimGroup, SimProcess } from './sim_engine.js';
import type { PassthroughTracker, PtDevice, TruthLog } from './tracking.js';
import { by } from './vgpu.js';

/** Bytes of one device write. */
export const PT_DMA_CHUNK = 64 << 10;
/** Buffers written together (one pipelined batch over a server connection): 4 MiB of writes. */
const PT_DMA_BATCH = 64;
/** Receive buffers of the pool an unpinned device writes. */
export const PT_DMA_BUFFERS = 512;
const CHUNK_PAGES = PT_DMA_CHUNK / GUEST_PAGE;

/** The createGroup options of the passthrough device's group under `c.tracking`. */
export function passthroughGroup(c: SimConfig, name: string) {
  if (c.tracking === 'device') return { kind: 'iommu' as const, devices: [{ name, dmaLogging: { maxRanges: c.trackerRanges } }] };
  if (c.tracking === 'iommufd') return { kind: 'iommu' as const, devices: [name], iommuDirtyTracking: true };
  return { kind: 'iommu' as const, devices: [name] };
}

/**
 * The passthrough device's tracker under `c.tracking`; null for type1, whose container (which the
 * VM reads every harvest) already covers the device. The VMM's memory is at `base`, RAM order.
 */
export function createTracker(
  engine: SimEngine, core: Core, proc: SimProcess, base: bigint, layout: GuestLayout, c: SimConfig, group: SimGroup, name: string,
): PassthroughTracker | null {
  if (c.tracking === 'iommufd') {
    return new IommufdTracker(core, vmmProcess(proc), ptDevice(group), base, layout.slots, layout.gpaPages, c.trackingPageSize);
  }
  if (c.tracking !== 'device') return null;
  return new DeviceLoggingTracker(core, engine, proc, group, name, base, layout.slots, c.trackingPageSize);
}

/** The passthrough group's device, with its own DMA and its cdev (both engines' devices have them). */
export function ptDevice(group: SimGroup): PtDevice {
  return group.devices[0] as unknown as PtDevice;
}

/** Where the device writes: a pinned ring (guest page, pages), or the pool of buffers. */
export type DmaTargets = { ring: { firstPage: number; pages: number } } | { pool: true };

/** The passthrough device's own writes over virtual time. */
export class PassthroughDma {
  /** Writes the device made (64 KiB each; with pinning, its ring each). */
  writes = 0;
  /** dmaWrite calls made: a buffer written several times in one step is written once. */
  calls = 0;
  private readonly dev: PtDevice;
  private readonly layout: GuestLayout;
  private readonly rate: number;
  private readonly truth: TruthLog;
  private readonly prng: Prng;
  private readonly buffers: Uint32Array; // RAM index of each buffer's first page
  private readonly pages: number; // guest pages of one write: a buffer, or the whole ring
  private readonly data: Uint8Array[] = []; // one per write of a batch
  private readonly hit: Uint8Array; // per buffer: written in this step
  private readonly order: number[] = []; // the buffers written in this step, first write first

  constructor(dev: PtDevice, layout: GuestLayout, rate: number, seed: number, truth: TruthLog, targets: DmaTargets) {
    this.dev = dev;
    this.layout = layout;
    this.rate = rate;
    this.truth = truth;
    this.prng = new Prng(seed ^ 0x2545f491);
    this.pages = 'ring' in targets ? targets.ring.pages : CHUNK_PAGES;
    if ('ring' in targets) {
      this.buffers = Uint32Array.of(targets.ring.firstPage); // low RAM: RAM index = guest page
    } else {
      const chunks = Math.floor(layout.ramPages / CHUNK_PAGES);
      this.buffers = new Uint32Array(PT_DMA_BUFFERS);
      for (let i = 0; i < PT_DMA_BUFFERS; i++) this.buffers[i] = this.prng.below(chunks) * CHUNK_PAGES;
    }
    this.hit = new Uint8Array(this.buffers.length);
  }

  /**
   * The device's writes in virtual time (t0, t1], seconds. No harvest falls inside a step, so a
   * buffer the step writes several times is written once: what any tracker sees is the same.
   */
  run(t0: number, t1: number): void {
    const perS = this.rate / (this.pages * GUEST_PAGE);
    const n = by(perS, t1) - by(perS, t0);
    const many = this.buffers.length > 1;
    for (let i = 0; i < n; i++) {
      const b = many ? this.prng.below(this.buffers.length) : 0;
      if (!this.hit[b]) this.order.push(b);
      this.hit[b] = 1;
    }
    this.writes += n;
    for (let i = 0; i < this.order.length; i += PT_DMA_BATCH) this.write(this.order.slice(i, i + PT_DMA_BATCH));
    this.order.length = 0;
  }

  /**
   * The writes of `buffers` (each its own fill byte), sent together; then the truth records every
   * write that was made.
   * @throws VfioError for the first write that failed (an IOMMU fault)
   */
  private write(buffers: readonly number[]): void {
    const writes: { iova: bigint; data: Uint8Array; page: number; count: number }[] = [];
    buffers.forEach((b, k) => {
      const data = (this.data[k] ??= new Uint8Array(this.pages * GUEST_PAGE));
      this.hit[b] = 0;
      data.fill((++this.calls) & 0xff);
      this.layout.forEachGpaRange(this.buffers[b], this.pages, (page, count) => {
        const iova = BigInt(page) * BigInt(GUEST_PAGE);
        writes.push({ iova, data: count === this.pages ? data : data.subarray(0, count * GUEST_PAGE), page, count });
      });
    });
    const results = this.dev.dmaWrites ? this.dev.dmaWrites(writes) : inTurn(this.dev, writes);
    let failed = -1;
    results.forEach((r, i) => {
      if (r >= 0) this.truth.markRange(writes[i].page, writes[i].count);
      else if (failed < 0) failed = i;
    });
    if (failed >= 0) {
      const w = writes[failed];
      throw vfioError(results[failed], 'passthrough dmaWrite', { start: w.iova, length: BigInt(w.count * GUEST_PAGE) });
    }
  }
}

/** `writes` as dmaWrite calls, stopping at the first that fails: the results of those made. */
function inTurn(dev: PtDevice, writes: readonly { iova: bigint; data: Uint8Array }[]): number[] {
  const out: number[] = [];
  for (const w of writes) {
    const r = dev.dmaWrite(w.iova, w.data);
    out.push(r);
    if (r < 0) break;
  }
  return out;
}
