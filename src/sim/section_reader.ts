// A harvest per RAM section, as QEMU syncs one (hw/vfio): for each RAM slot, a zeroed bitmap in
// the VMM's memory at the tracking page size, one report call into it (DMA_LOGGING_REPORT or
// IOMMU_HWPT_GET_DIRTY_BITMAP), and the bits merged into the harvest at 4 KiB guest pages. A
// reported page larger than 4 KiB marks every guest page in it: over-reported, never under.
// The VMM touches its own buffer through the process's bulk copies (readInto / writeFrom): zeroing
// it and reading it back are one copy each between process memory and the local core, a core
// copy in process and one shared-file transfer over a server connection, so that a harvest's
// engine time is the tracking calls' and not the host copying bitmaps in and out.
//
//   slot:      [gpa ......................... gpa + size)
//   request:   [iova (gpa rounded down to p) .. end rounded up to p)   nbits = length / p
//   merged:    bit j -> guest pages [(iova + j·p) / 4 KiB, +p / 4 KiB), clipped to the slot
import { DirtyBitmap } from '../core/dirty_bitmap.js';
import { check, vfioError } from '../errors.js';
import type { Core } from '../wasm.js';
import { GUEST_PAGE, type RamSlot } from './guest_layout.js';
import type { KvmProcess } from './sim_engine.js';

/** The VMM process calls a tracker makes: open, ioctl with struct bytes, memory, close. */
export type TrackProcess = Pick<KvmProcess, 'mmap' | 'open' | 'ioctl' | 'write' | 'close' | 'readInto' | 'writeFrom'>;

/** One RAM slot's report request, at the tracking page size. */
export interface Section {
  iova: bigint;
  length: bigint;
  /** Bits of the report: length / page size. */
  nbits: number;
  /** The slot's first guest page and its pages, what the merge covers. */
  firstPage: number;
  pages: number;
  /** Guest pages from iova to the slot's start (0 when the slot is aligned to the page size). */
  skip: number;
}

/** The sections of `slots` at page size `pageSize` (a power of two, at least 4 KiB). */
export function sectionsOf(slots: readonly RamSlot[], pageSize: number): Section[] {
  return slots.map((s) => {
    const start = Math.floor(s.gpa / pageSize) * pageSize;
    const end = Math.ceil((s.gpa + s.size) / pageSize) * pageSize;
    return {
      iova: BigInt(start), length: BigInt(end - start), nbits: (end - start) / pageSize,
      firstPage: s.gpa / GUEST_PAGE, pages: s.size / GUEST_PAGE, skip: (s.gpa - start) / GUEST_PAGE,
    };
  });
}

/** The report bitmaps of a tracker's sections: one buffer in the VMM's memory, one core bitmap each. */
export class SectionReader {
  readonly sections: readonly Section[];
  private readonly proc: TrackProcess;
  private readonly buffer: bigint;
  private readonly core: Core;
  private readonly bitmaps: DirtyBitmap[] = [];
  private readonly fine: DirtyBitmap[] = []; // at 4 KiB, for a page size above it
  private readonly k: number; // log2(page size / 4 KiB)

  /** @throws OutOfMemoryError (VfioError ENOMEM) when the core cannot allocate; nothing is kept then */
  constructor(core: Core, proc: TrackProcess, slots: readonly RamSlot[], pageSize: number) {
    this.core = core;
    this.proc = proc;
    this.k = Math.log2(pageSize / GUEST_PAGE);
    this.sections = sectionsOf(slots, pageSize);
    const most = Math.max(...this.sections.map((s) => bytesOf(s.nbits)));
    this.buffer = proc.mmap(most);
    try {
      // Everything a read needs is allocated here: once a report call has consumed the tracker's
      // bits, nothing can fail before they are merged.
      for (const s of this.sections) {
        this.bitmaps.push(DirtyBitmap.create(core, s.nbits));
        if (this.k > 0) this.fine.push(DirtyBitmap.create(core, s.nbits * 2 ** this.k));
      }
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /**
   * One report call per section into the zeroed buffer (`call(section, bufferAddress)` returns
   * the ioctl's result), each merged into `into` at guest pages.
   * @throws VfioError named `what` when a call fails (what was merged before stays merged)
   */
  read(into: DirtyBitmap, what: string, call: (s: Section, bitmap: bigint) => number): void {
    const x = this.core.x;
    const proc = this.proc;
    const at = this.buffer;
    this.sections.forEach((s, i) => {
      const nbytes = bytesOf(s.nbits);
      const range = { start: s.iova, length: s.length };
      const bm = this.bitmaps[i];
      bm.clear(); // only the words holding bits are written; then it is the zeros to copy
      proc.writeFrom(at, bm.wordAddress(0), nbytes, `${what}: zeroing the bitmap`);
      const r = call(s, this.buffer);
      if (r < 0) throw vfioError(r, what, range);
      proc.readInto(at, bm.wordAddress(0), nbytes, `${what}: reading the bitmap`);
      if (this.k === 0) {
        bm.orInto(into, s.firstPage, s.skip, s.pages);
        return;
      }
      const fine = this.fine[i];
      check(x.bitmap_convert(bm.handle, fine.handle, -this.k), `${what}: converting to 4 KiB pages`, range);
      fine.orInto(into, s.firstPage, s.skip, s.pages);
    });
  }

  dispose(): void {
    for (const b of [...this.bitmaps, ...this.fine]) b.dispose();
    this.bitmaps.length = 0;
    this.fine.length = 0;
  }
}

/** The bytes of a report bitmap of `nbits` bits: whole u64 words. */
function bytesOf(nbits: number): number {
  return Math.ceil(nbits / 64) * 8;
}
