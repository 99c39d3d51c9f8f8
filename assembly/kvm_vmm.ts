// The per-page steps of the simulator's VMM (src/sim/cpu_log.ts, src/sim/dirty_rate*.ts), in the
// core: laying out a batch of guest stores and reaping a dirty ring's entries as QEMU does
// (kvm_dirty_ring_reap_one). A slot's fetched dirty log is ORed in with the bitmap kernels.
import { nbitsOf, wordsOf } from './dirty_bitmap';
import { umFrame } from './user_memory';
import { PAGE_SHIFT, PAGE_SIZE } from './constants';

const F_DIRTY: u32 = 1;
const F_RESET: u32 = 2;

@inline function testBit(bm: usize, bit: u32): bool {
  return bit < nbitsOf(bm) && ((load<u64>(wordsOf(bm) + (<usize>(bit >> 6) << 3)) >> <u64>(bit & 63)) & 1) != 0;
}

@inline function setBit(bm: usize, bit: u32): void {
  if (bit >= nbitsOf(bm)) return;
  const w = wordsOf(bm) + (<usize>(bit >> 6) << 3);
  store<u64>(w, load<u64>(w) | (<u64>1 << <u64>(bit & 63)));
}

/**
 * Lays out `n` guest stores of 8 bytes: store i goes to guest page pages[i] (u32 at `pages`), or
 * first + i when `pages` is 0, at offset 0; its gpa goes to `gpas` (u64) and its bytes to `data`:
 * the u64 seq + i when the page's bit is set in `valued` (a bitmap, or 0 for none), else zeros.
 * Returns how many of the stores go to pages [watchFirst, watchFirst + watchCount).
 */
export function vmm_stores(pages: usize, first: u32, n: u32, gpas: usize, data: usize, valued: usize, seq: f64, watchFirst: u32, watchCount: u32): u32 {
  const s = <u64>seq;
  let watched: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const p = pages ? load<u32>(pages + (<usize>i << 2)) : first + i;
    if (p - watchFirst < watchCount) watched++;
    store<u64>(gpas + (<usize>i << 3), <u64>p << PAGE_SHIFT);
    store<u64>(data + (<usize>i << 3), valued && testBit(valued, p) ? s + <u64>i : 0);
  }
  return watched;
}

/**
 * Reaps a dirty ring copied to `mem` (`entries` entries of struct kvm_dirty_gfn) from the fetch
 * index `fetch` on, while an entry's flags are DIRTY: its page goes into bitmap `bm` as guest page
 * table[id].base + offset (table: u32 pairs base page, pages for slot ids [0, nslots) of address
 * space 0; entries of other slots, or past their slot's end, set nothing), and its flags become
 * RESET. Returns the number reaped (the caller advances its fetch index by it).
 */
export function vmm_ring_reap(mem: usize, entries: u32, fetch: u32, table: usize, nslots: u32, bm: usize): u32 {
  let n: u32 = 0;
  while (n < entries) {
    const e = mem + (<usize>((fetch + n) & (entries - 1)) << 4);
    if (load<u32>(e) != F_DIRTY) break;
    const slot = load<u32>(e, 4);
    const off = load<u64>(e, 8);
    if (slot < nslots) {
      const t = table + (<usize>slot << 3);
      if (off < <u64>load<u32>(t, 4)) setBit(bm, load<u32>(t) + <u32>off);
    }
    store<u32>(e, F_RESET);
    n++;
  }
  return n;
}

/**
 * Hashes `n` pages of user memory, page vfns[i] (u32 at `vfns`) from host address `base`, to u32s
 * at `out`: FNV-1a over the page's u64 words, folded to 32 bits; pages never written hash as
 * zeros. With `prev` (hashes of the same pages, or 0) returns how many hashes differ from it.
 * Any change of a page's bytes changes its hash but for collisions (1 in 2^32).
 */
export function vmm_page_hashes(um: usize, base: f64, vfns: usize, n: u32, out: usize, prev: usize): u32 {
  const b = <u64>base;
  let changed: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const f = umFrame(um, (b >> PAGE_SHIFT) + <u64>load<u32>(vfns + (<usize>i << 2)));
    let h: u64 = 0xcbf29ce484222325;
    for (let w: usize = 0; w < <usize>PAGE_SIZE; w += 8) {
      h = (h ^ (f ? load<u64>(f + w) : 0)) * 0x100000001b3;
    }
    const v = <u32>(h ^ (h >> 32));
    store<u32>(out + (<usize>i << 2), v);
    if (prev && load<u32>(prev + (<usize>i << 2)) != v) changed++;
  }
  return changed;
}
