// Who tracks the passthrough device's writes (--tracking), the rules of the options, and the truth
// the simulator keeps to judge every mechanism. The mechanisms live in their own files:
// type1 (the container's GET_BITMAP already covers the device: nothing to add here),
// device DMA logging (device_logging_tracker.ts), iommufd HWPT dirty bits (iommufd_tracker.ts).
//
// The truth: every guest page the guest CPU, the vGPU (dma_rw) or the passthrough device (its own
// DMA) actually wrote since the last harvest, one bit per 4 KiB guest page in the Wasm core. A
// harvest's merged report must contain it (an under-report would lose data at the destination,
// so it throws); what the report holds beyond it is over-reported: sent without need.
import { DirtyBitmap } from '../core/dirty_bitmap.js';
import type { Core } from '../wasm.js';
import type { SimConfig } from './config.js';
import { GUEST_PAGE } from './guest_layout.js';
import type { RoundRecord, TrackingSummary } from './summary.js';
import type { MdevDevice } from './vgpu.js';

/** The passthrough device's tracker, as the VMM drives it. */
export interface PassthroughTracker {
  /** Tracking starts (before the bulk round). */
  start(): void;
  /** ORs the guest pages reported since the last harvest into `into` (bit i = guest page i). */
  harvest(into: DirtyBitmap): void;
  /** Tracking stops (after the last harvest). */
  stop(): void;
  /** The tear-down: mappings, objects and fds go. */
  dispose(): void;
}

/** What the passthrough device's DMA needs of the device (the typed API's VfioDevice). */
export interface PtDevice {
  readonly cdevPath: string | null;
  dmaWrite(iova: bigint, data: Uint8Array): number;
  /**
   * Writes in order, sent together (a remote device pipelines them): each one's result, 0 or
   * -errno; a failed write changes nothing, and the ones after it are made all the same. Where a
   * device lacks it, the writes are dmaWrite calls, stopping at the first that fails.
   */
  dmaWrites?(writes: readonly { iova: bigint; data: Uint8Array }[]): number[];
}

const MiB = 1 << 20;

/**
 * What is wrong with the tracking options of `c`, or null: the option to blame and why. The CLI
 * reports it as that option's error; `MigrationVm` throws it as a RangeError.
 */
export function trackingProblem(c: SimConfig): { option: string; message: string } | null {
  const tps = c.trackingPageSize;
  if (!(tps >= GUEST_PAGE && tps <= 2 * MiB && (tps & (tps - 1)) === 0)) {
    return { option: 'tracking-page-size', message: 'must be a power of two from 4KiB to 2MiB' };
  }
  if (!(Number.isInteger(c.trackerRanges) && c.trackerRanges >= 1 && c.trackerRanges <= 256)) {
    return { option: 'tracker-ranges', message: 'must be an integer from 1 to 256' };
  }
  if (c.tracking === 'type1') {
    if (tps !== GUEST_PAGE) {
      return { option: 'tracking-page-size', message: 'type1 reports in the IOMMU\'s smallest page, 4KiB: GET_BITMAP refuses any other size; larger pages need --tracking device or iommufd' };
    }
    return null;
  }
  if (c.passthrough === 'none') {
    return { option: 'passthrough', message: `none leaves --tracking ${c.tracking} nothing to track: it tracks the passthrough device's own DMA (use --passthrough unpinned, which --tracking implies when --passthrough is not given)` };
  }
  if (c.passthrough === 'pinning') {
    return { option: 'passthrough', message: `pinning narrows type1's report only; with --tracking ${c.tracking} the device is tracked without pins: use --passthrough unpinned` };
  }
  return null;
}

/** Why a replay trace cannot record this run, or null. */
export function traceProblem(c: SimConfig): string | null {
  return c.tracking === 'type1' ? null
    : `--trace records type1 runs only: a replay trace has no device-logging or iommufd events, so --tracking ${c.tracking} cannot be replayed (drop --trace, or use --tracking type1)`;
}

/** The ground truth of what was written since the last harvest, by guest page. */
export class TruthLog {
  readonly bitmap: DirtyBitmap;

  constructor(core: Core, gpaPages: number) {
    this.bitmap = DirtyBitmap.create(core, gpaPages);
  }

  /** `count` guest pages from `first` were written. */
  markRange(first: number, count: number): void {
    this.bitmap.setRange(first, count);
  }

  /** `d` with its dma_rw writes recorded here (GPA = IOVA in the simulator). */
  watch(d: MdevDevice): MdevDevice {
    return {
      registerDmaUnmap: (fn) => d.registerDmaUnmap(fn),
      pinPages: (iova, npage, prot) => d.pinPages(iova, npage, prot),
      unpinPages: (iova, npage) => d.unpinPages(iova, npage),
      dmaRw: (iova, data, write) => {
        const r = d.dmaRw(iova, data, write);
        if (r >= 0 && write && data.length > 0) {
          const first = Number(iova / BigInt(GUEST_PAGE));
          this.markRange(first, Number((iova + BigInt(data.length) - 1n) / BigInt(GUEST_PAGE)) - first + 1);
        }
        return r;
      },
    };
  }

  /**
   * Judges a harvest's merged report (same bits: guest pages from GPA 0) against the truth, then
   * starts the next period: the pages truly written and those reported beyond them.
   * @throws Error when a truly written page is missing from the report (an under-report)
   */
  settle(report: DirtyBitmap): { truePages: number; overReported: number } {
    const truePages = this.bitmap.count();
    const reported = report.count();
    report.orInto(this.bitmap, 0);
    const under = this.bitmap.count() - reported;
    this.bitmap.clear();
    if (under !== 0) throw new Error(`dirty tracking under-reported ${under} truly written page(s): the destination would miss them`);
    return { truePages, overReported: reported - truePages };
  }

  dispose(): void {
    this.bitmap.dispose();
  }
}

/** The run's tracking figures, from its rounds (harvests are the rounds after the bulk one). */
export function trackingSummary(c: SimConfig, rounds: readonly RoundRecord[]): TrackingSummary {
  const harvested = rounds.slice(1);
  const sum = (f: (r: RoundRecord) => number) => harvested.reduce((a, r) => a + f(r), 0);
  return {
    mode: c.tracking,
    mechanism: mechanismOf(c),
    pageSize: c.trackingPageSize,
    trackerRanges: c.tracking === 'device' ? c.trackerRanges : null,
    reportedPages: sum((r) => r.dirtyPages),
    truePages: sum((r) => r.truePages),
    overReported: sum((r) => r.overReported),
    underReported: 0,
  };
}

/** The tracking mechanism of `c` in words (the text summary and the HTML report print it). */
export function mechanismOf(c: SimConfig): string {
  const page = c.trackingPageSize >= MiB ? `${c.trackingPageSize / MiB} MiB` : `${c.trackingPageSize / 1024} KiB`;
  const how = c.tracking === 'device' ? `device DMA logging, a tracker of ${c.trackerRanges} range${c.trackerRanges === 1 ? '' : 's'}`
    : c.tracking === 'iommufd' ? 'iommufd, the HWPT\'s IOPTE dirty bits' : 'type1, the container\'s GET_BITMAP';
  return `${how}, ${page} pages`;
}

/** "N pages reported, M truly written, K over-reported (x %)": one harvest's or a run's figures. */
export function overReportText(t: { reportedPages: number; truePages: number; overReported: number }): string {
  const pct = t.reportedPages > 0 ? ((100 * t.overReported) / t.reportedPages).toFixed(1) : '0.0';
  return `${t.reportedPages} pages reported, ${t.truePages} truly written, ${t.overReported} over-reported (${pct} %), 0 under-reported`;
}
