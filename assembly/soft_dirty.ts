// A process's soft-dirty record: one bit per 4 KiB user page written since the last clear
// (the PTE soft-dirty bit), sparse over the 2^35 pages below 2^47. Leaves are made on the first
// mark in their range and all dropped by a clear.
//
//   vpn (35 bits) ┌──── 9 ────┬──────── 11 ────────┬──────── 15 ────────┐
//                 │ vpn >> 26 │ (vpn >> 15) & 2047  │ vpn & 32767        │
//                 └───────────┴─────────────────────┴────────────────────┘
//   root: 512 u32 ─► L2: 2048 u32 ─► leaf: 32768 bits (4 KiB), a 128 MiB stretch of addresses
import { alloc, free } from './heap';
import { EFAULT, ENOMEM, PAGE_SHIFT } from './constants';

const ROOT_N: u32 = 512;
const L2_N: u32 = 2048;
const LEAF_BITS: u64 = 32768;
const LEAF_BYTES: usize = 4096;
const VPN_LIMIT: u64 = <u64>1 << 35;

@inline function slot(t: usize, i: u32): usize {
  return t + (<usize>i << 2);
}

/** The leaf holding page `vpn`, or 0. */
function leafOf(root: usize, vpn: u64): usize {
  const l2 = <usize>load<u32>(slot(root, <u32>(vpn >> 26)));
  return l2 ? <usize>load<u32>(slot(l2, <u32>(vpn >> 15) & 2047)) : 0;
}

/** Makes the leaves of pages [first, last] exist: 0, or -ENOMEM (leaves made so far stay, empty). */
function reserve(root: usize, first: u64, last: u64): i32 {
  let vpn = first & ~(LEAF_BITS - 1);
  while (vpn <= last) {
    const s1 = slot(root, <u32>(vpn >> 26));
    let l2 = <usize>load<u32>(s1);
    if (!l2) {
      l2 = alloc(<usize>L2_N << 2);
      if (!l2) return -ENOMEM;
      memory.fill(l2, 0, <usize>L2_N << 2);
      store<u32>(s1, <u32>l2);
    }
    const s2 = slot(l2, <u32>(vpn >> 15) & 2047);
    if (!load<u32>(s2)) {
      const leaf = alloc(LEAF_BYTES);
      if (!leaf) return -ENOMEM;
      memory.fill(leaf, 0, LEAF_BYTES);
      store<u32>(s2, <u32>leaf);
    }
    vpn += LEAF_BITS;
  }
  return 0;
}

/** Sets bits [from, from + n) of the byte bitmap at `bm` (bit i: byte i >> 3, bit i & 7). */
function fillBits(bm: usize, from: u64, n: u64): void {
  let i = from;
  const end = from + n;
  while (i < end && (i & 7) != 0) {
    store<u8>(bm + <usize>(i >> 3), load<u8>(bm + <usize>(i >> 3)) | <u8>(<u32>1 << <u32>(i & 7)));
    i++;
  }
  const whole = (end - i) >> 3;
  if (whole) memory.fill(bm + <usize>(i >> 3), 0xff, <usize>whole);
  i += whole << 3;
  while (i < end) {
    store<u8>(bm + <usize>(i >> 3), load<u8>(bm + <usize>(i >> 3)) | <u8>(<u32>1 << <u32>(i & 7)));
    i++;
  }
}

/** A new empty record: its handle or -ENOMEM. */
export function sd_create(): i32 {
  const root = alloc(<usize>ROOT_N << 2);
  if (!root) return -ENOMEM;
  memory.fill(root, 0, <usize>ROOT_N << 2);
  return <i32>root;
}

/** Drops every mark (the record stays usable). */
export function sd_clear(root: u32): void {
  for (let i: u32 = 0; i < ROOT_N; i++) {
    const l2 = <usize>load<u32>(slot(root, i));
    if (!l2) continue;
    for (let j: u32 = 0; j < L2_N; j++) {
      const leaf = <usize>load<u32>(slot(l2, j));
      if (leaf) free(leaf);
    }
    free(l2);
    store<u32>(slot(root, i), 0);
  }
}

/** Frees a record. */
export function sd_free(root: u32): void {
  sd_clear(root);
  free(root);
}

/**
 * Marks the pages of `n` stores of `bytes` bytes at the f64 host addresses at `addrs` (a batch of
 * vCPU stores): 0, or -ENOMEM / -EFAULT when a store could not be marked (the others are).
 */
export function sd_mark_many(root: u32, addrs: u32, n: u32, bytes: u32): i32 {
  let r: i32 = 0;
  const len = <f64>bytes;
  for (let i: u32 = 0; i < n; i++) {
    const addr = load<f64>(<usize>addrs + (<usize>i << 3));
    // A store within one page whose leaf exists (nearly all of a batch once the guest has run):
    // its bit, set in place. Anything else goes through sd_mark, checks and all.
    if (bytes && addr >= 0 && addr + len <= <f64>(VPN_LIMIT << PAGE_SHIFT)) {
      const vpn = <u64>addr >> PAGE_SHIFT;
      if (vpn == (<u64>(addr + len) - 1) >> PAGE_SHIFT) {
        const leaf = leafOf(root, vpn);
        if (leaf) {
          const at = leaf + <usize>((vpn & (LEAF_BITS - 1)) >> 3);
          store<u8>(at, load<u8>(at) | <u8>(<u32>1 << <u32>(vpn & 7)));
          continue;
        }
      }
    }
    const e = sd_mark(root, addr, len);
    if (e < 0) r = e;
  }
  return r;
}

/**
 * Marks every page touched by [addr, addr + len) (len > 0): 0, -EFAULT (past 2^47, or NaN), or
 * -ENOMEM with no page marked.
 */
export function sd_mark(root: u32, addr: f64, len: f64): i32 {
  // Written so that a NaN address or length fails too.
  if (!(len > 0) || !(addr >= 0) || !(addr + len <= <f64>(VPN_LIMIT << PAGE_SHIFT))) return -EFAULT;
  const first = <u64>addr >> PAGE_SHIFT;
  const last = (<u64>(addr + len) - 1) >> PAGE_SHIFT;
  if (reserve(root, first, last) < 0) return -ENOMEM;
  let vpn = first;
  while (vpn <= last) {
    const leaf = leafOf(root, vpn);
    const off = vpn & (LEAF_BITS - 1);
    const n = min<u64>(LEAF_BITS - off, last - vpn + 1);
    fillBits(leaf, off, n);
    vpn += n;
  }
  return 0;
}

/**
 * Writes the marks of pages [first, first + n) as bits 0..n-1 of the zeroed byte bitmap at `out`.
 */
export function sd_read(root: u32, first: f64, n: u32, out: u32): void {
  let vpn = <u64>first;
  const end = vpn + <u64>n;
  while (vpn < end && vpn < VPN_LIMIT) {
    const leaf = leafOf(root, vpn);
    const off = vpn & (LEAF_BITS - 1);
    const k = min<u64>(LEAF_BITS - off, end - vpn);
    if (leaf) {
      const base = vpn - <u64>first;
      for (let i: u64 = 0; i < k; i++) {
        if ((load<u8>(leaf + <usize>((off + i) >> 3)) >> <u8>((off + i) & 7)) & 1) {
          const b = base + i;
          const at = <usize>out + <usize>(b >> 3);
          store<u8>(at, load<u8>(at) | <u8>(<u32>1 << <u32>(b & 7)));
        }
      }
    }
    vpn += k;
  }
}

/** Sets bits [from, from + n) of the byte bitmap at `out` (whole mappings reading soft-dirty). */
export function sd_fill(out: u32, from: u32, n: u32): void {
  fillBits(out, from, n);
}
