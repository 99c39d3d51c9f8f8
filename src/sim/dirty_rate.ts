// QEMU's calc-dirty-rate on the simulated guest: the guest's CPU workload runs through KVM vCPUs
// for the calculation time, and the rate is estimated in one of QEMU's three modes:
//
// - page-sampling: sample-pages random pages per GiB of RAM are hashed from the process's memory
//   before and after the period; rate = changed/sampled x RAM MB x 1000 / ms. The guest stores
//   real bytes (a running sequence number) on the sampled pages, so their hashes really change;
//   elsewhere it stores zeros, which need no memory (cpu_log.ts).
// - dirty-ring: each vCPU's dirty ring is reaped (and reset) at the start and at the end; a vCPU's
//   rate is the entries reaped from its ring in the period, as MiB x 1000 / ms; the VM's rate
//   is their sum.
// - dirty-bitmap: the dirty log is started, synced and cleared once (INITIALLY_SET), then synced
//   at the end; the rate is the pages it reported, as MiB x 1000 / ms.
//
// Beside QEMU's figures the result carries the truth the engine knows: the distinct pages the
// workload dirtied in the period, and the estimate's error against it.
import { DirtyBitmap } from '../core/dirty_bitmap.js';
import type { Process } from '../process.js';
import { check } from '../errors.js';
import type { SimConfig } from './config.js';
import { KvmGuest } from './cpu_log.js';
import { GUEST_PAGE, GuestLayout } from './guest_layout.js';
import { Prng } from './prng.js';
import { stepsFor } from './run_bounds.js';
import { Workload } from './workload.js';
import type { Core } from '../wasm.js';

export type DirtyRateMode = 'page-sampling' | 'dirty-ring' | 'dirty-bitmap';
export const DIRTY_RATE_MODES: readonly DirtyRateMode[] = ['page-sampling', 'dirty-ring', 'dirty-bitmap'];
export type TimeUnit = 'second' | 'millisecond';
export const TIME_UNITS: readonly TimeUnit[] = ['second', 'millisecond'];

/** QEMU's limits: calc-time 50 ms to 60 s, sample-pages 128 to 16384 per GiB (default 512). */
export const MIN_CALC_TIME_MS = 50;
export const MAX_CALC_TIME_MS = 60_000;
export const MIN_SAMPLE_PAGES = 128;
export const MAX_SAMPLE_PAGES = 16384;
export const DEFAULT_SAMPLE_PAGES = 512;
/** The most pages the simulator samples: their bytes are real, 4 KiB each. */
export const MAX_SAMPLED_PAGES = 131072;

/** A calc-dirty-rate request, as QMP takes it. */
export interface DirtyRateRequest {
  calcTime: number;
  calcTimeUnit: TimeUnit;
  /** Sample pages per GiB (page-sampling only). */
  samplePages: number;
  mode: DirtyRateMode;
}

/** QEMU's query-dirty-rate answer (DirtyRateInfo), under QMP's names. */
export interface DirtyRateInfo {
  status: 'measured';
  /** MB/s (QEMU's MiB arithmetic), an integer. */
  'dirty-rate': number;
  /** Virtual seconds at which the calculation started. */
  'start-time': number;
  /** The period, in calc-time-unit. */
  'calc-time': number;
  'calc-time-unit': TimeUnit;
  /** Sample pages per GiB; 0 in dirty-ring and dirty-bitmap modes. */
  'sample-pages': number;
  mode: DirtyRateMode;
  /** dirty-ring: each vCPU's rate, MB/s. */
  'vcpu-dirty-rate'?: { id: number; 'dirty-rate': number }[];
}

/** The answer with what the engine knows besides. */
export interface DirtyRateResult {
  schema: typeof DIRTY_RATE_SCHEMA;
  'query-dirty-rate': DirtyRateInfo;
  /** The workload's real figures over the period. */
  truth: {
    /** Distinct guest pages written. */
    pages: number;
    /** Their rate, MB/s (MiB as QEMU counts), unrounded. */
    dirtyRate: number;
    /** Page writes made (repeats counted). */
    pageWrites: number;
  };
  /** The estimate against the truth: MB/s, and relative (null when the truth is 0). */
  error: { dirtyRate: number; relative: number | null };
  /** page-sampling: the pages sampled and those whose hash changed. */
  sampling: { sampled: number; changed: number } | null;
  /** The guest: RAM, workload, vCPUs, seed, the dirty log mode it ran with. */
  guest: Pick<SimConfig, 'memory' | 'lowMemory' | 'workload' | 'dirtyRate' | 'hotFraction' | 'hotWeight' | 'seed' | 'step' | 'vcpus' | 'cpuLog' | 'dirtyRingSize'>;
}

export const DIRTY_RATE_SCHEMA = 'vfio-dirty/dirty-rate/v1';

/** What the measurement needs of an engine: processes and the core. */
export interface DirtyRateEngine {
  createProcess(): Process;
  readonly core: Core;
}

/** The period in milliseconds of a request (QEMU's convert_time_unit). */
export function calcTimeMs(r: Pick<DirtyRateRequest, 'calcTime' | 'calcTimeUnit'>): number {
  return r.calcTimeUnit === 'second' ? r.calcTime * 1000 : r.calcTime;
}

/** QEMU's rate of `pages` in `ms`: qemu_target_pages_to_MiB(pages x 1000) / ms, an integer. */
export function pagesToRate(pages: number, ms: number): number {
  return Math.floor(Math.floor((pages * 1000 * GUEST_PAGE) / 2 ** 20) / ms);
}

/**
 * Measures the guest of `config` (memory, workload, vCPUs, dirty log) as calc-dirty-rate does on a
 * fresh engine. `config.cpuLog` must be `ring` for dirty-ring mode and not `ring` otherwise (the
 * caller checks, with QEMU's message).
 */
export function measureDirtyRate(engine: DirtyRateEngine, config: SimConfig, req: DirtyRateRequest): DirtyRateResult {
  const layout = new GuestLayout(config.memory, config.lowMemory);
  const proc = engine.createProcess();
  const base = proc.mmap(BigInt(config.memory));
  const guest = new KvmGuest(proc, engine.core, layout, base, {
    mode: config.cpuLog, vcpus: config.vcpus, dirtyRingSize: config.dirtyRingSize, clearBitmapShift: config.clearBitmapShift,
  });
  const truth = DirtyBitmap.create(engine.core, layout.gpaPages);
  const log = DirtyBitmap.create(engine.core, layout.gpaPages);
  const workload = new Workload(layout, { kind: config.workload, rate: config.dirtyRate, hotFraction: config.hotFraction, hotWeight: config.hotWeight, seed: config.seed });
  const ms = calcTimeMs(req);
  let sampler: Sampler | null = null;
  try {
    if (req.mode === 'page-sampling') sampler = new Sampler(engine.core, proc, layout, base, req.samplePages, config.seed);
    guest.valued = sampler?.valued ?? null;
    if (req.mode === 'dirty-bitmap') guest.startLogging(log);
    if (req.mode === 'dirty-ring') {
      guest.startLogging(log);
      log.clear();
    }
    const startRing = guest.ringReapedPerVcpu?.slice() ?? [];
    sampler?.hashBefore();
    const sink = {
      pages: (p: Uint32Array, n: number) => {
        truth.setBatch(n === p.length ? p : p.subarray(0, n));
        guest.store(p, 0, n);
      },
      range: (first: number, count: number) => {
        truth.setRange(first, count);
        guest.store(null, first, count);
      },
    };
    const T = ms / 1000;
    const steps = stepsFor(T, config.step);
    for (let i = 0; i < steps; i++) workload.run((T * i) / steps, i === steps - 1 ? T : (T * (i + 1)) / steps, sink);
    let info: DirtyRateInfo;
    const common = { status: 'measured' as const, 'start-time': 0, 'calc-time': req.calcTime, 'calc-time-unit': req.calcTimeUnit, mode: req.mode };
    if (sampler) {
      info = { ...common, 'dirty-rate': sampler.rate(ms, config.memory), 'sample-pages': req.samplePages };
    } else if (req.mode === 'dirty-ring') {
      guest.sync(log);
      const end = guest.ringReapedPerVcpu ?? [];
      const vcpus = end.map((n, id) => ({ id, 'dirty-rate': pagesToRate(n - startRing[id], ms) }));
      info = { ...common, 'dirty-rate': vcpus.reduce((a, v) => a + v['dirty-rate'], 0), 'sample-pages': 0, 'vcpu-dirty-rate': vcpus };
    } else {
      info = { ...common, 'dirty-rate': pagesToRate(guest.sync(log).pages, ms), 'sample-pages': 0 };
    }
    const pages = truth.count();
    const truthRate = (pages * GUEST_PAGE * 1000) / 2 ** 20 / ms;
    const err = info['dirty-rate'] - truthRate;
    return {
      schema: DIRTY_RATE_SCHEMA,
      'query-dirty-rate': info,
      truth: { pages, dirtyRate: truthRate, pageWrites: workload.written },
      error: { dirtyRate: err, relative: pages === 0 ? null : err / truthRate },
      sampling: sampler ? { sampled: sampler.count, changed: sampler.changed } : null,
      guest: {
        memory: config.memory, lowMemory: config.lowMemory, workload: config.workload, dirtyRate: config.dirtyRate, hotFraction: config.hotFraction,
        hotWeight: config.hotWeight, seed: config.seed, step: config.step, vcpus: config.vcpus, cpuLog: config.cpuLog, dirtyRingSize: config.dirtyRingSize,
      },
    };
  } finally {
    sampler?.dispose();
    guest.dispose();
    truth.dispose();
    log.dispose();
  }
}

/**
 * The RAM pages (RAM order) page sampling hashes: (RAM x perGiB) >> 30 of them, drawn from the
 * seed in [0, pages − 1) with repeats, as QEMU draws them (g_rand_int_range).
 */
export function samplePages(layout: GuestLayout, perGiB: number, seed: number): Uint32Array {
  const vfns = new Uint32Array(Math.floor((layout.ramBytes * perGiB) / 2 ** 30));
  new Prng(seed ^ 0x2545f491).fillBelow(vfns, 0, vfns.length, Math.max(1, layout.ramPages - 1));
  return vfns;
}

/**
 * Page sampling (QEMU's record_ramblock_hash_info and calc_page_dirty_rate): RAM is one block,
 * (RAM x sample-pages) >> 30 pages drawn in [0, pages − 1) with repeats, hashed from the process's
 * memory in the core.
 */
class Sampler {
  private readonly core: Core;
  private readonly proc: Process;
  private readonly base: bigint;
  readonly count: number;
  readonly valued: DirtyBitmap;
  private readonly vfns: number; // core: u32 RAM pages sampled
  private readonly before: number; // core: u32 hashes
  private readonly after: number;
  changed = 0;

  constructor(core: Core, proc: Process, layout: GuestLayout, base: bigint, perGiB: number, seed: number) {
    this.core = core;
    this.proc = proc;
    this.base = base;
    const vfns = samplePages(layout, perGiB, seed);
    this.count = vfns.length;
    const x = core.x;
    this.valued = DirtyBitmap.create(core, layout.gpaPages);
    this.vfns = check(x.heap_alloc(Math.max(4, this.count * 4)), 'sampler');
    this.before = check(x.heap_alloc(Math.max(4, this.count * 4)), 'sampler');
    this.after = check(x.heap_alloc(Math.max(4, this.count * 4)), 'sampler');
    core.u32().set(vfns, this.vfns >>> 2);
    layout.toGpaPages(vfns, this.count);
    this.valued.setBatch(vfns);
  }

  hashBefore(): void {
    this.core.x.vmm_page_hashes(this.proc.um.handle, Number(this.base), this.vfns, this.count, this.before, 0);
  }

  /** The estimate after the period of `ms`: changed x RAM MB x 1000 / (sampled x ms). */
  rate(ms: number, ramBytes: number): number {
    this.changed = this.core.x.vmm_page_hashes(this.proc.um.handle, Number(this.base), this.vfns, this.count, this.after, this.before) >>> 0;
    if (this.count === 0) return 0;
    return Math.floor((this.changed * Math.floor(ramBytes / 2 ** 20) * 1000) / (this.count * ms));
  }

  dispose(): void {
    this.valued.dispose();
    this.core.x.heap_free(this.vfns);
    this.core.x.heap_free(this.before);
    this.core.x.heap_free(this.after);
  }
}
