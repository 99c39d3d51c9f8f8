// A dma's dirty report (assembly/report.ts) over the core wrappers: its DirtyBitmap copied out in
// the kernel's word footprint (docs/conformance.md §7.5), then reset and re-marked from its
// PinTable (§7.6).
// One core call per dma; the pages are walked in the core.
import type { DirtyBitmap } from './dirty_bitmap.js';
import type { PinTable } from './pin_table.js';
import type { UserMemory } from './user_memory.js';

/**
 * Writes `bm` (all ones when `allDirty`) shifted left by s (0..63) into user memory `um` at `addr`
 * (the user bitmap's word holding the dma's first bit), then clears `bm` and marks again the
 * pages of `pins` at bit page >> shift. An unaligned addr stages words in `scratch` (a PAGE_SIZE
 * block; 0: allocated per call); with the frames reserved and a scratch given the call cannot
 * fail. 0, or -ENOMEM with nothing written or changed.
 */
export function reportUser(
  bm: DirtyBitmap, um: UserMemory, addr: bigint, s: number, pins: PinTable | null, shift: number, allDirty: boolean,
  scratch = 0,
): number {
  const p = pins ? pins.handle : 0;
  return bm.core.x.report_user(um.handle, Number(addr), bm.handle, s, p, shift, allDirty ? 1 : 0, scratch);
}

/**
 * Writes bits [first, first + count) of `bm` (all ones when `allDirty`) shifted left by s into
 * linear memory at `dst` (an 8-byte aligned word address, e.g. DirtyBitmap.wordAddress). With
 * `clear`, the range is then cleared and the pages of `pins` marked again. Returns words written.
 */
export function reportWords(
  dst: number, bm: DirtyBitmap, first: number, count: number, s: number, pins: PinTable | null, shift: number,
  allDirty: boolean, clear: boolean,
): number {
  const p = pins ? pins.handle : 0;
  return bm.core.x.report_words(dst, bm.handle, first, count, s, p, shift, allDirty ? 1 : 0, clear ? 1 : 0);
}
