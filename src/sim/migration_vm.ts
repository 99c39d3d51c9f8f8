// The VM being migrated, as the simulator drives it: the VMM's set-up (process memory, a type1v2
// container, the vGPU's group and an optional passthrough group, one mapping per RAM slot), the
// guest and device activity over virtual time, the harvest of each round, and the tear-down.
// Every call here is a real engine call; nothing here writes files.
import { performance } from 'node:perf_hooks';
import { DirtyBitmap } from '../core/dirty_bitmap.js';
import { coreOf, readReport, type DirtyReport } from '../export/dirty_report.js';
import type { Core } from '../wasm.js';
import { KvmGuest, type CpuLogSync } from './cpu_log.js';
import { vmmProcess } from './local_kvm.js';
import type { SimConfig } from './config.js';
import { GUEST_PAGE, GuestLayout } from './guest_layout.js';
import { stepsFor } from './run_bounds.js';
import type { SimContainer, SimEngine, SimGroup, SimProcess } from './sim_engine.js';
import { AccelWorkload } from './accel_workload.js';
import { runPostcopy, type PostcopyResult } from './postcopy.js';
import type { TraceRecorder } from './trace_recorder.js';
import { VgpuDriver, type MdevDevice } from './vgpu.js';
import { createTracker, PassthroughDma, passthroughGroup, ptDevice } from './passthrough.js';
import { trackingProblem, traceProblem, TruthLog, type PassthroughTracker } from './tracking.js';
import { shadowOf, type GpuShadow } from './gpu_shadow.js';
import { Workload, type DirtySink } from './workload.js';

/** The passthrough device's rings, pinned in `pinning` mode: 64 KiB at GPA 1 MiB. */
const PT_RING_GPA = 1 << 20;
const PT_RING_PAGES = 16;
/** The passthrough device's name (a PCI address). */
const PT_NAME = '0000:65:00.0';

/** A harvest: the merged report (the caller disposes it) and what the device report alone found. */
export interface Harvest {
  report: DirtyReport;
  /** Pages the GET_BITMAP read and the passthrough device's tracker found dirty, before the CPU log was merged. */
  devicePages: number;
  /** The accelerator's buffer pages written since the last harvest, and those no harvest has seen. */
  accel: { written: number; unseen: number } | null;
  /** What KVM's dirty log reported, and the calls the harvest took. */
  cpu: CpuLogSync;
  /** Pages truly written since the last harvest, and those the report holds beyond them. */
  truth: { truePages: number; overReported: number };
  /** Real milliseconds the truth's bookkeeping took: the simulator's, not a tracking cost. */
  truthMs: number;
}

/** Runs `f`; a failure is dropped (the set-up's own failure is the one the caller sees). */
function attempt(f: () => unknown): void {
  try {
    f();
  } catch {
    // a later release step, or the process's exit, still frees it
  }
}

/**
 * The host side of a failed set-up: an in-process process exits (its fds, mappings, memory, pins
 * and VMs go; docs/conformance.md §13.3), then the groups made for it are removed (§13.4). A
 * server's process and groups have neither call here: the remote engine ends them.
 */
function releaseHost(proc: SimProcess, groups: SimGroup[]): void {
  const local = proc as SimProcess & { exit?: () => number };
  if (typeof local.exit !== 'function') return;
  attempt(() => local.exit!());
  for (const g of groups) attempt(() => (g as SimGroup & { remove?: () => number }).remove?.());
}

// The guest's writes go to a sink made once a simulation. Classes rather than objects of
// closures: the workload's calls to them then stay monomorphic from one compare cell to the next,
// where new closures each cell would make V8 drop its optimised workload code and compile it again.

/** Writes made by the guest's vCPUs (precopy). */
class GuestStores implements DirtySink {
  constructor(private readonly kvm: KvmGuest) {}

  pages(pages: Uint32Array, n: number): void {
    this.kvm.store(pages, 0, n);
  }

  range(first: number, count: number): void {
    this.kvm.store(null, first, count);
  }
}

/** Writes noted straight in the CPU log (postcopy: the guest runs at the destination). */
class LoggedWrites implements DirtySink {
  constructor(private readonly log: DirtyBitmap) {}

  pages(pages: Uint32Array, n: number): void {
    this.log.setBatch(n === pages.length ? pages : pages.subarray(0, n));
  }

  range(first: number, count: number): void {
    this.log.setRange(first, count);
  }
}

/** A guest mapped into a container of `engine`, with its devices and CPU dirty log. */
export class MigrationVm {
  readonly layout: GuestLayout;
  /** Real milliseconds the guest and device activity took. */
  activityMs = 0;
  /**
   * Share of its nominal write rate the guest runs at (1: unthrottled): what a CPU throttle or a
   * dirty limit leaves. Devices are not slowed: DMA is not a vCPU.
   */
  guestScale = 1;
  /**
   * How far the guest's own clock (the unthrottled running its writes count) is behind virtual
   * time, seconds: 0 until a throttle, so an unthrottled run writes what it always did.
   */
  private guestLagS = 0;
  private readonly config: SimConfig;
  private readonly c: SimContainer;
  private readonly core: Core;
  private readonly vgpu: VgpuDriver | null = null;
  private readonly ptDevice: MdevDevice | null = null;
  private readonly cpuLog: DirtyBitmap; // what KVM's dirty log reported at a sync, by guest page
  /** The VM in KVM: the guest's writes go through its vCPUs. */
  readonly kvm: KvmGuest;
  private sink: DirtySink;
  private readonly workload: Workload;
  private readonly trace: TraceRecorder | undefined;
  private harvests = 0;
  private readonly truth: TruthLog; // what was truly written since the last harvest
  private readonly tracker: PassthroughTracker | null = null;
  private readonly ptDma: PassthroughDma | null = null;
  /** The vGPU's shadow of the guest's GPU page table, when there is a vGPU. */
  readonly shadow: GpuShadow | null = null;
  /** The shared accelerator's workload, when there is one. */
  readonly accel: AccelWorkload | null = null;

  /**
   * The VMM's set-up: process memory, container, groups, mappings, devices (a fresh engine).
   * With `trace`, the set-up and every later engine event are recorded as a replayable trace.
   * A step that throws (ENOMEM under memory pressure, a refused call) first releases what the
   * earlier steps made, newest first: the simulator's own buffers in the core, the KVM guest, the
   * mappings and the container; then an in-process process exits, which takes its fds, memory,
   * pins and VMs with it, and the groups made here are removed. (A server's process and groups
   * end with the remote engine's dispose.)
   */
  constructor(engine: SimEngine, config: SimConfig, trace?: TraceRecorder) {
    this.config = config;
    this.trace = trace;
    const problem = trackingProblem(config);
    if (problem) throw new RangeError(`--${problem.option}: ${problem.message}`);
    if (trace && traceProblem(config)) throw new RangeError(traceProblem(config)!);
    const layout = (this.layout = new GuestLayout(config.memory, config.lowMemory));
    const proc = engine.createProcess();
    const groups: SimGroup[] = [];
    const undo: (() => void)[] = []; // what each step made, released newest first on failure
    try {
      const base = proc.mmap(BigInt(config.memory));
      const c = (this.c = engine.openContainer(proc));
      undo.push(() => c.close());
      // The container needs a group for SET_IOMMU: the vGPU's, or an idle emulated one without it.
      const mdevName = config.vgpu ? 'vgpu0' : 'mdev-idle';
      const mdevGroup = engine.createGroup({ kind: 'emulated', devices: [mdevName] });
      groups.push(mdevGroup);
      const kproc = vmmProcess(proc);
      // The VMM's fd of the group, for KVM_DEV_VFIO_FILE_ADD: the container's own where attaching opened one.
      const ownFd = c.attachedGroupFd ? -1 : kproc.open(`/dev/vfio/${mdevGroup.id}`);
      if (ownFd >= 0) undo.push(() => kproc.close(ownFd));
      c.attach(mdevGroup);
      const mdevFd = c.attachedGroupFd ? c.attachedGroupFd(mdevGroup) : ownFd;
      const ptGroup = config.passthrough !== 'none' ? engine.createGroup(passthroughGroup(config, PT_NAME)) : null;
      if (ptGroup) groups.push(ptGroup);
      if (ptGroup && config.tracking === 'type1') c.attach(ptGroup);
      c.setIommu('type1v2');
      undo.push(() => c.unmapAll());
      trace?.event({ op: 'device', name: mdevName, kind: 'emulated', pins: config.vgpu });
      if (ptGroup) trace?.event({ op: 'device', name: PT_NAME, kind: 'iommu', pins: config.passthrough === 'pinning' });
      for (const s of layout.slots) {
        c.map({ iova: BigInt(s.gpa), vaddr: base + BigInt(s.firstRamPage) * BigInt(GUEST_PAGE), size: BigInt(s.size) });
        trace?.event({ op: 'map', iova: BigInt(s.gpa), size: BigInt(s.size), read: true, write: true });
      }
      this.core = coreOf(c);
      const truth = (this.truth = new TruthLog(this.core, layout.gpaPages));
      undo.push(() => truth.dispose());
      const cpuLog = (this.cpuLog = DirtyBitmap.create(this.core, layout.gpaPages));
      undo.push(() => cpuLog.dispose());
      const kvm = (this.kvm = new KvmGuest(kproc, this.core, layout, base, {
        mode: config.cpuLog, vcpus: config.vcpus, dirtyRingSize: config.dirtyRingSize, clearBitmapShift: config.clearBitmapShift,
      }));
      undo.push(() => kvm.dispose());
      this.sink = new GuestStores(kvm);
      const traced = (d: MdevDevice, name: string) => truth.watch(trace ? trace.device(d, name) : d);
      if (config.vgpu) {
        kvm.addVfioGroup(mdevFd);
        c.openDevice(mdevGroup, 'vgpu0');
        const top = layout.slots[layout.slots.length - 1];
        this.vgpu = new VgpuDriver(traced(mdevGroup.devices[0], 'vgpu0'), {
          regionGpa: top.gpa + top.size - config.vgpuRegion,
          regionSize: config.vgpuRegion,
          pinned: config.vgpuPinned,
          churn: config.vgpuChurn,
          dmaRate: config.vgpuDmaRate,
          seed: config.seed,
        });
        this.shadow = shadowOf(mdevGroup.devices[0], kvm, top.gpa + top.size, config);
      }
      if (ptGroup && config.passthrough === 'pinning') {
        c.openDevice(ptGroup, PT_NAME);
        const pt = (this.ptDevice = traced(ptGroup.devices[0], PT_NAME));
        pt.registerDmaUnmap(() => pt.unpinPages(BigInt(PT_RING_GPA), PT_RING_PAGES));
      }
      if (ptGroup) {
        const dev = ptDevice(ptGroup);
        const targets = config.passthrough === 'pinning' ? { ring: { firstPage: PT_RING_GPA / GUEST_PAGE, pages: PT_RING_PAGES } } : { pool: true as const };
        this.ptDma = new PassthroughDma(dev, layout, config.passthroughDmaRate, config.seed, truth, targets);
        const tracker = (this.tracker = createTracker(engine, this.core, proc, base, layout, config, ptGroup, PT_NAME));
        if (tracker) undo.push(() => tracker.dispose());
      }
      if (config.accelerator.enabled) {
        // The buffers are in low RAM, where RAM index = guest page: process address = base + GPA.
        const accel = (this.accel = new AccelWorkload(engine, proc, this.core, config.accelerator, (gpa) => base + BigInt(gpa)));
        undo.push(() => accel.dispose());
      }
      this.workload = new Workload(layout, {
        kind: config.workload, rate: config.dirtyRate, hotFraction: config.hotFraction, hotWeight: config.hotWeight, seed: config.seed,
      });
    } catch (e) {
      for (const f of undo.reverse()) attempt(f);
      releaseHost(proc, groups);
      throw e;
    }
  }

  /** Tracking starts; the vGPU pins its working set and the passthrough driver its rings. */
  start(): void {
    this.c.dirty.start();
    this.kvm.startLogging(this.cpuLog);
    this.trace?.event({ op: 'start' });
    this.tracker?.start();
    this.vgpu?.start();
    this.shadow?.start();
    if (this.ptDevice) {
      const r = this.ptDevice.pinPages(BigInt(PT_RING_GPA), PT_RING_PAGES, 3);
      if (r !== PT_RING_PAGES) throw new Error(`passthrough pinPages failed: ${r}`);
    }
  }

  /**
   * Guest and device activity over virtual time (t0, t1], in steps of --step (at most
   * MAX_STEPS_PER_ROUND of them: longer rounds take longer steps); `onStep` gets the share done.
   */
  run(t0: number, t1: number, onStep?: (fraction: number) => void): void {
    const a0 = performance.now();
    const steps = stepsFor(t1 - t0, this.config.step);
    for (let i = 0; i < steps; i++) {
      const a = t0 + ((t1 - t0) * i) / steps;
      const b = i === steps - 1 ? t1 : t0 + ((t1 - t0) * (i + 1)) / steps;
      const lag = this.guestLagS + (b - a) * (1 - this.guestScale);
      this.workload.run(a - this.guestLagS, b - lag, this.sink);
      this.shadow?.run(a - this.guestLagS, b - lag);
      this.guestLagS = lag;
      this.vgpu?.run(a, b);
      this.ptDma?.run(a, b);
      this.accel?.run(a, b);
      onStep?.((i + 1) / steps);
    }
    this.activityMs += performance.now() - a0;
  }

  /**
   * KVM's dirty log, then a GET_BITMAP read of the whole guest and the passthrough device's
   * tracker's reports, merged; judged against the truth (an under-report throws).
   */
  harvest(): Harvest {
    const size = BigInt(this.layout.gpaEnd);
    const cpu = this.kvm.sync(this.cpuLog);
    let t0 = performance.now();
    this.cpuLog.orInto(this.truth.bitmap, 0); // the guest CPU's part of the truth: KVM's log
    let truthMs = performance.now() - t0;
    this.accel?.markBuffers(this.cpuLog);
    if (this.trace) {
      this.trace.cpuDirty(this.cpuLog);
      this.trace.event({ op: 'read', iova: 0n, size, clear: true, cpu: true, label: `round ${++this.harvests}` });
    }
    const report = readReport(this.c, { iova: 0n, size, core: this.core });
    try {
      this.tracker?.harvest(report.bitmap);
      const devicePages = report.count;
      report.mergeFrom(this.cpuLog);
      this.cpuLog.clear();
      t0 = performance.now();
      const truth = this.truth.settle(report.bitmap);
      truthMs += performance.now() - t0;
      return { report, devicePages, accel: this.accel ? this.accel.harvested(report) : null, cpu, truth, truthMs };
    } catch (e) {
      report.dispose();
      throw e;
    }
  }

  /**
   * Postcopy from virtual time `t0`: the guest runs unthrottled at the destination while `dirty`
   * (runs of guest pages) is streamed; what it touched first is fetched on demand.
   */
  postcopy(dirty: Uint32Array, t0: number): PostcopyResult {
    this.guestScale = 1;
    // The guest runs at the destination now: its writes are the pages it touches there.
    this.shadow?.stop();
    const cpuLog = this.cpuLog;
    this.sink = new LoggedWrites(cpuLog);
    const vm = { core: this.core, gpaPages: this.layout.gpaPages, cpuLog, run: (a: number, b: number) => this.run(a, b) };
    return runPostcopy(vm, dirty, t0, this.config.bandwidth, this.config.postcopyRtt, this.config.step);
  }

  /** Tear-down: the devices let go, tracking stops, the mappings and the container go. */
  dispose(): void {
    this.accel?.dispose();
    this.vgpu?.stop();
    this.shadow?.stop();
    if (this.ptDevice) this.ptDevice.unpinPages(BigInt(PT_RING_GPA), PT_RING_PAGES);
    this.c.dirty.stop();
    this.trace?.event({ op: 'stop' });
    this.tracker?.stop();
    this.tracker?.dispose();
    this.truth.dispose();
    this.kvm.dispose();
    this.cpuLog.dispose();
    this.c.unmapAll();
    this.c.close();
  }
}
