// The type1 IOMMU driver's state for one container (the kernel's struct vfio_iommu): its dmas in
// the core's IOVA tree, domains (IOMMU-backed groups), emulated groups, the valid-IOVA list,
// dirty-tracking state and dirty scope. Group attach (with replay) and detach live here;
// MAP/UNMAP, pinning and dirty reports are in their own files and work on this state.
import { EBUSY, EDEADLK, EFAULT, EINVAL, ENOMEM } from '../../assembly/constants.js';
import type { Core } from '../wasm.js';
import { IovaTree } from '../core/iova_tree.js';
import { VfioError } from '../errors.js';
import { regrain } from './dirty.js';
import { Dma } from './dma.js';
import type { Group, VfioDevice } from './group.js';
import type { Profile } from './profile.js';
import { ctz64, PAGE_SHIFT, PAGE_SIZE, U64_MAX } from '../u64.js';
import { uapi } from '../uapi.js';

/** pgsize bitmap of a container with no IOMMU domain. */
const NO_DOMAIN_PGSIZES = uapi.PGSIZE_BITMAP_NO_DOMAIN;

export type Range = readonly [bigint, bigint];

export class Type1 {
  readonly core: Core;
  readonly profile: Profile;
  /** VFIO_TYPE1v2_IOMMU semantics (unmap rules, pinning, dirty tracking). */
  readonly v2: boolean;
  /** The core's IOVA tree: dma ranges to dma ids. */
  readonly tree: IovaTree;
  /**
   * dma id to record (null where an id is free). Ids are small and reused, so an array indexed by
   * id stays dense, and a MAP or UNMAP costs no hash-table growth, shrinking or rehash.
   */
  private readonly byId: (Dma | null)[] = [null];
  private freeIds: number[] = [];
  private nextId = 1;
  /** Remaining vfio_dma entries (DMA_AVAIL). */
  dmaAvail: number;
  /** VFIO_IOMMU_DIRTY_PAGES started and not stopped. */
  tracking = false;
  /** dmas invalidated by UNMAP with VADDR. */
  vaddrInvalidCount = 0;
  /** Attached groups whose pinned_page_dirty_scope is false. */
  nonPinnedGroups = 0;
  /** IOMMU-backed groups (one domain each), in attach order. */
  readonly iommuGroups: Group[] = [];
  /** Emulated (mdev) groups, in attach order. */
  readonly emulatedGroups: Group[] = [];
  /** Valid IOVA ranges, inclusive, ascending; empty with no IOMMU domain (anything goes). */
  validRanges: Range[] = [];
  /** Supported IOMMU page sizes. */
  pgsizeBitmap: bigint = NO_DOMAIN_PGSIZES;
  /** log2 of the smallest page size: the dirty-tracking granularity. */
  pgshift = Number(PAGE_SHIFT);
  /** 1 << pgshift, as bigint. */
  pgsize = PAGE_SIZE;
  /** pgshift as bigint, for shifts. */
  pgshiftBig = PAGE_SHIFT;
  /** pgsize - 1: the bits an aligned address has clear. */
  pgmask = PAGE_SIZE - 1n;
  /**
   * log2(pgsize / PAGE_SIZE): PAGE_SIZE page p of a dma (pins count in PAGE_SIZE pages) is dirty
   * bit p >> bitShift of its bitmap. The core's pin and report calls take it as `shift`.
   */
  bitShift = 0;
  /** dma_unmap callbacks of this container running now (nested unmaps can nest them). */
  callbackDepth = 0;
  /**
   * The rule behind the last MAP or UNMAP refusal, in words, set by the check that refused it
   * (null when the errno has no rule to name, e.g. out of memory). The ioctl returns -errno only;
   * the typed API takes it (takeRefusal) into its error's message.
   */
  refusal: string | null = null;

  private constructor(core: Core, profile: Profile, v2: boolean, tree: IovaTree, dmaEntryLimit: number) {
    this.core = core;
    this.profile = profile;
    this.v2 = v2;
    this.tree = tree;
    this.dmaAvail = dmaEntryLimit;
  }

  /** Opens the driver: a new tree. Returns the driver, or -ENOMEM. */
  static open(core: Core, profile: Profile, v2: boolean, dmaEntryLimit: number): Type1 | number {
    let tree: IovaTree;
    try {
      tree = new IovaTree(core);
    } catch (e) {
      if (e instanceof VfioError) return -e.errno;
      throw e;
    }
    return new Type1(core, profile, v2, tree, dmaEntryLimit);
  }

  get hasDomain(): boolean {
    return this.iommuGroups.length > 0;
  }

  // ---- calls from inside a dma_unmap callback -------------------------------------------------

  /**
   * Whether one of this container's dma_unmap callbacks is running. Calls that would change the
   * container's groups, page sizes or tracking state then answer -EDEADLK and change nothing (the
   * kernel holds the container's group lock across the unmap).
   */
  get inCallback(): boolean {
    return this.callbackDepth > 0;
  }


  // ---- dmas ---------------------------------------------------------------------------------

  /** The dma containing IOVA `a`, or undefined. */
  find(a: bigint): Dma | undefined {
    if (a > U64_MAX) return undefined; // i64 arguments would wrap it silently
    const id = this.tree.find(a);
    return id === undefined ? undefined : (this.byId[id] ?? undefined);
  }

  /** The lowest dma overlapping [a, b] (inclusive), or undefined. */
  first(a: bigint, b: bigint): Dma | undefined {
    const id = this.tree.first(a, b);
    return id === undefined ? undefined : (this.byId[id] ?? undefined);
  }

  /** Every dma, in no particular order (cheaper than `all()`, which walks the tree). */
  *each(): IterableIterator<Dma> {
    for (const d of this.byId) if (d) yield d;
  }

  /**
   * The dma after `d` overlapping [.., last], or undefined: the step of every walk over the dmas
   * of a range, `for (let d = t.first(a, last); d; d = t.next(d, last))`, ascending.
   */
  next(d: Dma, last: bigint): Dma | undefined {
    return d.last >= last ? undefined : this.first(d.last + 1n, last);
  }

  /** Every dma overlapping [a, b], ascending. */
  inRange(a: bigint, b: bigint): Dma[] {
    const out: Dma[] = [];
    for (let d = this.first(a, b); d; d = this.next(d, b)) out.push(d);
    return out;
  }

  /**
   * The v2 bisection rule shared by UNMAP and GET_BITMAP (docs/conformance.md §5.2, §7.4): the dma
   * that [iova, last] cuts (one containing `iova` but starting before it, or containing `last` but
   * ending after it), or undefined. Before v6.18 the end lookup of a range reaching 2^64 never
   * matched (its exclusive end wrapped to 0), so only the start is checked there.
   */
  cutBy(iova: bigint, last: bigint): Dma | undefined {
    const a = this.find(iova);
    if (a && a.iova !== iova) return a;
    if (last === U64_MAX && !this.profile.topEndUsable) return undefined;
    const b = a && a.last >= last ? a : this.find(last);
    return b && b.last !== last ? b : undefined;
  }

  /** Records why a MAP or UNMAP check refused (see `refusal`) and returns -errno. */
  refuse(errno: number, rule: string): number {
    this.refusal = rule;
    return -errno;
  }

  /** The rule of the last refusal, cleared as it is read. */
  takeRefusal(): string | undefined {
    const r = this.refusal ?? undefined;
    this.refusal = null;
    return r;
  }

  /** Every dma, ascending. */
  all(): Dma[] {
    return this.inRange(0n, U64_MAX);
  }

  /** A fresh dma id (ids are reused so the tree's values stay small). */
  allocId(): number {
    return this.freeIds.pop() ?? this.nextId++;
  }

  /** Returns an id that was allocated but never inserted. */
  releaseId(id: number): void {
    this.freeIds.push(id);
  }

  /** Inserts `d` into the tree: 0 or -ENOMEM (nothing changed). Overlap was checked before. */
  insert(d: Dma): number {
    const r = this.tree.tryInsert(d.iova, d.last, d.id);
    if (r < 0) return r;
    this.byId[d.id] = d;
    this.dmaAvail--;
    return 0;
  }

  /**
   * vfio_remove_dma: unmaps, frees the bitmap and the pins. An IOMMU-mapped dma returns all it
   * charged (docs/conformance.md §2.7: unpinned and uncharged); otherwise the charges of pins a
   * driver never released stay with the process, as in the kernel.
   */
  remove(d: Dma): void {
    if (d.iommuMapped) this.uncharge(d, d.lockedVm);
    d.bitmap?.dispose();
    d.pins?.dispose();
    d.bitmap = null;
    d.pins = null;
    if (d.vaddrInvalid) this.vaddrInvalidCount--;
    this.tree.remove(d.iova);
    this.byId[d.id] = null;
    this.freeIds.push(d.id);
    this.dmaAvail++;
  }

  /** Removes every dma (vfio_iommu_unmap_unpin_all). */
  removeAll(): void {
    for (const d of this.all()) this.remove(d);
  }

  /** Distinct pages of `d` pinned through vfio_pin_pages. */
  pinned(d: Dma): number {
    return d.pins ? d.pins.size : 0;
  }

  // ---- locked_vm accounting -----------------------------------------------------------------

  /** Charges `pages` to d's owner: 0, or -ENOMEM when RLIMIT_MEMLOCK would be passed. */
  charge(d: Dma, pages: bigint): number {
    if (pages <= 0n) return 0;
    const p = d.owner;
    if (!d.lockCap && p.memlockPages !== null && p.lockedVm + pages > p.memlockPages) return -ENOMEM;
    p.lockedVm += pages;
    d.lockedVm += pages;
    return 0;
  }

  /** Returns `pages` to d's owner. */
  uncharge(d: Dma, pages: bigint): void {
    if (pages <= 0n) return;
    d.owner.lockedVm -= pages;
    d.lockedVm -= pages;
  }

  /** Pages still chargeable to d's owner before RLIMIT_MEMLOCK (-1: no limit applies). */
  budget(d: Dma): number {
    const p = d.owner;
    if (d.lockCap || p.memlockPages === null) return -1;
    const left = p.memlockPages - p.lockedVm;
    return left <= 0n ? 0 : left > 0x7fff_ffffn ? 0x7fff_ffff : Number(left);
  }

  // ---- devices ------------------------------------------------------------------------------

  /** Devices that may pin and are told of unmaps, most recently joined first (the kernel's list_add order). */
  participants(): VfioDevice[] {
    const out: VfioDevice[] = [];
    for (const g of [...this.iommuGroups, ...this.emulatedGroups]) {
      for (const dev of g.devices) if (dev.participating) out.push(dev);
    }
    return out.sort((a, b) => b.joinSeq - a.joinSeq);
  }

  // ---- groups -------------------------------------------------------------------------------

  /** vfio_iommu_type1_attach_group: 0 or -errno, with nothing changed on failure. */
  attachGroup(g: Group): number {
    if (this.inCallback) return -EDEADLK;
    if (this.vaddrInvalidCount) return -EBUSY;
    if (g.kind === 'emulated') {
      this.emulatedGroups.push(g);
      g.attached = true;
      g.pinnedScope = true;
      return 0;
    }
    const [start, end] = g.aperture;
    if (this.apertureConflict(start, end)) return -EINVAL;
    for (const [rs, re] of g.reserved) if (this.first(rs, re)) return -EINVAL;
    const pgsizes = pgsizesOf([...this.iommuGroups, g]);
    const pgshift = ctz64(pgsizes);
    // Engine extension (docs/conformance.md §10.3): the bitmaps' granularity cannot change under
    // tracking.
    if (this.tracking && pgshift !== this.pgshift) return -EINVAL;
    // Engine extension: a larger smallest page size must still divide every mapping's iova, size
    // and vaddr, as MAP requires; a dirty bitmap of size / pgsize bits would leave out the tail
    // of one that it does not divide. (The kernel's replay into the new domain refuses a part of
    // these cases; the rest it accepts, and then under-reports them.)
    if (pgshift > this.pgshift && this.misaligned(pgshift)) return -EINVAL;
    const base: Range[] = this.validRanges.length ? this.validRanges : [[start, end]];
    const ranges = excludeAll(clip(base, start, end), g.reserved);
    if (!this.hasDomain) {
      const r = this.replay();
      if (r < 0) return r;
    }
    this.iommuGroups.push(g);
    this.validRanges = ranges;
    this.setPgsizes(pgsizes);
    this.nonPinnedGroups++;
    g.attached = true;
    g.pinnedScope = false;
    return 0;
  }

  /**
   * A new aperture [start, end] conflicts with the valid list when they are disjoint, and with
   * any existing dma lying outside it (docs/conformance.md §10.6). The kernel skips the dma
   * check while the list is empty (the first domain); the engine does not: such a dma could
   * never be reached by the device.
   */
  private apertureConflict(start: bigint, end: bigint): boolean {
    const list = this.validRanges;
    if (list.length && (start > list[list.length - 1][1] || end < list[0][0])) return true;
    if (start > 0n && this.first(0n, start - 1n)) return true;
    return end < U64_MAX && this.first(end + 1n, U64_MAX) !== undefined;
  }

  /**
   * The first IOMMU domain pins and maps every dma, charging the pages that have no external pin
   * (docs/conformance.md §2.6). All or nothing: -ENOMEM or -EFAULT undoes every charge.
   */
  private replay(): number {
    const done: [Dma, bigint][] = [];
    const undo = (ret: number): number => {
      for (const [e, n] of done) this.uncharge(e, n);
      return ret;
    };
    for (const d of this.all()) {
      // Page by page the kernel pins (EFAULT at an unmapped page) and then charges pages without
      // an external pin (ENOMEM past the limit): whichever comes first wins.
      const u = d.owner.firstUnmappedPage(d.vaddr, d.npages);
      if (u >= 0) {
        const chargeable = u - (d.pins ? d.pins.countRange(0n, BigInt(u)) : 0);
        const budget = this.budget(d);
        return undo(budget >= 0 && chargeable > budget ? -ENOMEM : -EFAULT);
      }
      const need = BigInt(d.npages - this.pinned(d));
      if (this.charge(d, need) < 0) return undo(-ENOMEM);
      done.push([d, need]);
    }
    for (const [d] of done) d.iommuMapped = true;
    return 0;
  }

  /** Whether some mapping's iova, size or vaddr is not a multiple of 2^pgshift. */
  private misaligned(pgshift: number): boolean {
    const mask = (1n << BigInt(pgshift)) - 1n;
    for (const d of this.each()) if (((d.iova | d.size | d.vaddr) & mask) !== 0n) return true;
    return false;
  }

  /**
   * vfio_iommu_type1_detach_group: never fails. Callers keep it out of dma_unmap callbacks
   * (-EDEADLK); reaching it from one is a bug of the engine, so it throws.
   */
  detachGroup(g: Group): void {
    if (this.inCallback) throw new Error('type1: a group detach inside a dma_unmap callback');
    const updateScope = !g.pinnedScope;
    if (g.kind === 'emulated') {
      this.emulatedGroups.splice(this.emulatedGroups.indexOf(g), 1);
      if (!this.emulatedGroups.length && !this.hasDomain) this.removeAll();
    } else {
      this.iommuGroups.splice(this.iommuGroups.indexOf(g), 1);
      if (!this.hasDomain) {
        if (!this.emulatedGroups.length) this.removeAll();
        else this.reaccount();
      }
      // Under tracking the bitmaps follow a new smallest page size, or, when they cannot be
      // re-grained (INT_MAX bits, no memory), the container keeps its page sizes: a detach
      // never fails and never drops a dirty bit.
      const pgsizes = pgsizesOf(this.iommuGroups);
      const shift = ctz64(pgsizes);
      if (!this.tracking || shift === this.pgshift || regrain(this, shift)) this.setPgsizes(pgsizes);
      this.validRanges = this.rebuildRanges();
    }
    g.attached = false;
    g.pinnedScope = false;
    if (updateScope) {
      this.nonPinnedGroups--;
      // The departing device's DMA since the last report is unknown: everything is dirty.
      if (this.tracking) for (const d of this.each()) d.bitmap!.setRange(0, d.nbits);
    }
  }

  /** The last domain left while emulated groups stay: only external pins remain charged. */
  private reaccount(): void {
    for (const d of this.all()) {
      if (!d.iommuMapped) continue;
      d.iommuMapped = false;
      this.uncharge(d, BigInt(d.npages - this.pinned(d)));
    }
  }

  /**
   * The valid list after a detach: the intersection of the remaining apertures (wider than before
   * once the departed domain stops narrowing it) minus the remaining reserved regions.
   */
  private rebuildRanges(): Range[] {
    if (!this.hasDomain) return [];
    let lo = 0n;
    let hi = U64_MAX;
    for (const g of this.iommuGroups) {
      if (g.aperture[0] > lo) lo = g.aperture[0];
      if (g.aperture[1] < hi) hi = g.aperture[1];
    }
    let ranges: Range[] = lo <= hi ? [[lo, hi]] : [];
    for (const g of this.iommuGroups) ranges = excludeAll(ranges, g.reserved);
    return ranges;
  }

  private setPgsizes(bm: bigint): void {
    this.pgsizeBitmap = bm;
    this.pgshift = ctz64(bm);
    this.pgshiftBig = BigInt(this.pgshift);
    this.bitShift = this.pgshift - Number(PAGE_SHIFT);
    this.pgsize = 1n << this.pgshiftBig;
    this.pgmask = this.pgsize - 1n;
  }

  /** Whether [a, b] lies inside one valid range (an empty list accepts anything). */
  iovaValid(a: bigint, b: bigint): boolean {
    if (!this.validRanges.length) return true;
    return this.validRanges.some(([s, e]) => a >= s && b <= e);
  }

  /**
   * The bit of IOVA `a` (>= base) in a bitmap whose bit 0 is IOVA `base`: (a - base) / pgsize.
   * Exact: an offset between two u64 IOVAs is below 2^64, so below 2^52 tracking pages.
   */
  bitOf(base: bigint, a: bigint): number {
    return Number((a - base) >> this.pgshiftBig);
  }

  /** Bits of d's dirty bitmap: its size in pgsize units. */
  nbits(d: Dma): number {
    return Number((d.size + this.pgsize - 1n) >> this.pgshiftBig);
  }

  /** Frees everything the driver holds (the container lost its last group). */
  release(): void {
    this.removeAll();
    this.tree.dispose();
  }
}

/** The container's page sizes for a set of domains (vfio_update_pgsize_bitmap). */
export function pgsizesOf(groups: readonly Group[]): bigint {
  let bm = U64_MAX;
  for (const g of groups) bm &= g.pgsizeBitmap;
  if (bm & (PAGE_SIZE - 1n)) bm = (bm & ~(PAGE_SIZE - 1n)) | PAGE_SIZE; // sizes below PAGE_SIZE become PAGE_SIZE
  return bm;
}

/** `ranges` intersected with [start, end]. */
function clip(ranges: readonly Range[], start: bigint, end: bigint): Range[] {
  const out: Range[] = [];
  for (const [s, e] of ranges) {
    const a = s > start ? s : start;
    const b = e < end ? e : end;
    if (a <= b) out.push([a, b]);
  }
  return out;
}

/** `ranges` minus every region of `holes`. */
function excludeAll(ranges: readonly Range[], holes: readonly (readonly [bigint, bigint])[]): Range[] {
  let out: Range[] = [...ranges];
  for (const [hs, he] of holes) {
    const next: Range[] = [];
    for (const [s, e] of out) {
      if (he < s || hs > e) {
        next.push([s, e]);
        continue;
      }
      if (hs > s) next.push([s, hs - 1n]);
      if (he < e) next.push([he + 1n, e]);
    }
    out = next;
  }
  return out;
}
