// The vGPU's shadow of a guest GPU page table, as KVMGT keeps one (docs/conformance.md §19.7):
// through its device's `dev.kvm` (the VM the VMM linked with KVM_DEV_VFIO_FILE_ADD before opening
// the device) it write-protects the table's pages with write tracking and registers a notifier
// node; every guest store to those pages reaches `trackWrite`, which copies the new entries into
// the shadow. The guest's driver updates the table at --gpu-pt-rate stores per second (8-byte
// entries), and any store of the CPU workload that lands on a table page is seen the same way.
import type { SimConfig } from './config.js';
import type { DeviceKvm, MdevDevice } from './vgpu.js';
import type { PageTrackNotifierNode } from '../kvm/page_track.js';
import type { KvmGuest } from './cpu_log.js';
import { GUEST_PAGE } from './guest_layout.js';
import { Prng } from './prng.js';
import type { ShadowSummary } from './summary.js';

export interface GpuShadowOptions {
  /** Guest page of the table's first page. */
  firstPage: number;
  /** Pages of the table. */
  pages: number;
  /** Entries the guest's driver writes per second. */
  rate: number;
  seed: number;
}

/** 8-byte entries per table page. */
const ENTRIES = GUEST_PAGE / 8;

/** The vGPU's write-tracking node and its shadow table. */
export class GpuShadow implements PageTrackNotifierNode {
  private readonly kvm: DeviceKvm;
  private readonly guest: KvmGuest;
  private readonly o: GpuShadowOptions;
  private readonly prng: Prng;
  /** The shadow: the last value the vGPU saw in each entry. */
  readonly shadow: BigUint64Array;
  /** Table pages still owned (a slot deleted under them is forgotten, as KVMGT does). */
  private owned: boolean;
  private registered = false;
  private written = 0;
  /** trackWrite calls for the table's pages. */
  trackedWrites = 0;
  /** Shadow entries updated from them. */
  shadowUpdates = 0;
  /** Stores the guest's driver made to the table. */
  driverStores = 0;

  /**
   * @param kvm the device's `dev.kvm`
   * @param guest the guest, whose stores into the table are counted
   */
  constructor(kvm: DeviceKvm, guest: KvmGuest, o: GpuShadowOptions) {
    this.kvm = kvm;
    this.guest = guest;
    this.o = o;
    this.prng = new Prng(o.seed ^ 0x6a09e667);
    this.shadow = new BigUint64Array(o.pages * ENTRIES);
    this.owned = true;
    guest.watch = [o.firstPage, o.pages];
  }

  /** The vGPU starts shadowing: the node, then tracking of every table page. */
  start(): void {
    const r = this.kvm.pageTrackRegisterNotifier(this);
    if (r < 0) throw new Error(`pageTrackRegisterNotifier failed: ${r}`);
    this.registered = true;
    for (let i = 0; i < this.o.pages; i++) {
      const t = this.kvm.writeTrackAddGfn(BigInt(this.o.firstPage + i));
      if (t < 0) throw new Error(`writeTrackAddGfn failed: ${t}`);
    }
  }

  /** The guest's driver updates table entries in virtual time (t0, t1], seconds, through the vCPUs (while shadowed). */
  run(t0: number, t1: number): void {
    if (!this.registered) return;
    const n = Math.floor(this.o.rate * t1 + 1e-9) - Math.floor(this.o.rate * t0 + 1e-9);
    if (n <= 0) return;
    const gpas = new BigUint64Array(n);
    const data = new Uint8Array(n * 8);
    const view = new DataView(data.buffer);
    for (let i = 0; i < n; i++) {
      const e = this.prng.below(this.o.pages * ENTRIES);
      gpas[i] = BigInt(this.o.firstPage * GUEST_PAGE + e * 8);
      // A present entry naming a new page frame.
      view.setBigUint64(i * 8, (BigInt(++this.written) << 12n) | 1n, true);
    }
    this.guest.storeValues(gpas, data);
    this.driverStores += n;
  }

  /** After a guest store to a write-tracked page: the vGPU keeps the entries of its own pages. */
  trackWrite(gpa: bigint, data: Uint8Array, bytes: number): void {
    if (!this.owned) return;
    const off = Number(gpa) - this.o.firstPage * GUEST_PAGE;
    if (off < 0 || off >= this.o.pages * GUEST_PAGE) return;
    this.trackedWrites++;
    // Whole entries the store covers take the new bytes (a partial entry is read back whole).
    const first = Math.floor(off / 8);
    const last = Math.floor((off + bytes - 1) / 8);
    for (let e = first; e <= last; e++) {
      const at = e * 8 - off;
      if (at >= 0 && at + 8 <= bytes) this.shadow[e] = new DataView(data.buffer, data.byteOffset + at, 8).getBigUint64(0, true);
      else {
        // Part of the entry: the rest is in guest memory already (memory is updated before the call).
        const hva = this.kvm.gfnToHva(BigInt(this.o.firstPage));
        if (hva >= 0n) this.shadow[e] = new DataView(this.kvm.proc.read(hva + BigInt(e * 8), 8).buffer).getBigUint64(0, true);
      }
      this.shadowUpdates++;
    }
  }

  /** A slot was deleted (trackRemoveRegion): tracking of pages in it died with it. */
  trackRemoveRegion(gfn: bigint, nrPages: number): void {
    const first = BigInt(this.o.firstPage);
    if (first + BigInt(this.o.pages) > gfn && first < gfn + BigInt(nrPages)) this.owned = false;
  }

  /** The vGPU stops shadowing: tracking removed, the node unregistered. */
  stop(): void {
    if (!this.registered) return;
    if (this.owned) for (let i = 0; i < this.o.pages; i++) this.kvm.writeTrackRemoveGfn(BigInt(this.o.firstPage + i));
    this.kvm.pageTrackUnregisterNotifier(this);
    this.registered = false;
  }

  /** What the run's summary reports. */
  summary(): ShadowSummary {
    return { trackedPages: this.o.pages, guestStores: this.guest.watchedStores + this.driverStores, trackedWrites: this.trackedWrites, shadowUpdates: this.shadowUpdates };
  }
}

/**
 * The vGPU's shadow of the last --gpu-pt-pages pages below `ramEnd` (bytes), through the device's
 * `dev.kvm`; null when --gpu-pt-pages is 0. The device stops shadowing if its VM link ends.
 * @throws Error when the device has no KVM (the VMM did not link its group before opening it)
 */
export function shadowOf(dev: MdevDevice, guest: KvmGuest, ramEnd: number, config: SimConfig): GpuShadow | null {
  if (config.gpuPtPages === 0) return null;
  if (!dev.kvm) throw new Error('the vGPU was opened without a KVM: KVM_DEV_VFIO_FILE_ADD must come first');
  const s = new GpuShadow(dev.kvm, guest, { firstPage: ramEnd / GUEST_PAGE - config.gpuPtPages, pages: config.gpuPtPages, rate: config.gpuPtRate, seed: config.seed });
  dev.registerKvmUnlink?.(() => s.stop());
  return s;
}
