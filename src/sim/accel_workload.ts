// A guest process sharing an SVA accelerator: it submits jobs to a queue of the accelerator, and
// each job writes its 64 KiB result into the process's result buffers, in turn, through the
// device's PASID (`accel.dmaWrite`, a real engine call). The process is modelled by the VMM's own
// process, whose memory is guest RAM: the buffers are a span of guest RAM (`buffersGpa`), and the
// PASID is the one `engine.sva` gives that process (a per-VM PASID set is not modelled).
//
// The blind spot: a write through a PASID is neither a VFIO DMA (no pin, no dma_rw) nor a vCPU
// store, so no harvest (GET_BITMAP merged with the CPU dirty log) sees it. The simulator keeps the
// truth: `unseen` holds the buffer pages the accelerator wrote that no harvest has reported since,
// the pages a switch-over would leave stale at the destination. The fallback `mark-buffers` has
// the VMM mark the queue's buffers dirty by hand before each harvest: nothing is lost, every
// buffer page is sent every round.
import { DirtyBitmap } from '../core/dirty_bitmap.js';
import { vfioError } from '../errors.js';
import type { DirtyReport } from '../export/dirty_report.js';
import type { Core } from '../wasm.js';
import { GUEST_PAGE } from './guest_layout.js';

/** Bytes each job writes: one result chunk. */
export const ACCEL_JOB = 64 << 10;
/** Where the result buffers start in guest-physical memory (low RAM). */
export const ACCEL_BUFFERS_GPA = 32 << 20;
const JOB_PAGES = ACCEL_JOB / GUEST_PAGE;

/** What to do about the writes no dirty record sees. */
export type AccelFallback = 'none' | 'mark-buffers';
export const ACCEL_FALLBACKS: readonly AccelFallback[] = ['none', 'mark-buffers'];

/** The accelerator workload's configuration. */
export interface AccelConfig {
  enabled: boolean;
  /** Result bytes the jobs write per second. */
  rate: number;
  /** The result buffers, bytes (a multiple of 64 KiB), from ACCEL_BUFFERS_GPA. */
  buffers: number;
  fallback: AccelFallback;
}

/** The engine calls the workload makes (the typed API: `engine.createAccelerator`, `engine.sva`). */
export interface AccelEngine {
  createAccelerator(o?: { name?: string }): AccelDevice;
  readonly sva: {
    bindDevice(accel: never, proc: never): unknown;
    getPasid(handle: never): number;
    unbindDevice(handle: never): number;
  };
}
export interface AccelDevice {
  dmaWrite(pasid: number, va: bigint, data: Uint8Array): number;
  remove(): number;
}

/** The shared accelerator's jobs over virtual time, and what the harvests missed. */
export class AccelWorkload {
  /** The PASID of the process's bond. */
  readonly pasid: number;
  /** Jobs run (results written). */
  jobs = 0;
  /** Distinct buffer pages written since the last harvest. */
  private roundChunks = 0;
  private cursor = 0;
  private readonly chunks: number;
  private readonly firstPage: number;
  private readonly pages: number;
  private readonly accel: AccelDevice;
  private readonly handle: unknown;
  private readonly unseen: DirtyBitmap; // by buffer page
  private readonly data = new Uint8Array(ACCEL_JOB);

  /**
   * Creates the accelerator and binds the process to it.
   * @param vaOf the process address of a guest-physical address
   * @throws VfioError when the engine refuses the bind
   */
  constructor(engine: AccelEngine, proc: unknown, core: Core, private readonly c: AccelConfig, private readonly vaOf: (gpa: number) => bigint) {
    this.chunks = c.buffers / ACCEL_JOB;
    this.firstPage = ACCEL_BUFFERS_GPA / GUEST_PAGE;
    this.pages = c.buffers / GUEST_PAGE;
    // The bitmap first: a failure after it frees it, and one after the accelerator removes that.
    this.unseen = DirtyBitmap.create(core, this.pages);
    try {
      this.accel = engine.createAccelerator({ name: 'accel0' });
    } catch (e) {
      this.unseen.dispose();
      throw e;
    }
    const h = engine.sva.bindDevice(this.accel as never, proc as never);
    if (typeof h === 'number') {
      this.unseen.dispose();
      this.accel.remove();
      throw vfioError(h, 'sva.bindDevice');
    }
    this.handle = h;
    this.pasid = engine.sva.getPasid(h as never);
    this.unbind = () => engine.sva.unbindDevice(h as never);
  }

  private readonly unbind: () => number;

  /** The jobs of virtual time (t0, t1]: results written in turn through the buffers. */
  run(t0: number, t1: number): void {
    const n = by(this.c.rate / ACCEL_JOB, t1) - by(this.c.rate / ACCEL_JOB, t0);
    for (let i = 0; i < n; i++) {
      const gpa = ACCEL_BUFFERS_GPA + this.cursor * ACCEL_JOB;
      this.data.fill((this.jobs + 1) & 0xff);
      const r = this.accel.dmaWrite(this.pasid, this.vaOf(gpa), this.data);
      if (r !== 0) throw vfioError(r, `accel.dmaWrite by PASID ${this.pasid}`, { start: this.vaOf(gpa), length: BigInt(ACCEL_JOB) });
      this.unseen.setRange(this.cursor * JOB_PAGES, JOB_PAGES);
      this.cursor = (this.cursor + 1) % this.chunks;
      this.jobs++;
    }
    this.roundChunks = Math.min(this.chunks, this.roundChunks + n);
  }

  /** The fallback, before a harvest: the buffers' pages into the CPU log (guest page numbers). */
  markBuffers(cpuLog: DirtyBitmap): void {
    if (this.c.fallback === 'mark-buffers') cpuLog.setRange(this.firstPage, this.pages);
  }

  /**
   * After a harvest: the buffer pages it reported are seen again.
   * @returns distinct pages written since the last harvest, and pages written and not seen since
   */
  harvested(report: DirtyReport): { written: number; unseen: number } {
    const runs = report.bitmap.runs(this.firstPage, this.pages);
    for (let i = 0; i < runs.length; i += 2) this.unseen.clearRange(runs[i] - this.firstPage, runs[i + 1]);
    const written = this.roundChunks * JOB_PAGES;
    this.roundChunks = 0;
    return { written, unseen: this.unseen.count() };
  }

  /** The bond and the accelerator go. */
  dispose(): void {
    this.unseen.dispose();
    this.unbind();
    this.accel.remove();
  }
}

function by(perSecond: number, t: number): number {
  return Math.floor(perSecond * t + 1e-9);
}
