// The guest CPU side of the simulated VM, through the engine's KVM model as QEMU drives it
// (docs/conformance.md §19): the VMM opens /dev/kvm, creates the VM, one memslot per RAM slot over
// the same process memory the VFIO container maps, and the vCPUs; the guest's page writes are
// stores through the vCPUs (`vcpu.writeMany` batches, spread over the vCPUs), so KVM records them;
// each sync harvests the dirty log in one of three modes (cpu_log_modes.ts):
//
// - bitmap: KVM_GET_DIRTY_LOG per slot, fetch-and-clear;
// - manual: KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 with INITIALLY_SET, GET per slot, then
//   KVM_CLEAR_DIRTY_LOG of what was fetched, in chunks of 2^clear-bitmap-shift pages;
// - ring:   KVM_CAP_DIRTY_LOG_RING(_ACQ_REL), each vCPU's ring mapped with proc.mmapFd, entries
//   reaped by their flags and KVM_RESET_DIRTY_RINGS; a vCPU that stops soft-full has every ring
//   reaped and reset, and runs on (QEMU's KVM_EXIT_DIRTY_RING_FULL handling).
//
// The guest stores 8 bytes at the start of each page it writes: zeros, so a page never written
// before needs no frame of process memory (a 16 GiB guest writing GiBs stays small), except on
// the pages of `valued`, where the store is a running sequence number whose bytes someone reads
// (dirty-rate's page sampling hashes them).
import { check, vfioError } from '../errors.js';
import type { DirtyBitmap } from '../core/dirty_bitmap.js';
import type { Process } from '../process.js';
import { uapi } from '../uapi.js';
import type { Core } from '../wasm.js';
import { GUEST_PAGE, type GuestLayout } from './guest_layout.js';
import { createHarvester, type SlotLog, type CpuLogHarvester } from './cpu_log_modes.js';
import { localKvmProcess } from './local_kvm.js';
import type { KvmProcess } from './sim_engine.js';

/** How the VMM reads the guest CPU's dirty log. */
export type CpuLogMode = 'bitmap' | 'manual' | 'ring';
export const CPU_LOG_MODES: readonly CpuLogMode[] = ['bitmap', 'manual', 'ring'];

/** The KVM side's options. */
export interface CpuLogOptions {
  mode: CpuLogMode;
  /** vCPUs the guest's writes are spread over. */
  vcpus: number;
  /** ring: entries per vCPU ring (QEMU's dirty-ring-size), a power of two, 256..65536. */
  dirtyRingSize: number;
  /** manual: KVM_CLEAR_DIRTY_LOG covers 2^this pages at a time (QEMU's clear-bitmap-shift), 6..31. */
  clearBitmapShift: number;
}

/** What the CPU log gave at one sync, and the KVM calls it took since the previous sync. */
export interface CpuLogSync {
  /** Pages the CPU dirty log reported. */
  pages: number;
  /** KVM_GET_DIRTY_LOG calls (bitmap, manual). */
  getCalls: number;
  /** KVM_CLEAR_DIRTY_LOG calls (manual). */
  clearCalls: number;
  /** Ring entries reaped, soft-full reaps included (ring). */
  reaped: number;
  /** KVM_RESET_DIRTY_RINGS calls (ring). */
  resets: number;
  /** Times a vCPU stopped soft-full (KVM_EXIT_DIRTY_RING_FULL) and every ring was reaped (ring). */
  fullEvents: number;
}

/** A sync with nothing in it: the bulk round's record. */
export function emptySync(): CpuLogSync {
  return { pages: 0, getCalls: 0, clearCalls: 0, reaped: 0, resets: 0, fullEvents: 0 };
}

/** Stores laid out per writeMany call: 128 KiB of gpas and 128 KiB of bytes. */
const STORE_BATCH = 16384;
const STORE_BYTES = 8;

/** The VM the VMM made for the guest, its vCPUs and its dirty log. */
export class KvmGuest {
  readonly options: CpuLogOptions;
  private readonly proc: KvmProcess;
  /** The process's engine runs in `core`: batches are stored from where they are made. */
  private readonly inPlace: boolean;
  private readonly core: Core;
  private readonly kvmFd: number;
  readonly vmFd: number;
  private readonly vcpuFds: number[] = [];
  private readonly slots: SlotLog[] = [];
  private readonly harvester: CpuLogHarvester;
  private readonly gpas: number; // core buffers of one batch
  private readonly data: number;
  private kvmVfioFd = -1;
  /** The argument page of KVM_DEV_VFIO_FILE_ADD, mapped on first use (addVfioGroup). */
  private fdArgPage?: bigint;
  private nextVcpu = 0;
  private seq = 1;
  /** Guest stores made (8 bytes each), in all. */
  stores = 0;
  /** Pages whose stores carry a sequence number instead of zeros (dirty-rate's samples), or null. */
  valued: DirtyBitmap | null = null;
  /** Guest pages [first, first + count) whose stores are counted in `watchedStores` (the GPU page table). */
  watch: [number, number] = [0, 0];
  /** Stores of `store` into the watched pages. */
  watchedStores = 0;

  /**
   * The VMM's KVM set-up, before migration: the VM, its dirty-log mode, one memslot per RAM slot
   * (dirty logging off) over process memory from `base` in RAM order, and the vCPUs. `proc` is
   * an in-process Process or any KvmProcess (a server's); `core` is the local core the
   * per-entry work runs in, which must be the engine's for an in-process Process (the batches
   * are then stored from where they are made, and the logs copied core to core). A step that
   * throws releases what the earlier steps made: the VMM buffers, the harvester's, the vCPU, VM
   * and /dev/kvm fds (the VM and its slots go with them), in reverse order. Two things stay, as
   * they stay after `dispose`: the process memory the bitmap modes fetch into, and in ring mode,
   * when mapping a later ring fails, the rings already mapped, which keep their vCPUs and the VM
   * until the process exits (a ring mapping cannot be unmapped).
   * @throws VfioError when an engine call fails (ENOMEM under memory pressure, else a defect of
   *   the simulation)
   * @throws Error when `proc` is in an engine whose core is not `core`
   */
  constructor(kvmProc: Process | KvmProcess, core: Core, layout: GuestLayout, base: bigint, options: CpuLogOptions) {
    this.options = options;
    const proc = (this.proc = 'vcpuFromFd' in kvmProc ? localKvmProcess(kvmProc) : kvmProc);
    if (proc.core !== undefined && proc.core !== core) throw new Error('KvmGuest: the process is in an engine whose core is not the guest\'s');
    this.inPlace = proc.core !== undefined && proc.vcpuWriteManyAt !== undefined;
    this.core = core;
    const fds: number[] = []; // /dev/kvm, the VM, then the vCPUs: closed newest first on failure
    let harvester: CpuLogHarvester | null = null;
    let gpas = 0;
    let data = 0;
    try {
      this.kvmFd = check(proc.open('/dev/kvm'), 'open /dev/kvm');
      fds.push(this.kvmFd);
      this.vmFd = check(proc.ioctl(this.kvmFd, uapi.KVM_CREATE_VM, 0), 'KVM_CREATE_VM');
      fds.push(this.vmFd);
      harvester = this.harvester = createHarvester(options, { proc, core, vmFd: this.vmFd, gpaPages: layout.gpaPages });
      harvester.enable();
      layout.slots.forEach((s, id) => {
        const npages = s.size / GUEST_PAGE;
        const slot: SlotLog = { id, gpaPage: s.gpa / GUEST_PAGE, npages, uaddr: base + BigInt(s.firstRamPage) * BigInt(GUEST_PAGE), gpa: BigInt(s.gpa) };
        this.setRegion(slot, 0);
        this.slots.push(slot);
      });
      for (let i = 0; i < options.vcpus; i++) {
        const fd = check(proc.ioctl(this.vmFd, uapi.KVM_CREATE_VCPU, i), 'KVM_CREATE_VCPU');
        fds.push(fd);
        this.vcpuFds.push(fd);
      }
      // The buffers before the harvester's attach, which maps the rings: nothing fails after it
      // that a ring mapping would outlive.
      this.gpas = gpas = check(core.x.heap_alloc(STORE_BATCH * 8), 'vmm buffers');
      this.data = data = check(core.x.heap_alloc(STORE_BATCH * STORE_BYTES), 'vmm buffers');
      harvester.attach(this.slots, this.vcpuFds);
    } catch (e) {
      if (data > 0) core.x.heap_free(data);
      if (gpas > 0) core.x.heap_free(gpas);
      harvester?.dispose();
      for (const fd of fds.reverse()) proc.close(fd);
      throw e;
    }
  }

  /** KVM_SET_USER_MEMORY_REGION of `slot` with `flags`. */
  private setRegion(s: SlotLog, flags: number): void {
    const b = new Uint8Array(32);
    const v = new DataView(b.buffer);
    v.setUint32(0, s.id, true);
    v.setUint32(4, flags, true);
    v.setBigUint64(8, s.gpa, true);
    v.setBigUint64(16, BigInt(s.npages) * BigInt(GUEST_PAGE), true);
    v.setBigUint64(24, s.uaddr, true);
    check(this.proc.ioctl(this.vmFd, uapi.KVM_SET_USER_MEMORY_REGION, b), 'KVM_SET_USER_MEMORY_REGION');
  }

  /**
   * Migration starts (QEMU's log_start and the set-up's sync): dirty logging on for every slot,
   * then a sync whose pages go to `scratch`, which is cleared after (the bulk round sends all).
   */
  startLogging(scratch: DirtyBitmap): void {
    for (const s of this.slots) this.setRegion(s, uapi.KVM_MEM_LOG_DIRTY_PAGES);
    this.harvester.sync(scratch);
    scratch.clear();
    this.harvester.counts();
  }

  /**
   * The guest writes guest pages `pages[0..n)`, or when `pages` is null the n pages from `first`:
   * one 8-byte store at the start of each, through the vCPUs: the stores are cut into one batch
   * per vCPU (at most STORE_BATCH each), and the vCPUs take the batches in turn.
   */
  store(pages: Uint32Array | null, first: number, n: number): void {
    const x = this.core.x;
    const per = Math.min(STORE_BATCH, Math.ceil(n / this.vcpuFds.length));
    for (let at = 0; at < n; at += per) {
      const m = Math.min(per, n - at);
      let src = 0;
      if (pages) {
        src = check(x.heap_alloc(m * 4), 'vmm store');
        this.core.u32().set(pages.subarray(at, at + m), src >>> 2);
      }
      this.watchedStores += x.vmm_stores(src, first + at, m, this.gpas, this.data, this.valued ? this.valued.handle : 0, this.seq, this.watch[0], this.watch[1]) >>> 0;
      if (src) x.heap_free(src);
      this.seq += m;
      const fd = this.vcpuFds[this.nextVcpu];
      const proc = this.proc;
      if (this.inPlace) {
        // The batch stays where vmm_stores made it: the engine's core is this one.
        const g = this.gpas;
        const d = this.data;
        this.run(m, (from) => proc.vcpuWriteManyAt!(fd, g + from * 8, d + from * STORE_BYTES, m - from, STORE_BYTES), (i) => this.core.u64()[g / 8 + i]);
      } else {
        this.runArrays(fd, this.core.u64().slice(this.gpas / 8, this.gpas / 8 + m), this.core.u8().slice(this.data, this.data + m * STORE_BYTES));
      }
      this.nextVcpu = (this.nextVcpu + 1) % this.vcpuFds.length;
    }
  }

  /**
   * Stores of `data.length / 8` u64 values to `gpas` (each inside one page), made by the next
   * vCPU in turn: the guest's writes whose bytes matter (a GPU page table's entries).
   */
  storeValues(gpas: BigUint64Array, data: Uint8Array): void {
    this.runArrays(this.vcpuFds[this.nextVcpu], gpas, data);
    this.nextVcpu = (this.nextVcpu + 1) % this.vcpuFds.length;
  }

  /** vCPU fd `vcpuFd` runs the stores `gpas` / `data` (8 bytes each), as `run` says. */
  private runArrays(vcpuFd: number, gpas: BigUint64Array, data: Uint8Array): void {
    const proc = this.proc;
    this.run(gpas.length, (from) => proc.vcpuWriteMany(vcpuFd, gpas.subarray(from), data.subarray(from * STORE_BYTES), STORE_BYTES), (i) => gpas[i]);
  }

  /**
   * A vCPU runs a batch of `n` stores, `write(from)` making stores from..n-1 and returning how
   * many it made; stopping short means its ring became soft-full (KVM_EXIT_DIRTY_RING_FULL): the
   * rings are reaped, then it runs on. `gpaOf(i)` names store i when one fails.
   */
  private run(n: number, write: (from: number) => number, gpaOf: (i: number) => bigint): void {
    let done = 0;
    while (done < n) {
      const r = write(done);
      if (r < 0) throw vfioError(r, 'vcpu.writeMany', { start: gpaOf(done), length: BigInt(GUEST_PAGE) });
      done += r;
      this.stores += r;
      if (done < n) this.harvester.ringFull();
    }
  }

  /**
   * A sync (QEMU's log sync of every slot): the CPU dirty log since the last sync is ORed into
   * `into` by guest page. `into` must hold no other bits yet (manual mode clears the chunks that
   * hold bits). Returns the pages it reported and the KVM calls made since the last sync.
   */
  sync(into: DirtyBitmap): CpuLogSync {
    this.harvester.sync(into);
    return { ...this.harvester.counts(), pages: into.count() };
  }

  /**
   * The VMM's KVM-VFIO device (created on first use) gets the VFIO group file `groupFd`
   * (KVM_DEV_VFIO_FILE_ADD), as QEMU does before it opens the group's devices: a device opened
   * then has this VM as its `dev.kvm`.
   */
  addVfioGroup(groupFd: number): void {
    if (this.kvmVfioFd < 0) {
      const cd = new Uint8Array(12);
      new DataView(cd.buffer).setUint32(0, uapi.KVM_DEV_TYPE_VFIO, true);
      check(this.proc.ioctl(this.vmFd, uapi.KVM_CREATE_DEVICE, cd), 'KVM_CREATE_DEVICE');
      this.kvmVfioFd = new DataView(cd.buffer).getUint32(4, true);
    }
    // One argument page for every call: anonymous memory is not unmapped before exit.
    const fdArg = (this.fdArgPage ??= this.proc.mmap(4096n));
    const fdBytes = new Uint8Array(4);
    new DataView(fdBytes.buffer).setInt32(0, groupFd, true);
    this.proc.write(fdArg, fdBytes);
    const attr = new Uint8Array(24);
    const v = new DataView(attr.buffer);
    v.setUint32(4, uapi.KVM_DEV_VFIO_FILE, true);
    v.setBigUint64(8, BigInt(uapi.KVM_DEV_VFIO_FILE_ADD), true);
    v.setBigUint64(16, fdArg, true);
    check(this.proc.ioctl(this.kvmVfioFd, uapi.KVM_SET_DEVICE_ATTR, attr), 'KVM_SET_DEVICE_ATTR(FILE_ADD)');
  }

  /** Ring entries reaped from each vCPU's ring so far (ring mode), or null. */
  get ringReapedPerVcpu(): readonly number[] | null {
    return this.harvester.perVcpu ?? null;
  }

  /** Migration ends: dirty logging off, then the fds close (ring mappings stay until the process exits). */
  dispose(): void {
    if (this.kvmVfioFd >= 0) this.proc.close(this.kvmVfioFd);
    this.kvmVfioFd = -1;
    this.harvester.dispose();
    for (const s of this.slots) this.setRegion(s, 0);
    for (const fd of this.vcpuFds) this.proc.close(fd);
    this.proc.close(this.vmFd);
    this.proc.close(this.kvmFd);
    this.core.x.heap_free(this.gpas);
    this.core.x.heap_free(this.data);
  }
}
