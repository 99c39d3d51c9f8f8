// One vfio_dma: a user mapping of [iova, iova+size) to the mapper's memory at vaddr.
import type { Process } from '../process.js';
import type { DirtyBitmap } from '../core/dirty_bitmap.js';
import type { PinTable } from '../core/pin_table.js';

import { uapi } from '../uapi.js';
import { PAGE_SHIFT } from '../u64.js';

/** IOMMU_READ / IOMMU_WRITE: the device's access rights. */
export const { IOMMU_READ, IOMMU_WRITE } = uapi;

export class Dma {
  /** Key of this dma in the container's IOVA tree. */
  readonly id: number;
  /** First IOVA (bytes). */
  readonly iova: bigint;
  /** Length in bytes, a multiple of the container's pgsize. */
  readonly size: bigint;
  /** Inclusive last IOVA: iova + size - 1, never wrapping. */
  readonly last: bigint;
  /** PAGE_SIZE pages: size >> PAGE_SHIFT (exact below 2^52). */
  readonly npages: number;
  /** Mapper's user address of the first byte. */
  vaddr: bigint;
  /** IOMMU_READ | IOMMU_WRITE bits. */
  readonly prot: number;
  /** The process whose memory backs the mapping and whose locked_vm is charged (task / mm). */
  owner: Process;
  /** CAP_IPC_LOCK of the owner, sampled when it became the owner. */
  lockCap: boolean;
  /** Pinned and mapped into the container's IOMMU domains. */
  iommuMapped = false;
  /** Invalidated by UNMAP with VADDR, until MAP with VADDR restores it. */
  vaddrInvalid = false;
  /** Pages charged to owner.locked_vm through this dma. */
  lockedVm = 0n;
  /** The dirty bitmap while tracking (null otherwise). */
  bitmap: DirtyBitmap | null = null;
  /** Bits of that bitmap: size in pgsize pages, fixed while tracking. */
  nbits = 0;
  /** Pages pinned through vfio_pin_pages (null until the first pin). */
  pins: PinTable | null = null;

  constructor(id: number, iova: bigint, size: bigint, vaddr: bigint, prot: number, owner: Process) {
    this.id = id;
    this.iova = iova;
    this.size = size;
    this.last = iova + size - 1n;
    this.npages = Number(size >> PAGE_SHIFT);
    this.vaddr = vaddr;
    this.prot = prot;
    this.owner = owner;
    this.lockCap = owner.capIpcLock;
  }

  /** Whether the IOVA `a` lies inside this dma. */
  contains(a: bigint): boolean {
    return a >= this.iova && a <= this.last;
  }
}
