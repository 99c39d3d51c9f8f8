// A dirty report of units into a user bitmap: the one kernel behind a device tracker's
// DMA_LOGGING_REPORT and a HWPT's GET_DIRTY_BITMAP (docs/conformance.md §20.5).
//
// The source is a dirty bitmap of units: unit j is the IOVA block [base + j·U, base + (j+1)·U),
// U = 2^ushift (a tracker's page size T, or one IOPTE size of an area). The query is
// Q = [iova, last] with report page P = 2^pshift; report bit k covers [iova + k·P, iova + (k+1)·P)
// and lives in user byte k/8, bit k%8, from the user address `user`:
//
//   IOVA      base        base+U      base+2U     ...
//   units     │  j = 0    │  j = 1    │  j = 2    │
//   query          ├─ Q = [iova, last] ───────────────┤
//   report bits    │ k=0 │ k=1 │ k=2 │ ...            (P may be larger or smaller than U)
//
// For every marked unit u intersecting Q the bits of the report units meeting u ∩ Q are set (OR:
// nothing is cleared or zeroed in the user bitmap, no byte past the last reported bit is changed);
// with `clear`, u is then unmarked when u ⊆ Q (a unit straddling an edge stays marked).
// The caller has checked that the user extent is mapped and reserved its frames (um_reserve).
import { bitmap_clear_range, bitmap_nbits, bitmap_words } from './dirty_bitmap';
import { PAGE_SIZE } from './constants';
import { umFrame } from './user_memory';

// The frame of the last user page touched: reports write user bytes in ascending order.
let curVpn: u64 = <u64>-1;
let curFrame: usize = 0;

@inline function userByte(um: usize, a: u64): usize {
  const vpn = a >> 12;
  if (vpn != curVpn) {
    curVpn = vpn;
    curFrame = umFrame(um, vpn);
  }
  return curFrame + <usize>(a & <u64>(PAGE_SIZE - 1));
}

/** ORs `v` into the 8 user bytes at `a` (any alignment, frames reserved). */
function orUserWord(um: usize, a: u64, v: u64): void {
  if ((a & <u64>(PAGE_SIZE - 1)) <= <u64>(PAGE_SIZE - 8)) {
    const p = userByte(um, a);
    store<u64>(p, load<u64>(p) | v);
    return;
  }
  for (let i: u64 = 0; i < 8; i++) {
    const b = <u8>(v >> (i << 3));
    if (b) {
      const p = userByte(um, a + i);
      store<u8>(p, load<u8>(p) | b);
    }
  }
}

/** Sets report bits [k0, k1] (inclusive) of the user bitmap at `user`. */
function setUserBits(um: usize, user: u64, k0: u64, k1: u64): void {
  for (let b = k0 >> 3; b <= k1 >> 3; b++) {
    const lo = b == k0 >> 3 ? <u32>(k0 & 7) : 0;
    const hi = b == k1 >> 3 ? <u32>(k1 & 7) : 7;
    const m = <u8>(((<u32>0xff << lo) & (<u32>0xff >> (7 - hi))) & 0xff);
    const p = userByte(um, user + b);
    store<u8>(p, load<u8>(p) | m);
  }
}

/** 64 source bits from bit `sb` (may be negative), bits outside [lo, end) as 0. */
@inline function bits64(w: usize, sb: i64, lo: u32, end: u32): u64 {
  let v: u64 = 0;
  const w0 = sb >> 6; // floor
  const s = <u64>(sb & 63);
  const nw = (<i64>end + 63) >> 6;
  if (w0 >= 0 && w0 < nw) v = load<u64>(w + (<usize>w0 << 3)) >> s;
  if (s && w0 + 1 >= 0 && w0 + 1 < nw) v |= load<u64>(w + (<usize>(w0 + 1) << 3)) << (64 - s);
  if (sb < <i64>lo) {
    const d = <i64>lo - sb;
    v = d >= 64 ? 0 : (v >> <u64>d) << <u64>d;
  }
  const top = <i64>end - sb; // bits at or above `top` are outside
  if (top < 64) v = top <= 0 ? 0 : v & ((<u64>1 << <u64>top) - 1);
  return v;
}

/**
 * Reports units [jlo, jhi] whose report bits are k = kLo + (j - jlo): the aligned case (P = U and
 * iova on the unit grid), a shifted OR of whole words. Clearing is the caller's.
 */
function reportAligned(um: usize, user: u64, w: usize, jlo: u32, jhi: u32, kLo: u64): void {
  const end = jhi + 1;
  const mFirst = kLo >> 6;
  const mLast = (kLo + <u64>(jhi - jlo)) >> 6;
  for (let m = mFirst; m <= mLast; m++) {
    const sb = <i64>(m << 6) - <i64>kLo + <i64>jlo;
    const v = bits64(w, sb, jlo, end);
    if (v) orUserWord(um, user + (m << 3), v);
  }
}

/**
 * The aligned case when source and report bits share their position in a word (k ≡ j mod 64):
 * word for word, a page of user words per frame lookup, source words cleared in the same pass
 * (`clearTo`: units below it are cleared, 0 when not clearing).
 */
function reportWords(um: usize, user: u64, w: usize, jlo: u32, jhi: u32, kLo: u64, clearTo: u32): void {
  const mFirst = kLo >> 6;
  const mLast = (kLo + <u64>(jhi - jlo)) >> 6;
  const swFirst = jlo >> 6;
  const headMask = <u64>-1 << <u64>(jlo & 63);
  const tailMask = (jhi & 63) == 63 ? <u64>-1 : (<u64>1 << <u64>((jhi & 63) + 1)) - 1;
  let m = mFirst;
  while (m <= mLast) {
    const a = user + (m << 3);
    const off = a & <u64>(PAGE_SIZE - 1);
    if (off > <u64>(PAGE_SIZE - 8)) {
      // A word straddling two frames (an unaligned bitmap): byte by byte.
      const sw = <u32>(m - mFirst) + swFirst;
      const v = load<u64>(w + (<usize>sw << 3)) & (m == mFirst ? headMask : <u64>-1) & (m == mLast ? tailMask : <u64>-1);
      if (v) {
        orUserWord(um, a, v);
        clearWord(w, sw, v, clearTo);
      }
      m++;
      continue;
    }
    const chunkEnd = m + min<u64>(mLast - m + 1, (<u64>PAGE_SIZE - off) >> 3);
    let p = userByte(um, a);
    let sw = <u32>(m - mFirst) + swFirst;
    while (m < chunkEnd) {
      if (m == mFirst || m == mLast) {
        // An edge word: masked, and the last one may be cleared only in part.
        const sp = w + (<usize>sw << 3);
        let v = load<u64>(sp);
        if (m == mFirst) v &= headMask;
        if (m == mLast) v &= tailMask;
        store<u64>(p, load<u64>(p) | v);
        clearWord(w, sw, v, clearTo);
        m++;
        sw++;
        p += 8;
        continue;
      }
      // Middle words: whole units inside the range. Branch-free and two words at a time: at 1 %
      // dirty half the words are zero at random, and a branch per word cost 4x a copy.
      let k = min<u64>(chunkEnd, mLast) - m;
      let sp = w + (<usize>sw << 3);
      const zero = i64x2.splat(0);
      for (; k >= 2; k -= 2, m += 2, sw += 2, sp += 16, p += 16) {
        v128.store(p, v128.or(v128.load(p), v128.load(sp)));
        if (clearTo) v128.store(sp, zero);
      }
      if (k) {
        store<u64>(p, load<u64>(p) | load<u64>(sp));
        if (clearTo) store<u64>(sp, 0);
        m++;
        sw++;
        p += 8;
      }
    }
  }
}

/** Clears, in source word sw, the bits of `v` that lie below unit `clearTo`. */
@inline function clearWord(w: usize, sw: u32, v: u64, clearTo: u32): void {
  const lo = sw << 6;
  if (lo >= clearTo) return;
  const c = clearTo - lo >= 64 ? v : v & ((<u64>1 << <u64>(clearTo - lo)) - 1);
  if (c) store<u64>(w + (<usize>sw << 3), load<u64>(w + (<usize>sw << 3)) & ~c);
}

/**
 * The report of one bitmap of units (see the header) into user memory at `user` (an address below
 * 2^47, exact in a double). `span` is the bytes the units cover (nbits · U, at most 2^64 - base,
 * passed as the last covered IOVA `ulast`). Returns the number of units cleared.
 */
export function unit_report(
  um: usize, user: f64, bm: usize, base: u64, ulast: u64, ushift: u32, iova: u64, last: u64, pshift: u32, clear: u32,
): i32 {
  const ua = <u64>user;
  curVpn = <u64>-1;
  const qlo = max<u64>(iova, base);
  const qhi = min<u64>(last, ulast);
  if (qlo > qhi) return 0;
  const jlo = <u32>((qlo - base) >> ushift);
  const jhi = <u32>((qhi - base) >> ushift);
  const nb = bitmap_nbits(bm);
  if (jhi >= nb) return 0; // defect guard: the host passes ulast inside the bitmap
  const w = bitmap_words(bm);
  const umask = (<u64>1 << ushift) - 1;
  if (pshift == ushift && ((iova ^ base) & umask) == 0) {
    const kLo = (qlo - iova) >> pshift;
    // Units from jlo start inside Q; the last one is inside when it ends by `last`.
    const n = jhi - jlo + (base + (<u64>jhi << ushift) + umask <= last ? 1 : 0);
    if ((kLo & 63) == <u64>(jlo & 63)) {
      reportWords(um, ua, w, jlo, jhi, kLo, clear ? jlo + n : 0);
      return clear ? <i32>n : 0;
    }
    reportAligned(um, ua, w, jlo, jhi, kLo);
    if (!clear) return 0;
    if (n) bitmap_clear_range(bm, jlo, n);
    return <i32>n;
  }
  let cleared: i32 = 0;
  for (let wi = jlo >> 6; wi <= jhi >> 6; wi++) {
    const p = w + (<usize>wi << 3);
    let v = load<u64>(p);
    if (wi == jlo >> 6) v &= <u64>-1 << <u64>(jlo & 63);
    if (wi == jhi >> 6 && (jhi & 63) != 63) v &= (<u64>1 << <u64>((jhi & 63) + 1)) - 1;
    let keep = load<u64>(p);
    while (v) {
      const b = ctz(v);
      v &= v - 1;
      const j = (wi << 6) + <u32>b;
      const ulo = base + (<u64>j << ushift);
      const uhi = ulo + umask;
      const lo = max<u64>(ulo, iova);
      const hi = min<u64>(uhi, last);
      setUserBits(um, ua, (lo - iova) >> pshift, (hi - iova) >> pshift);
      if (clear && ulo >= iova && uhi <= last) {
        keep &= ~(<u64>1 << b);
        cleared++;
      }
    }
    if (clear) store<u64>(p, keep);
  }
  return cleared;
}
