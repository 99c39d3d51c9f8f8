// One vfio_dma of the reference model (docs/conformance.md §4.2), with its external pins (§6.3) and
// its dirty bitmap (§7.1). The bitmap is a plain byte array of whole u64 words, bit i = page i of
// the dma in units of the container's pgsize. Bits at and above nbits are never set
// (docs/conformance.md §9-§10: no phantom bits).
import type { RefProcess } from './process.js';
import { PAGE_SIZE, hexOf } from './uapi.js';

export class RefDma {
  /** First IOVA. */
  readonly iova: bigint;
  /** Length in bytes. */
  readonly size: bigint;
  /** User address of the first byte in the owner's memory. */
  vaddr: bigint;
  /** IOMMU_READ | IOMMU_WRITE. */
  readonly prot: number;
  /** The mapping process: whose memory backs the dma and whose locked_vm is charged. */
  readonly owner: RefProcess;
  /** CAP_IPC_LOCK of the owner when the dma was mapped. */
  readonly lockCap: boolean;
  /** Pinned and mapped into the container's IOMMU domains. */
  iommuMapped = false;
  /** Invalidated by UNMAP+VADDR until MAP+VADDR restores it. */
  vaddrInvalid = false;
  /** External pins: PAGE_SIZE page index from iova -> reference count. */
  readonly pins = new Map<number, number>();
  /** The dirty bitmap while tracking: 8 * ceil(nbits / 64) bytes; null otherwise. */
  bitmap: Uint8Array | null = null;
  /** Number of valid bits of `bitmap`. */
  nbits = 0;

  constructor(iova: bigint, size: bigint, vaddr: bigint, prot: number, owner: RefProcess) {
    this.iova = iova;
    this.size = size;
    this.vaddr = vaddr;
    this.prot = prot;
    this.owner = owner;
    this.lockCap = owner.capIpcLock;
  }

  /** Exclusive end; may be exactly 2^64. */
  get end(): bigint {
    return this.iova + this.size;
  }

  /** PAGE_SIZE pages covered. */
  get npages(): bigint {
    return this.size / PAGE_SIZE;
  }

  /** True when the byte address a lies inside the dma. */
  contains(a: bigint): boolean {
    return a >= this.iova && a < this.end;
  }

  /** True when [a, a+len) overlaps the dma (len > 0). */
  overlaps(a: bigint, len: bigint): boolean {
    return a < this.end && a + len > this.iova;
  }

  /** Allocates a zeroed bitmap of size / pgsize bits (the caller checked the INT_MAX limit). */
  allocBitmap(pgsize: bigint): void {
    this.nbits = Number(this.size / pgsize);
    this.bitmap = new Uint8Array(Math.ceil(this.nbits / 64) * 8);
  }

  /** The bitmap at page size `to` instead of `from`: a new bit is set when any old bit under it was. */
  regrain(from: bigint, to: bigint): void {
    const old = this.bitmap;
    if (!old) return;
    const test = (i: bigint) => (old[Number(i >> 3n)] & (1 << Number(i & 7n))) !== 0;
    this.nbits = Number((this.size + to - 1n) / to);
    this.bitmap = new Uint8Array(Math.ceil(this.nbits / 64) * 8);
    for (let j = 0; j < this.nbits; j++) {
      const a = BigInt(j) * to;
      const b = a + to < this.size ? a + to : this.size; // bytes [a, b) of the dma
      for (let i = a / from; i * from < b; i++) {
        if (test(i)) {
          this.bitmap[j >> 3] |= 1 << (j & 7);
          break;
        }
      }
    }
  }

  freeBitmap(): void {
    this.bitmap = null;
    this.nbits = 0;
  }

  /** Sets bits [first, first + count) of the bitmap (clipped to nbits). */
  setBits(first: number, count: number): void {
    const b = this.bitmap;
    if (!b) return;
    const end = Math.min(first + count, this.nbits);
    for (let i = Math.max(first, 0); i < end; i++) b[i >> 3] |= 1 << (i & 7);
  }

  /** Every valid bit set (vfio_iommu_populate_bitmap_full). */
  fillBitmap(): void {
    this.setBits(0, this.nbits);
  }

  /** Whether bit i is set. */
  bit(i: number): boolean {
    return this.bitmap !== null && (this.bitmap[i >> 3] & (1 << (i & 7))) !== 0;
  }

  /** The bitmap bit of the PAGE_SIZE page `page` of this dma. */
  bitOfPage(page: number, pgshift: number): number {
    return Number((BigInt(page) * PAGE_SIZE) >> BigInt(pgshift));
  }

  /** Clears the whole bitmap, then sets the bit of every externally pinned page (§7.2, §7.6). */
  resetToPinned(pgshift: number): void {
    if (!this.bitmap) return;
    this.bitmap.fill(0);
    for (const page of this.pins.keys()) this.setBits(this.bitOfPage(page, pgshift), 1);
  }

  /** Pinned pages as [page, count] pairs, ascending (pages as bigint, as the engine reports them). */
  pinList(): [bigint, number][] {
    return [...this.pins.entries()].sort((a, b) => a[0] - b[0]).map(([p, n]) => [BigInt(p), n]);
  }

  /** Hex of the bitmap bytes (byte 0 first), or null when not tracking. */
  bitmapHex(): string | null {
    return this.bitmap ? hexOf(this.bitmap) : null;
  }
}
