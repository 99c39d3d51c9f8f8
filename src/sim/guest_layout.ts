// Guest RAM as a VMM maps it: low RAM from guest-physical 0 up to the 32-bit PCI hole, the rest
// from 4 GiB up. The simulator maps GPA = IOVA, so a guest page number is also a bit index of a
// dirty report taken from IOVA 0.
//
//   GPA 0          lowBytes        4 GiB                         4 GiB + (ramBytes - lowBytes)
//   |  low RAM     |   PCI hole    |  high RAM                   |
//   RAM index 0 .. lowPages-1       RAM index lowPages .. ramPages-1

/** Where the 32-bit PCI hole starts at the latest: 4 GiB - 512 MiB, below the MSI window. */
export const LOW_RAM_MAX = 0xe000_0000;
/** Guest-physical start of RAM above the hole. */
export const HIGH_RAM_BASE = 0x1_0000_0000;
/** The guest's page size: every simulated write dirties whole 4 KiB pages. */
export const GUEST_PAGE = 4096;

/** One slot of guest RAM, mapped by the VMM as one DMA mapping. */
export interface RamSlot {
  /** Guest-physical (and IOVA) start, bytes. */
  gpa: number;
  /** Length, bytes. */
  size: number;
  /** Index of the slot's first page in RAM order (low RAM first). */
  firstRamPage: number;
}

/** The guest's RAM slots and the conversions between RAM order and guest page numbers. */
export class GuestLayout {
  /** Guest RAM, bytes. */
  readonly ramBytes: number;
  /** RAM below the hole, bytes. */
  readonly lowBytes: number;
  /** RAM pages in all. */
  readonly ramPages: number;
  /** RAM pages below the hole. */
  readonly lowPages: number;
  /** Guest pages of the hole: added to a RAM index at or above lowPages to get its GPA page. */
  readonly holePages: number;
  /** One past the last guest-physical byte of RAM. */
  readonly gpaEnd: number;
  /** The slots, ascending. */
  readonly slots: RamSlot[];

  /**
   * @param ramBytes guest RAM in bytes, a multiple of 4 KiB
   * @param lowLimit the most RAM placed below 4 GiB, a multiple of 4 KiB, at most LOW_RAM_MAX
   * @throws RangeError when a size is not page aligned, or lowLimit is past LOW_RAM_MAX
   */
  constructor(ramBytes: number, lowLimit: number) {
    if (!(ramBytes > 0) || ramBytes % GUEST_PAGE) throw new RangeError('ramBytes must be a positive multiple of 4 KiB');
    if (!(lowLimit > 0) || lowLimit % GUEST_PAGE || lowLimit > LOW_RAM_MAX) {
      throw new RangeError(`lowLimit must be a positive multiple of 4 KiB, at most 0x${LOW_RAM_MAX.toString(16)}`);
    }
    this.ramBytes = ramBytes;
    this.lowBytes = Math.min(ramBytes, lowLimit);
    this.ramPages = ramBytes / GUEST_PAGE;
    this.lowPages = this.lowBytes / GUEST_PAGE;
    this.holePages = (HIGH_RAM_BASE - this.lowBytes) / GUEST_PAGE;
    this.slots = [{ gpa: 0, size: this.lowBytes, firstRamPage: 0 }];
    if (ramBytes > this.lowBytes) {
      this.slots.push({ gpa: HIGH_RAM_BASE, size: ramBytes - this.lowBytes, firstRamPage: this.lowPages });
    }
    const last = this.slots[this.slots.length - 1];
    this.gpaEnd = last.gpa + last.size;
  }

  /** Guest pages from GPA 0 to the end of RAM, hole included: the bits of a whole-guest report. */
  get gpaPages(): number {
    return this.gpaEnd / GUEST_PAGE;
  }

  /** The guest page number of RAM page `i` (RAM order). */
  gpaPage(i: number): number {
    return i < this.lowPages ? i : i + this.holePages;
  }

  /**
   * Calls `fn(firstGpaPage, count)` for the guest-page ranges that RAM pages [first, first +
   * count) occupy: one range, or two when they straddle the hole.
   */
  forEachGpaRange(first: number, count: number, fn: (gpaPage: number, count: number) => void): void {
    if (count <= 0) return;
    if (first < this.lowPages) {
      const n = Math.min(count, this.lowPages - first);
      fn(first, n);
      first += n;
      count -= n;
    }
    if (count > 0) fn(first + this.holePages, count);
  }

  /** Converts RAM-order page indices to guest page numbers in place. */
  toGpaPages(pages: Uint32Array, n: number): void {
    const low = this.lowPages;
    const hole = this.holePages;
    if (hole === 0 || this.ramPages === low) return;
    for (let i = 0; i < n; i++) if (pages[i] >= low) pages[i] += hole;
  }
}
