// The one gate of a dirty read's range (docs/conformance.md §7.4, §7.11). GET_BITMAP, the typed
// API's dirty.read and dirty.collect, readReport and windows all ask it, so a range gets one answer
// on every surface in every profile. It returns the errno with the rule that refused the range; the
// ioctl returns -errno, the typed API throws the errno's error with the rule as its reason.
import { BITMAP_MAX_BITS, EACCES, EINVAL } from '../../assembly/constants.js';
import { uapi } from '../uapi.js';
import { ctz64, U64_MAX, userRangeOk } from '../u64.js';
import type { Type1 } from './type1.js';

const { DIRTY_BITMAP_SIZE_MAX } = uapi;
const MAX_BITS = BigInt(BITMAP_MAX_BITS);
const TWO64 = U64_MAX + 1n;

/** A refused range: the positive errno and the kernel's rule that refused it, in words. */
export interface Refusal {
  readonly errno: number;
  readonly rule: string;
}

/** The user bitmap of a GET_BITMAP or of an unmap with GET_DIRTY_BITMAP (struct vfio_bitmap). */
export interface UserBitmap {
  /** Bytes per bit. */
  pgsize: bigint;
  /** Bytes of the buffer. */
  size: bigint;
  /** User address of the buffer. */
  data: bigint;
}

/** A dirty read as its surface asks for it. */
export interface DirtyRead {
  iova: bigint;
  size: bigint;
  /**
   * The caller's `struct vfio_bitmap` (the ioctl), or null when the engine allocates the bitmap
   * itself: one bit per tracking page, and then at most 2^31 pages as the kernel's bitmap allows.
   */
  bitmap: UserBitmap | null;
  /** A windowed read: it may cut mappings and its range is not bounded by one bitmap's size. */
  partial: boolean;
}

function refuse(errno: number, rule: string): Refusal {
  return { errno, rule };
}

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** A page size in words: '4 KiB', '2 MiB', or hex when it is not a whole number of KiB. */
export function sizeText(bytes: bigint): string {
  for (const [unit, shift] of [['GiB', 30n], ['MiB', 20n], ['KiB', 10n]] as const) {
    if (bytes >= 1n << shift && bytes % (1n << shift) === 0n) return `${bytes >> shift} ${unit}`;
  }
  return `${hex(bytes)} bytes`;
}

/**
 * verify_bitmap_size and the access check of `struct vfio_bitmap`, for a range of `size` bytes on
 * `t`: null, or the EINVAL rule the bitmap breaks.
 */
export function userBitmapRefusal(t: Type1, size: bigint, bm: UserBitmap): Refusal | null {
  if (!userRangeOk(bm.data, bm.size)) return refuse(EINVAL, 'bitmap.data + bitmap.size passes the top of user space');
  if (bm.pgsize === 0n) return refuse(EINVAL, 'bitmap.pgsize is 0');
  const npages = size >> (bm.pgsize === t.pgsize ? t.pgshiftBig : BigInt(ctz64(bm.pgsize)));
  if (npages === 0n) return refuse(EINVAL, `the range holds no page of bitmap.pgsize ${sizeText(bm.pgsize)}`);
  if (bm.size === 0n || bm.size > DIRTY_BITMAP_SIZE_MAX) return refuse(EINVAL, 'bitmap.size is 0 or over 256 MiB (2^31 pages)');
  const need = ((npages + 63n) >> 6n) << 3n; // whole u64 words
  if (bm.size < need) return refuse(EINVAL, `bitmap.size ${hex(bm.size)} is under the ${hex(need)} bytes of ${npages} pages`);
  return null;
}

/**
 * VFIO_IOMMU_DIRTY_PAGES needs a type1v2 container (docs/conformance.md §7.1): null, or EACCES on
 * type1.
 */
export function dirtyPagesRefusal(t: Type1): Refusal | null {
  return t.v2 ? null : refuse(EACCES, 'dirty tracking needs a type1v2 container');
}

/**
 * The gate of a dirty read of [iova, iova + size) on `t`, in the kernel's order
 * (docs/conformance.md §7.4): null when the range may be read, or the errno and rule that refuse
 * it. Nothing is changed.
 */
export function dirtyReadGate(t: Type1, r: DirtyRead): Refusal | null {
  const { iova, size } = r;
  const p = t.profile;
  if (!t.v2) return dirtyPagesRefusal(t);
  const end = iova + size; // exclusive; the kernel's u64 wraps where it passes 2^64 - 1
  if (p.topEndUsable) {
    if (size === 0n) return refuse(EINVAL, 'size is 0');
    if (end > TWO64) return refuse(p.overflow, 'iova + size - 1 passes 2^64 - 1');
  } else if (end >= TWO64) {
    return refuse(EINVAL, `iova + size reaches 2^64 (allowed from linux-6.18; this is ${p.name})`);
  }
  if (r.bitmap) {
    const bad = userBitmapRefusal(t, size, r.bitmap);
    if (bad) return bad;
  } else if (!r.partial && size >> t.pgshiftBig > MAX_BITS) {
    return refuse(EINVAL, 'more than 2^31 pages in one bitmap; read it in windows');
  }
  if (r.bitmap && r.bitmap.pgsize !== t.pgsize) {
    return refuse(EINVAL, `bitmap.pgsize ${sizeText(r.bitmap.pgsize)} is not the tracking page size ${sizeText(t.pgsize)}`);
  }
  const mask = t.pgmask;
  if ((iova & mask) !== 0n) return refuse(EINVAL, `iova not aligned to the ${sizeText(t.pgsize)} tracking page size`);
  if (size === 0n) return refuse(EINVAL, 'size is 0');
  if ((size & mask) !== 0n) return refuse(EINVAL, `size not a multiple of the ${sizeText(t.pgsize)} tracking page size`);
  if (!t.tracking) return refuse(EINVAL, 'dirty tracking is not started');
  if (!r.partial) {
    const d = t.cutBy(iova, end - 1n);
    if (d) return refuse(EINVAL, `the range cuts the mapping [${hex(d.iova)}, ${hex(d.iova + d.size)})`);
  }
  return null;
}
