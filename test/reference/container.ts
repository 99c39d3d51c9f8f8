// A container (/dev/vfio/vfio) of the reference model and its type1 IOMMU driver state:
// CHECK_EXTENSION, SET_IOMMU, group attach (with replay) and detach (docs/conformance.md §3.1,
// §3.2, §6.5, §2).
import { refDirtyPages } from './dirty.js';
import type { RefDma } from './dma.js';
import type { RefEngine } from './engine.js';
import type { RefGroup } from './group.js';
import { refGetInfo } from './info.js';
import { refMap, refUnmap } from './map.js';
import { chargeCheck, type RefProcess } from './process.js';
import {
  EBUSY, EINVAL, ENODEV, ENOTTY, PAGE_SIZE, U64_MAX, VFIO_CHECK_EXTENSION, VFIO_DMA_CC_IOMMU,
  VFIO_GET_API_VERSION, VFIO_IOMMU_DIRTY_PAGES, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU, VFIO_UNMAP_ALL,
  VFIO_UPDATE_VADDR, ctz,
} from './uapi.js';

export type IommuType = 'type1' | 'type1v2';

export class RefContainer {
  readonly engine: RefEngine;
  readonly owner: RefProcess;
  /** The fd number it was opened as. */
  readonly fd: number;
  /** Creation order across the engine (inspect order). */
  readonly seq: number;
  /** The container fd is still open. */
  fdOpen = true;
  /** Groups set to this container (SET_CONTAINER order). */
  readonly groups: RefGroup[] = [];
  /** The IOMMU driver, or null before SET_IOMMU (and after the last group left). */
  iommu: IommuType | null = null;
  /** Groups attached to the driver, in attach order. */
  readonly drvGroups: RefGroup[] = [];
  /** pinned_page_dirty_scope of every driver-attached group. */
  readonly pinnedScope = new Map<RefGroup, boolean>();
  /** The vfio_dmas, ascending by iova. */
  dmas: RefDma[] = [];
  tracking = false;
  dmaAvail = 0;
  vaddrInvalidCount = 0;

  constructor(engine: RefEngine, owner: RefProcess, fd: number, seq: number) {
    this.engine = engine;
    this.owner = owner;
    this.fd = fd;
    this.seq = seq;
  }

  /** Still referenced: by its fd or by a group. */
  get alive(): boolean {
    return this.fdOpen || this.groups.length > 0;
  }

  get v2(): boolean {
    return this.iommu === 'type1v2';
  }

  /** The driver has at least one IOMMU domain (an IOMMU-backed group). */
  get hasDomain(): boolean {
    return this.drvGroups.some((g) => g.kind === 'iommu');
  }

  get hasEmulated(): boolean {
    return this.drvGroups.some((g) => g.kind === 'emulated');
  }

  /** num_non_pinned_groups. */
  get nonPinnedGroups(): number {
    let n = 0;
    for (const g of this.drvGroups) if (this.pinnedScope.get(g) === false) n++;
    return n;
  }

  /** The container's pgsize_bitmap (docs/conformance.md §3.5) over the given IOMMU groups. */
  static pgsizeBitmapOf(groups: RefGroup[]): bigint {
    let bm = U64_MAX;
    for (const g of groups) if (g.kind === 'iommu') bm &= g.pgsizeBitmap;
    if (bm & (PAGE_SIZE - 1n)) bm = (bm & ~(PAGE_SIZE - 1n) & U64_MAX) | PAGE_SIZE;
    return bm;
  }

  get pgsizeBitmap(): bigint {
    return RefContainer.pgsizeBitmapOf(this.drvGroups);
  }

  /** The smallest IOMMU page size. */
  get pgsize(): bigint {
    return 1n << BigInt(ctz(this.pgsizeBitmap));
  }

  get pgshift(): number {
    return ctz(this.pgsizeBitmap);
  }

  /** The valid-IOVA list over the given groups: empty without IOMMU groups (docs/conformance.md §3.5). */
  static iovaListOf(groups: RefGroup[]): [bigint, bigint][] {
    const iommu = groups.filter((g) => g.kind === 'iommu');
    if (iommu.length === 0) return [];
    let lo = 0n;
    let hi = U64_MAX;
    for (const g of iommu) {
      if (g.aperture[0] > lo) lo = g.aperture[0];
      if (g.aperture[1] < hi) hi = g.aperture[1];
    }
    if (lo > hi) return [];
    let list: [bigint, bigint][] = [[lo, hi]];
    for (const g of iommu) {
      for (const [rs, re] of g.reserved) {
        const next: [bigint, bigint][] = [];
        for (const [s, e] of list) {
          if (rs > e || re < s) {
            next.push([s, e]);
            continue;
          }
          if (rs > s) next.push([s, rs - 1n]);
          if (re < e) next.push([re + 1n, e]);
        }
        list = next;
      }
    }
    return list;
  }

  get iovaList(): [bigint, bigint][] {
    return RefContainer.iovaListOf(this.drvGroups);
  }

  /** Every device that may pin and is notified: open, with an op, in a driver-attached group. */
  participants(): import('./group.js').RefDevice[] {
    return this.drvGroups.flatMap((g) => g.devices.filter((d) => d.participating));
  }

  // ---- ioctls -----------------------------------------------------------------------------------

  ioctl(req: number, arg: unknown): number {
    switch (req) {
      case VFIO_GET_API_VERSION:
        return 0;
      case VFIO_CHECK_EXTENSION:
        return this.checkExtension(Number(arg));
      case VFIO_SET_IOMMU:
        return this.setIommu(Number(arg));
    }
    if (!this.iommu) return -EINVAL;
    const buf = arg instanceof Uint8Array ? arg : new Uint8Array(0);
    switch (req) {
      case VFIO_IOMMU_GET_INFO:
        return refGetInfo(this, buf);
      case VFIO_IOMMU_MAP_DMA:
        return refMap(this, buf);
      case VFIO_IOMMU_UNMAP_DMA:
        return refUnmap(this, buf);
      case VFIO_IOMMU_DIRTY_PAGES:
        return refDirtyPages(this, buf);
      default:
        return -ENOTTY;
    }
  }

  checkExtension(n: number): number {
    if (n === VFIO_TYPE1_IOMMU || n === VFIO_TYPE1v2_IOMMU || n === VFIO_UNMAP_ALL) return 1;
    if (!this.iommu) return 0;
    if (n === VFIO_UPDATE_VADDR) return this.hasEmulated ? 0 : 1;
    if (n === VFIO_DMA_CC_IOMMU) return 1; // every domain enforces coherency; also with none
    return 0;
  }

  setIommu(n: number): number {
    if (this.groups.length === 0 || this.iommu) return -EINVAL;
    if (n !== VFIO_TYPE1_IOMMU && n !== VFIO_TYPE1v2_IOMMU && n !== VFIO_UNMAP_ALL) return -ENODEV;
    if (n === VFIO_UNMAP_ALL) return -EINVAL; // type1's open() refuses a non-type number
    this.iommu = n === VFIO_TYPE1_IOMMU ? 'type1' : 'type1v2';
    this.dmaAvail = this.engine.dmaEntryLimit;
    this.dmas = [];
    this.tracking = false;
    this.vaddrInvalidCount = 0;
    for (const g of this.groups) {
      const r = this.driverAttach(g);
      if (r < 0) {
        this.releaseDriver();
        return r;
      }
    }
    return 0;
  }

  // ---- attach / detach --------------------------------------------------------------------------

  /** SET_CONTAINER after the group-level checks: attaches to the driver when there is one. */
  attachGroup(g: RefGroup): number {
    if (this.iommu) {
      const r = this.driverAttach(g);
      if (r < 0) return r;
    }
    this.groups.push(g);
    g.container = this;
    return 0;
  }

  /** type1 attach_group (docs/conformance.md §2.6). */
  private driverAttach(g: RefGroup): number {
    if (this.vaddrInvalidCount > 0) return -EBUSY;
    if (g.kind === 'emulated') {
      this.drvGroups.push(g);
      this.pinnedScope.set(g, true);
      return 0;
    }
    const [a0, a1] = g.aperture;
    for (const d of this.dmas) {
      if (d.iova < a0 || d.end - 1n > a1) return -EINVAL;
      for (const [rs, re] of g.reserved) if (d.iova <= re && d.end - 1n >= rs) return -EINVAL;
    }
    const after = [...this.drvGroups, g];
    if (RefContainer.iovaListOf(after).length === 0) return -EINVAL;
    const oldShift = this.pgshift;
    const newShift = ctz(RefContainer.pgsizeBitmapOf(after));
    if (this.tracking && newShift !== oldShift) return -EINVAL;
    // Engine extension: a larger smallest page size must divide every dma's iova, size and vaddr.
    const mask = (1n << BigInt(newShift)) - 1n;
    if (newShift > oldShift && this.dmas.some((d) => ((d.iova | d.size | d.vaddr) & mask) !== 0n)) return -EINVAL;
    if (!this.hasDomain) {
      const r = this.replay();
      if (r < 0) return r;
    }
    this.drvGroups.push(g);
    this.pinnedScope.set(g, false);
    return 0;
  }

  /** Pins and charges every dma for the first IOMMU domain; all or nothing (docs/conformance.md §2.6). */
  private replay(): number {
    const charged: [RefProcess, bigint][] = [];
    let err = 0;
    for (const d of this.dmas) {
      const pinned = [...d.pins.keys()].sort((a, b) => a - b);
      const r = chargeCheck(d.owner, d.vaddr, d.npages, d.lockCap, pinned);
      if (r.err) {
        err = r.err;
        break;
      }
      d.owner.lockedVm += r.charge;
      charged.push([d.owner, r.charge]);
    }
    if (err) {
      for (const [p, n] of charged) p.lockedVm -= n;
      return err;
    }
    for (const d of this.dmas) d.iommuMapped = true;
    return 0;
  }

  /** vfio_group_detach_container: the driver lets go of the group; the last one releases it. */
  detachGroup(g: RefGroup): void {
    if (this.iommu) this.driverDetach(g);
    this.groups.splice(this.groups.indexOf(g), 1);
    g.container = null;
    if (this.iommu && this.groups.length === 0) this.releaseDriver();
  }

  /** type1 detach_group (docs/conformance.md §2.7, §6.5). */
  private driverDetach(g: RefGroup): void {
    const i = this.drvGroups.indexOf(g);
    if (i < 0) return;
    const wasNonPinned = this.pinnedScope.get(g) === false;
    const oldPgsize = this.pgsize;
    this.drvGroups.splice(i, 1);
    this.pinnedScope.delete(g);
    if (g.kind === 'emulated') {
      if (!this.hasEmulated && !this.hasDomain) this.removeAllDmas(false);
    } else if (!this.hasDomain) {
      if (!this.hasEmulated) {
        this.removeAllDmas(true);
      } else {
        for (const d of this.dmas) {
          if (d.iommuMapped) d.owner.lockedVm += BigInt(d.pins.size) - d.npages;
          d.iommuMapped = false;
        }
      }
    }
    // Engine extension: the bitmaps follow a new smallest page size (the kernel's do not). The
    // engine keeps the old sizes when it cannot make the new bitmaps; here that cannot happen
    // (no allocation fails, and no test maps INT_MAX pages at a finer size).
    if (this.tracking && this.pgsize !== oldPgsize) for (const d of this.dmas) d.regrain(oldPgsize, this.pgsize);
    if (wasNonPinned && this.tracking) for (const d of this.dmas) d.fillBitmap();
  }

  /** vfio_iommu_unmap_unpin_all: every dma freed; uncharged only when it was iommu-mapped. */
  private removeAllDmas(uncharge: boolean): void {
    for (const d of this.dmas) {
      if (uncharge && d.iommuMapped) d.owner.lockedVm -= d.npages;
    }
    this.dmaAvail += this.dmas.length;
    this.dmas = [];
    this.vaddrInvalidCount = 0;
  }

  /** The driver is released: every piece of type1 state goes. */
  private releaseDriver(): void {
    for (const g of this.drvGroups) this.pinnedScope.delete(g);
    this.drvGroups.length = 0;
    this.iommu = null;
    this.dmas = [];
    this.tracking = false;
    this.dmaAvail = 0;
    this.vaddrInvalidCount = 0;
  }

  // ---- dma list ---------------------------------------------------------------------------------

  /** Inserts a dma keeping ascending order. */
  insertDma(d: RefDma): void {
    let i = 0;
    while (i < this.dmas.length && this.dmas[i].iova < d.iova) i++;
    this.dmas.splice(i, 0, d);
  }

  removeDma(d: RefDma): void {
    this.dmas.splice(this.dmas.indexOf(d), 1);
    if (d.vaddrInvalid) this.vaddrInvalidCount--;
    this.dmaAvail++;
  }

  /** The dma containing byte address a, or undefined. */
  dmaAt(a: bigint): RefDma | undefined {
    return this.dmas.find((d) => d.contains(a));
  }
}
