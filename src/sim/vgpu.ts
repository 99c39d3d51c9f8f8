// The emulated vGPU's driver, as a mediated-device vendor driver behaves: it keeps a working set
// of guest buffers pinned (vfio_pin_pages, 2 MiB buffers of 512 pages, the most one call pins),
// replaces them at a churn rate (unpin the oldest, pin a new one), writes its command ring in
// guest memory through vfio_dma_rw, and unpins whatever a dma_unmap notification names. Every
// one of these is a real engine call; a failed one is a defect of the simulation and throws.
//
//   vGPU region (top of RAM): | ring, 8 MiB (dmaRw) | buffer slots, 2 MiB each (pinned) ...  |
import type { PageTrackNotifierNode } from '../kvm/page_track.js';
import { uapi } from '../uapi.js';
import { vfioError } from '../errors.js';
import { Prng } from './prng.js';

/**
 * What a device model uses of its device's VM (docs/conformance.md §19.7): page tracking and gfn
 * lookup.
 */
export interface DeviceKvm {
  pageTrackRegisterNotifier(node: PageTrackNotifierNode): number;
  pageTrackUnregisterNotifier(node: PageTrackNotifierNode): void;
  writeTrackAddGfn(gfn: bigint): number;
  writeTrackRemoveGfn(gfn: bigint): number;
  gfnToHva(gfn: bigint): bigint;
  /** The VMM process, whose memory the guest's is. */
  readonly proc: { read(addr: bigint, length: number): Uint8Array };
}

/** What the driver needs of its device: the engine's VfioDevice. */
export interface MdevDevice {
  registerDmaUnmap(fn: (iova: bigint, size: bigint) => void): void;
  /**
   * The VM the device was opened with (docs/conformance.md §19.9), where the engine provides one.
   */
  readonly kvm?: DeviceKvm | null;
  registerKvmUnlink?(cb: (() => void) | null): void;
  pinPages(iova: bigint, npage: number, prot: number): number;
  unpinPages(iova: bigint, npage: number): void;
  dmaRw(iova: bigint, data: Uint8Array, write: boolean): number;
}

/** The command ring written through dmaRw: its size in bytes. */
export const VGPU_RING = 8 << 20;
/** One pinned buffer: 2 MiB, 512 pages, one vfio_pin_pages call. */
export const VGPU_BUFFER = 2 << 20;
/** Bytes per dmaRw write into the ring. */
export const VGPU_WRITE = 64 << 10;

export interface VgpuOptions {
  /** Guest-physical start of the vGPU region (2 MiB aligned), bytes. */
  regionGpa: number;
  /** Region size, bytes (multiple of 2 MiB, more than the ring). */
  regionSize: number;
  /** Bytes kept pinned, a multiple of 2 MiB. */
  pinned: number;
  /** Bytes/s of buffers replaced. */
  churn: number;
  /** Bytes/s written through dmaRw. */
  dmaRate: number;
  seed: number;
}

/** The vGPU driver's state and its activity over virtual time. */
export class VgpuDriver {
  private readonly dev: MdevDevice;
  private readonly o: VgpuOptions;
  private readonly prng: Prng;
  private readonly slots: number; // buffer slots after the ring
  private readonly inUse: Uint8Array; // per slot: 1 when pinned
  private readonly fifo: number[] = []; // pinned slots, oldest first
  private readonly data: Uint8Array;
  /** vfio_pin_pages calls made. */
  pinCalls = 0;
  /** vfio_unpin_pages calls made. */
  unpinCalls = 0;
  /** vfio_dma_rw writes made. */
  dmaWrites = 0;
  /** dma_unmap notifications received. */
  notifications = 0;

  constructor(dev: MdevDevice, o: VgpuOptions) {
    this.dev = dev;
    this.o = o;
    this.prng = new Prng(o.seed ^ 0x5f3759df);
    this.slots = Math.floor((o.regionSize - VGPU_RING) / VGPU_BUFFER);
    this.inUse = new Uint8Array(this.slots);
    this.data = new Uint8Array(VGPU_WRITE);
    dev.registerDmaUnmap((iova, size) => this.onDmaUnmap(iova, size));
  }

  /** Buffers pinned now. */
  get pinnedBuffers(): number {
    return this.fifo.length;
  }

  /** Pins the initial working set. */
  start(): void {
    const want = Math.min(this.o.pinned / VGPU_BUFFER, this.slots);
    while (this.fifo.length < want) this.pinFree();
  }

  /** The vGPU's activity in virtual time (t0, t1], seconds: churn, then ring writes. */
  run(t0: number, t1: number): void {
    const swaps = by(this.o.churn / VGPU_BUFFER, t1) - by(this.o.churn / VGPU_BUFFER, t0);
    for (let i = 0; i < swaps && this.fifo.length > 0; i++) {
      this.unpinSlot(this.fifo[0]);
      this.pinFree();
    }
    const writes = by(this.o.dmaRate / VGPU_WRITE, t1) - by(this.o.dmaRate / VGPU_WRITE, t0);
    const ringChunks = VGPU_RING / VGPU_WRITE;
    for (let i = 0; i < writes; i++) {
      const at = this.o.regionGpa + this.prng.below(ringChunks) * VGPU_WRITE;
      this.data.fill((this.dmaWrites + 1) & 0xff);
      const r = this.dev.dmaRw(BigInt(at), this.data, true);
      if (r < 0) throw vfioError(r, 'vgpu.dmaRw', { start: BigInt(at), length: BigInt(VGPU_WRITE) });
      this.dmaWrites++;
    }
  }

  /** Unpins everything still pinned (before the device goes away). */
  stop(): void {
    while (this.fifo.length) this.unpinSlot(this.fifo[0]);
  }

  private slotGpa(slot: number): number {
    return this.o.regionGpa + VGPU_RING + slot * VGPU_BUFFER;
  }

  /** Pins a random free buffer slot (linear probe from a random start). */
  private pinFree(): void {
    let s = this.prng.below(this.slots);
    while (this.inUse[s]) s = (s + 1) % this.slots;
    const iova = BigInt(this.slotGpa(s));
    const n = VGPU_BUFFER / 4096;
    const r = this.dev.pinPages(iova, n, uapi.IOMMU_READ | uapi.IOMMU_WRITE);
    this.pinCalls++;
    if (r !== n) throw vfioError(r < 0 ? r : -22, 'vgpu.pinPages', { start: iova, length: BigInt(VGPU_BUFFER) });
    this.inUse[s] = 1;
    this.fifo.push(s);
  }

  private unpinSlot(s: number): void {
    this.dev.unpinPages(BigInt(this.slotGpa(s)), VGPU_BUFFER / 4096);
    this.unpinCalls++;
    this.inUse[s] = 0;
    this.fifo.splice(this.fifo.indexOf(s), 1);
  }

  /** The dma_unmap op: unpin every buffer inside [iova, iova + size). */
  private onDmaUnmap(iova: bigint, size: bigint): void {
    this.notifications++;
    for (const s of [...this.fifo]) {
      const a = BigInt(this.slotGpa(s));
      if (a + BigInt(VGPU_BUFFER) > iova && a < iova + size) this.unpinSlot(s);
    }
  }
}

/** Events at `perSecond` made by virtual time t, counted from 0. */
export function by(perSecond: number, t: number): number {
  return Math.floor(perSecond * t + 1e-9);
}
