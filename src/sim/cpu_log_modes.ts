// The three ways the simulator's VMM harvests KVM's dirty log (QEMU's accel/kvm/kvm-all.c):
// GET_DIRTY_LOG (bitmap), GET then CLEAR in chunks (manual protect), and the dirty ring. Each
// sync ORs the pages into a bitmap by guest page; the per-page and per-entry work runs in the
// local core over the bytes read from process memory (assembly/kvm_vmm.ts, the bitmap kernels),
// whether the process is in this engine or behind a server.
import { DirtyBitmap } from '../core/dirty_bitmap.js';
import { check, vfioError } from '../errors.js';
import { nbytes } from '../kvm/memslot.js';
import { uapi } from '../uapi.js';
import type { Core } from '../wasm.js';
import type { CpuLogOptions, CpuLogSync } from './cpu_log.js';
import type { KvmProcess } from './sim_engine.js';

/** Pages of a dirty log read over at a time: 32 KiB of log. */
const FETCH_PAGES = 1 << 18;

/** A memslot as the VMM made it. */
export interface SlotLog {
  id: number;
  /** Guest page of the slot's first page (a multiple of 64: RAM slots start 256 KiB aligned). */
  gpaPage: number;
  npages: number;
  gpa: bigint;
  /** Host address of the slot's memory. */
  uaddr: bigint;
}

/** What a harvester works with. */
export interface HarvestContext {
  proc: KvmProcess;
  /** The local core: the bitmaps and the per-entry work. */
  core: Core;
  vmFd: number;
  gpaPages: number;
}

/** One dirty-log mode. */
export interface CpuLogHarvester {
  /** KVM_ENABLE_CAP before memslots and vCPUs exist. */
  enable(): void;
  /** The slots and vCPU fds exist. */
  attach(slots: SlotLog[], vcpuFds: number[]): void;
  /** ORs the pages logged since the last sync into `into`. */
  sync(into: DirtyBitmap): void;
  /** A vCPU stopped soft-full (ring mode only). */
  ringFull(): void;
  /** Ring entries reaped from each vCPU so far (ring mode), else null. */
  readonly perVcpu?: readonly number[];
  /** The calls made since the last call of counts(), which restarts them. */
  counts(): Omit<CpuLogSync, 'pages'>;
  dispose(): void;
}

/** The harvester of `o.mode`. */
export function createHarvester(o: CpuLogOptions, c: HarvestContext): CpuLogHarvester {
  return o.mode === 'ring' ? new RingHarvester(o, c) : new BitmapHarvester(o, c);
}

/** KVM_ENABLE_CAP(cap, args[0]). */
function enableCap(c: HarvestContext, cap: number, arg0: number): void {
  const b = new Uint8Array(104);
  const v = new DataView(b.buffer);
  v.setUint32(0, cap, true);
  v.setBigUint64(8, BigInt(arg0), true);
  check(c.proc.ioctl(c.vmFd, uapi.KVM_ENABLE_CAP, b), `KVM_ENABLE_CAP(${cap})`);
}

/** Calls counted since the last counts(). */
class Counts {
  getCalls = 0;
  clearCalls = 0;
  reaped = 0;
  resets = 0;
  fullEvents = 0;

  take(): Omit<CpuLogSync, 'pages'> {
    const r = { getCalls: this.getCalls, clearCalls: this.clearCalls, reaped: this.reaped, resets: this.resets, fullEvents: this.fullEvents };
    this.getCalls = this.clearCalls = this.reaped = this.resets = this.fullEvents = 0;
    return r;
  }
}

/**
 * bitmap and manual: each slot's log is fetched with GET_DIRTY_LOG into the VMM's buffer for it
 * (QEMU's KVMSlot dirty_bmap, process memory) and ORed into the harvest; in manual mode the
 * fetched bits are then cleared with CLEAR_DIRTY_LOG, one call per chunk that holds any.
 */
class BitmapHarvester implements CpuLogHarvester {
  private readonly c: HarvestContext;
  private readonly manual: boolean;
  private readonly chunk: number;
  private slots: SlotLog[] = [];
  private buffers: bigint[] = [];
  /** A piece of a fetched log, read over into the local core (FETCH_PAGES pages at a time). */
  private piece: DirtyBitmap | null = null;
  private readonly n = new Counts();

  constructor(o: CpuLogOptions, c: HarvestContext) {
    this.c = c;
    this.manual = o.mode === 'manual';
    this.chunk = 2 ** o.clearBitmapShift;
  }

  enable(): void {
    if (!this.manual) return;
    // QEMU: the reported caps, limited to MANUAL_PROTECT_ENABLE | INITIALLY_SET.
    const caps = check(this.c.proc.ioctl(this.c.vmFd, uapi.KVM_CHECK_EXTENSION, uapi.KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2), 'KVM_CHECK_EXTENSION');
    const want = caps & (uapi.KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE | uapi.KVM_DIRTY_LOG_INITIALLY_SET);
    if (!(want & uapi.KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE)) throw new Error('KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 is not offered');
    enableCap(this.c, uapi.KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, want);
  }

  attach(slots: SlotLog[]): void {
    this.slots = slots;
    this.buffers = slots.map((s) => this.c.proc.mmap(BigInt(nbytes(s.npages))));
    this.piece = DirtyBitmap.create(this.c.core, Math.min(FETCH_PAGES, Math.max(1, ...slots.map((s) => s.npages))));
  }

  sync(into: DirtyBitmap): void {
    const { proc, vmFd } = this.c;
    this.slots.forEach((s, i) => {
      const log = new Uint8Array(16);
      const v = new DataView(log.buffer);
      v.setUint32(0, s.id, true);
      v.setBigUint64(8, this.buffers[i], true);
      check(proc.ioctl(vmFd, uapi.KVM_GET_DIRTY_LOG, log), 'KVM_GET_DIRTY_LOG');
      this.n.getCalls++;
      this.orFetched(s, this.buffers[i], into);
      if (this.manual) this.clear(s, this.buffers[i], into);
    });
  }

  /**
   * ORs the log GET_DIRTY_LOG wrote at `buffer` into `into` from the slot's first page: its bytes
   * (KVM's unsigned longs) are the words of a bitmap of the slot's pages, read over a piece at a
   * time into the local core and ORed there.
   */
  private orFetched(s: SlotLog, buffer: bigint, into: DirtyBitmap): void {
    const piece = this.piece!;
    for (let first = 0; first < s.npages; first += FETCH_PAGES) {
      const num = Math.min(FETCH_PAGES, s.npages - first);
      this.c.proc.readInto(buffer + BigInt(first / 8), piece.wordAddress(0), nbytes(num), 'KVM_GET_DIRTY_LOG: reading the log');
      piece.orInto(into, s.gpaPage + first, 0, num);
    }
  }

  /** CLEAR_DIRTY_LOG of the fetched bits, chunk by chunk, skipping chunks that fetched nothing. */
  private clear(s: SlotLog, buffer: bigint, fetched: DirtyBitmap): void {
    for (let first = 0; first < s.npages; first += this.chunk) {
      const num = Math.min(this.chunk, s.npages - first);
      if (fetched.count(s.gpaPage + first, num) === 0) continue;
      const b = new Uint8Array(24);
      const v = new DataView(b.buffer);
      v.setUint32(0, s.id, true);
      v.setUint32(4, num, true);
      v.setBigUint64(8, BigInt(first), true);
      v.setBigUint64(16, buffer + BigInt(first / 8), true);
      check(this.c.proc.ioctl(this.c.vmFd, uapi.KVM_CLEAR_DIRTY_LOG, b), 'KVM_CLEAR_DIRTY_LOG');
      this.n.clearCalls++;
    }
  }

  ringFull(): void {
    throw new Error('a vCPU stopped soft-full without a dirty ring');
  }

  counts(): Omit<CpuLogSync, 'pages'> {
    return this.n.take();
  }

  dispose(): void {
    this.piece?.dispose();
    this.piece = null;
  }
}

/**
 * ring: every vCPU's ring is mapped; a reap reads each ring from the VMM's fetch index while the
 * entries are DIRTY, sets their pages in the VMM's pending bitmap, marks them RESET, and then one
 * KVM_RESET_DIRTY_RINGS must reset exactly as many. A sync reaps and hands the pending pages over.
 */
class RingHarvester implements CpuLogHarvester {
  private readonly c: HarvestContext;
  private readonly bytes: number;
  private readonly pending: DirtyBitmap;
  private rings: bigint[] = [];
  private fetch: number[] = [];
  /** Entries reaped from each vCPU's ring, in all (QEMU's per-vCPU dirty pages). */
  readonly perVcpu: number[] = [];
  private table = 0; // core: u32 (first guest page, pages) per slot id
  private nslots = 0;
  private staging = 0; // core: one ring's bytes
  private readonly n = new Counts();

  constructor(o: CpuLogOptions, c: HarvestContext) {
    this.c = c;
    this.bytes = o.dirtyRingSize * 16;
    this.pending = DirtyBitmap.create(c.core, c.gpaPages);
  }

  enable(): void {
    const { proc, vmFd } = this.c;
    // QEMU prefers the ACQ_REL capability; both answer the largest ring in bytes.
    let cap: number = uapi.KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
    let max = check(proc.ioctl(vmFd, uapi.KVM_CHECK_EXTENSION, cap), 'KVM_CHECK_EXTENSION');
    if (max === 0) {
      cap = uapi.KVM_CAP_DIRTY_LOG_RING;
      max = check(proc.ioctl(vmFd, uapi.KVM_CHECK_EXTENSION, cap), 'KVM_CHECK_EXTENSION');
    }
    if (this.bytes > max) throw new RangeError(`a dirty ring of ${this.bytes} bytes is over KVM's ${max}`);
    enableCap(this.c, cap, this.bytes);
  }

  attach(slots: SlotLog[], vcpuFds: number[]): void {
    const { proc, core } = this.c;
    // The core buffers first: a ring mapping cannot be undone before exit, so nothing that can
    // fail comes after the first one but the other rings' mappings (dispose frees the buffers).
    this.table = check(core.x.heap_alloc(8 * slots.length), 'ring table');
    this.staging = check(core.x.heap_alloc(this.bytes), 'ring staging');
    this.nslots = slots.length;
    const t = core.u32();
    for (const s of slots) {
      t[(this.table >>> 2) + 2 * s.id] = s.gpaPage;
      t[(this.table >>> 2) + 2 * s.id + 1] = s.npages;
    }
    this.rings = vcpuFds.map((fd) => {
      const a = proc.mmapFd(fd, BigInt(uapi.KVM_DIRTY_LOG_PAGE_OFFSET) * 4096n, this.bytes);
      if (a < 0n) throw vfioError(Number(a), 'mmap(dirty ring)');
      return a;
    });
    this.fetch = vcpuFds.map(() => 0);
    for (const _ of vcpuFds) this.perVcpu.push(0);
  }

  /** kvm_dirty_ring_reap: every ring reaped into `pending`, then, when any was, one reset of as many entries. */
  private reap(): void {
    const { proc, core, vmFd } = this.c;
    const entries = this.bytes / 16;
    let total = 0;
    this.rings.forEach((addr, v) => {
      proc.readInto(addr, this.staging, this.bytes, 'reading a dirty ring');
      const k = core.x.vmm_ring_reap(this.staging, entries, this.fetch[v], this.table, this.nslots, this.pending.handle) >>> 0;
      if (k === 0) return;
      proc.writeFrom(addr, this.staging, this.bytes, 'writing a dirty ring back');
      this.fetch[v] = (this.fetch[v] + k) >>> 0;
      this.perVcpu[v] += k;
      total += k;
    });
    this.n.reaped += total;
    if (total === 0) return; // QEMU resets only when it reaped something
    const r = check(proc.ioctl(vmFd, uapi.KVM_RESET_DIRTY_RINGS), 'KVM_RESET_DIRTY_RINGS');
    if (r !== total) throw vfioError(-22, 'KVM_RESET_DIRTY_RINGS', undefined, `reset ${r} entries, ${total} were reaped`);
    this.n.resets++;
  }

  sync(into: DirtyBitmap): void {
    this.reap();
    this.pending.orInto(into, 0);
    this.pending.clear();
  }

  ringFull(): void {
    this.n.fullEvents++;
    this.reap();
  }

  counts(): Omit<CpuLogSync, 'pages'> {
    return this.n.take();
  }

  dispose(): void {
    this.pending.dispose();
    if (this.table) this.c.core.x.heap_free(this.table);
    if (this.staging) this.c.core.x.heap_free(this.staging);
  }
}
