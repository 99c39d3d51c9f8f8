// Replays a recorded trace (src/sim/trace.ts) against the engine, one line at a time: each line
// is parsed, then applied through the typed API and the devices' vendor-driver calls. A bad line,
// or an event the engine refuses, stops the replay with a TraceError naming the line and the
// reason; nothing after it runs. Each `read` lends its report to a callback (printing, export).
import { VfioError, errnoName } from '../errors.js';
import { DirtyBitmap } from '../core/dirty_bitmap.js';
import { coreOf, readReport, type DirtyReport } from '../export/dirty_report.js';
import { uapi } from '../uapi.js';
import { PAGE_SIZE } from '../u64.js';
import type { SimContainer, SimEngine, SimGroup, SimProcess } from './sim_engine.js';
import { parseTraceLine, TraceError, traceLines, type TraceEvent } from './trace.js';
import type { MdevDevice } from './vgpu.js';

/** One `read` of a trace: where it came from and the report it made. */
export interface ReadResult {
  /** 1-based number of the read in the trace. */
  index: number;
  /** Line of the trace it came from. */
  line: number;
  label?: string;
  /** Range read, and the page size of the bitmap (the container's, or the read's `pagesize`). */
  iova: bigint;
  size: bigint;
  pgsize: bigint;
  /** Bits in the bitmap. */
  pages: number;
  /** Dirty pages. */
  count: number;
  /** The report (bitmap, runs, ...), lent to the onRead callback: it is disposed when it returns. */
  report: DirtyReport;
}

/** What the onRead callback threw: passed on as it is, not blamed on the trace line. */
class OnReadError {
  constructor(readonly cause: unknown) {}
}

/** A device the trace declared, and the pins its driver holds (for dma_unmap notifications). */
interface TraceDevice {
  name: string;
  group: SimGroup;
  dev: MdevDevice;
  pins: { iova: bigint; npage: number }[];
}

/** The default device, made on first need when a trace declares none. */
const DEFAULT_DEVICE = 'dev0';

/** Applies trace events to one container in one process of `engine`. */
export class Replayer {
  private readonly engine: SimEngine;
  private readonly proc: SimProcess;
  private readonly c: SimContainer;
  private readonly devices = new Map<string, TraceDevice>();
  private iommuSet = false;
  private reads = 0;
  /** The guest CPU dirty log (a KVM-style log by guest page), made on the first cpu-dirty. */
  private cpuLog: DirtyBitmap | null = null;

  constructor(engine: SimEngine) {
    this.engine = engine;
    this.proc = engine.createProcess();
    this.c = engine.openContainer(this.proc);
  }

  /**
   * Applies one event; a `read` hands its result to `onRead`. Returns whether it was a read.
   * @throws VfioError (or RangeError) when the engine refuses; the caller names the line
   */
  apply(ev: TraceEvent, line: number, onRead: (r: ReadResult) => void): boolean {
    switch (ev.op) {
      case 'device':
        if (this.devices.has(ev.name)) throw new Error(`device "${ev.name}" is already declared`);
        this.addDevice(ev.name, ev.kind, ev.pins);
        return false;
      case 'map':
        this.ready();
        this.c.map({ iova: ev.iova, size: ev.size, vaddr: this.proc.mmap(ev.size), read: ev.read, write: ev.write });
        return false;
      case 'unmap':
        this.ready();
        this.c.unmap({ iova: ev.iova, size: ev.size });
        return false;
      case 'pin': {
        const d = this.device(ev.device);
        const prot = uapi.IOMMU_READ | (ev.write ? uapi.IOMMU_WRITE : 0);
        const r = d.dev.pinPages(ev.iova, ev.npage, prot);
        if (r < 0) throw new Error(`vfio_pin_pages by "${d.name}" failed: ${errnoName(r)}`);
        d.pins.push({ iova: ev.iova, npage: ev.npage });
        return false;
      }
      case 'unpin': {
        const d = this.device(ev.device);
        d.dev.unpinPages(ev.iova, ev.npage);
        const i = d.pins.findIndex((p) => p.iova === ev.iova && p.npage === ev.npage);
        if (i >= 0) d.pins.splice(i, 1);
        return false;
      }
      case 'write': {
        const d = this.device(ev.device);
        const r = d.dev.dmaRw(ev.iova, new Uint8Array(ev.length).fill(ev.value), true);
        if (r < 0) throw new Error(`vfio_dma_rw write by "${d.name}" failed: ${errnoName(r)}`);
        return false;
      }
      case 'start':
        this.ready();
        this.c.dirty.start();
        return false;
      case 'stop':
        this.ready();
        this.c.dirty.stop();
        return false;
      case 'cpu-dirty':
        this.ready();
        this.cpuDirty(ev.runs);
        return false;
      case 'read':
        this.ready();
        this.read(ev, line, onRead);
        return true;
    }
  }

  /** Frees the CPU dirty log. */
  dispose(): void {
    this.cpuLog?.dispose();
    this.cpuLog = null;
  }

  /** Sets the runs' pages in the CPU log, growing it to the last page named (one core call a run). */
  private cpuDirty(runs: [number, number][]): void {
    if (runs.length === 0) return;
    const [first, n] = runs[runs.length - 1];
    const need = first + n;
    if (need > 2 ** 31) throw new RangeError(`the CPU dirty log covers at most 2^31 pages, run [${first}, ${n}] ends past it`);
    if (!this.cpuLog || this.cpuLog.nbits < need) {
      const grown = DirtyBitmap.create(coreOf(this.c), need);
      if (this.cpuLog) {
        this.cpuLog.orInto(grown, 0);
        this.cpuLog.dispose();
      }
      this.cpuLog = grown;
    }
    for (const [f, c] of runs) this.cpuLog.setRange(f, c);
  }

  /** Reads, then hands the result to `onRead`, lending it the report. */
  private read(ev: Extract<TraceEvent, { op: 'read' }>, line: number, onRead: (r: ReadResult) => void): void {
    const report = readReport(this.c, { iova: ev.iova, size: ev.size, clear: ev.clear });
    let view: DirtyReport = report;
    try {
      if (ev.cpu && report.pgsize !== PAGE_SIZE) throw new RangeError(`"cpu" merges a log of 4 KiB pages, the report's pages are ${report.pgsize} bytes`);
      if (ev.cpu && this.cpuLog) {
        // The CPU log by guest page: report page i is guest page iova / 4 KiB + i.
        const first = Number(ev.iova / PAGE_SIZE);
        if (first < this.cpuLog.nbits) report.mergeFrom(this.cpuLog, first);
        this.cpuLog.clear();
      }
      if (ev.pageSize && ev.pageSize !== report.pgsize) view = report.atPageSize(ev.pageSize);
      const { iova, size, pgsize, pages, count } = view;
      const result: ReadResult = { index: ++this.reads, line, ...(ev.label ? { label: ev.label } : {}), iova, size, pgsize, pages, count, report: view };
      try {
        onRead(result);
      } catch (e) {
        throw new OnReadError(e);
      }
    } finally {
      if (view !== report) view.dispose();
      report.dispose();
    }
  }

  /** The container is usable once a group is attached and the IOMMU set: the default device. */
  private ready(): void {
    if (!this.iommuSet) this.addDevice(DEFAULT_DEVICE, 'emulated', true);
  }

  private addDevice(name: string, kind: 'emulated' | 'iommu', pins: boolean): void {
    const group = this.engine.createGroup({ kind, devices: [name] });
    this.c.attach(group);
    if (!this.iommuSet) {
      this.c.setIommu('type1v2');
      this.iommuSet = true;
    }
    this.c.openDevice(group, name);
    const d: TraceDevice = { name, group, dev: group.devices[0], pins: [] };
    if (pins) {
      d.dev.registerDmaUnmap((iova, size) => {
        for (const p of [...d.pins]) {
          const end = p.iova + BigInt(p.npage) * PAGE_SIZE;
          if (end > iova && p.iova < iova + size) {
            d.dev.unpinPages(p.iova, p.npage);
            d.pins.splice(d.pins.indexOf(p), 1);
          }
        }
      });
    }
    this.devices.set(name, d);
  }

  private device(name: string | undefined): TraceDevice {
    this.ready();
    if (name === undefined) {
      for (const d of this.devices.values()) return d; // the first declared
    }
    const d = this.devices.get(name ?? DEFAULT_DEVICE);
    if (!d) throw new Error(`no device named "${name}" (declare it with {"op":"device","name":"${name}"})`);
    return d;
  }
}

/**
 * Replays `text` line by line, handing each read's result to `onRead` as it happens.
 * @returns counts of events applied and reads made
 * @throws TraceError for the first bad line (parse error or refused event); nothing after it ran;
 *   what `onRead` throws, as it is
 */
export function replayTrace(engine: SimEngine, text: string, onRead: (r: ReadResult) => void): { events: number; reads: number } {
  const r = new Replayer(engine);
  try {
    return replayLines(r, text, onRead);
  } finally {
    r.dispose();
  }
}

function replayLines(r: Replayer, text: string, onRead: (r: ReadResult) => void): { events: number; reads: number } {
  let events = 0;
  let reads = 0;
  for (const [line, src] of traceLines(text)) {
    const ev = parseTraceLine(src, line);
    if (!ev) continue;
    let wasRead: boolean;
    try {
      wasRead = r.apply(ev, line, onRead);
    } catch (e) {
      if (e instanceof VfioError) throw new TraceError(line, `${ev.op} refused by the engine: ${e.message}`);
      if (e instanceof OnReadError) throw e.cause;
      if (e instanceof TraceError) throw e;
      throw new TraceError(line, `${ev.op} failed: ${(e as Error).message}`);
    }
    events++;
    if (wasRead) reads++;
  }
  return { events, reads };
}
