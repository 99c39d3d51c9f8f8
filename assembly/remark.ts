// Setting lists of bits in a bitmap's words, and pinned pages marked dirty again right behind a
// read-and-clear (docs/conformance.md §7.6).
//
// After a read-and-clear the pinned pages must be dirty again. Marked in a second pass, each pin
// is a cache (and often TLB) miss: 65,536 pins uniform over a 32 MiB bitmap cost about 0.45x the
// time of copying it. Instead the pins' bits come as a list grouped into buckets of 2^shift bits
// (assembly/pin_table_scan.ts, pinsBucketed), and the stream of the read-and-clear
// (assembly/dirty_bitmap_kernels.ts) calls remarkBelow each time it has read and cleared every bit
// below some limit: the buckets lying wholly below it are set then, while their lines are still
// in the cache.
//
// A bucketed list (one allocation):
//   @0  nb u32      buckets: bucket b holds the bits [b << shift, (b + 1) << shift)
//   @4  shift u32
//   @8  c: nb + 2 u32, c[b] the index of bucket b's first bit, c[nb] the number of bits
//   @8 + 4(nb + 2)  the bits, u32, bucket by bucket (in no order within a bucket)

/** Sets bit b through its byte: no 64-bit shift, and a short dependency chain per bit. */
@inline function setBit8(w: usize, b: u32): void {
  const a = w + (b >>> 3);
  store<u8>(a, load<u8>(a) | <u8>(<u32>1 << (b & 7)));
}

/** Sets the bits of the n u32 bit indices at p in the words at w, byte-wide. */
export function setBits8(w: usize, p: usize, n: u32): void {
  const e = p + (<usize>n << 2);
  for (; p + 16 <= e; p += 16) {
    setBit8(w, load<u32>(p));
    setBit8(w, load<u32>(p, 4));
    setBit8(w, load<u32>(p, 8));
    setBit8(w, load<u32>(p, 12));
  }
  for (; p < e; p += 4) setBit8(w, load<u32>(p));
}

/** Bytes of a bucketed list of nb buckets and n bits. */
@inline export function bucketedBytes(nb: u32, n: u32): usize {
  return 8 + ((<usize>nb + 2 + <usize>n) << 2);
}
/** The bucket starts c of list l. */
@inline export function bucketStarts(l: usize): usize {
  return l + 8;
}
/** The bits of list l. */
@inline export function bucketBits(l: usize): usize {
  return l + 8 + ((<usize>load<u32>(l) + 2) << 2);
}

let rl: usize = 0; // the list being marked; 0: none
let rw: usize = 0; // the bitmap's words
let rnext: u32 = 0; // the first bucket not yet set

/** Starts marking the bucketed list `l` into the words at `w` as the stream clears them. */
export function remarkBegin(w: usize, l: usize): void {
  rl = l;
  rw = w;
  rnext = 0;
}

/** True while a list is being marked. */
@inline export function remarking(): bool {
  return rl != 0;
}

/**
 * Every bit below `limit` has been read and cleared, and no later clear of this call reaches
 * below it: sets the bits of the buckets lying wholly below `limit`, not set yet.
 */
export function remarkBelow(limit: u64): void {
  const nb = load<u32>(rl);
  const b = <u32>min<u64>(<u64>nb, limit >> load<u32>(rl, 4));
  if (b <= rnext) return;
  const c = bucketStarts(rl);
  const from = load<u32>(c + (<usize>rnext << 2));
  const to = load<u32>(c + (<usize>b << 2));
  setBits8(rw, bucketBits(rl) + (<usize>from << 2), to - from);
  rnext = b;
}

/** Sets the bits of every bucket not set yet and ends the marking. */
export function remarkEnd(): void {
  remarkBelow(<u64>-1);
  rl = 0;
}
