// Builders and parsers for the VFIO uAPI structs of docs/conformance.md §3.3, in the LP64 little-endian layout
// the ioctl surface takes: a Uint8Array with `argsz` first. Builders size the buffer to
// max(argsz, struct size) unless `length` says otherwise (a shorter buffer tests EFAULT), and fill
// bytes past the struct with `fill` (default 0) so tests can see what the engine writes back.
import { uapi } from '../../src/uapi.js';

/** A little-endian view of `b`. */
export function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}
export const u16 = (b: Uint8Array, off: number): number => view(b).getUint16(off, true);
export const u32 = (b: Uint8Array, off: number): number => view(b).getUint32(off, true);
export const u64 = (b: Uint8Array, off: number): bigint => view(b).getBigUint64(off, true);
export const setU32 = (b: Uint8Array, off: number, v: number): void => view(b).setUint32(off, v >>> 0, true);
export const setU64 = (b: Uint8Array, off: number, v: bigint): void =>
  view(b).setBigUint64(off, BigInt.asUintN(64, v), true);

/** Bytes as the tests write bitmaps: lower-case hex pairs, byte 0 first, space separated. */
export function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
}

/** The bytes of a hex string such as `09 00 00 00`. */
export function bytes(s: string): Uint8Array {
  return Uint8Array.from(s.trim().split(/\s+/), (x) => parseInt(x, 16));
}

/** Options shared by builders: buffer length (default max(argsz, struct size)) and tail fill. */
export interface BufferOptions {
  /** Total buffer length in bytes; shorter than the struct to provoke EFAULT. */
  length?: number;
  /** Byte value for every byte the builder does not set (default 0). */
  fill?: number;
}

function buffer(argsz: number, structSize: number, o: BufferOptions): Uint8Array {
  const b = new Uint8Array(o.length ?? Math.max(argsz, structSize));
  b.fill(o.fill ?? 0);
  return b;
}

// The setters below skip fields that do not fit a short buffer (EFAULT tests).
function put32(b: Uint8Array, off: number, v: number): void {
  if (off + 4 <= b.length) setU32(b, off, v);
}
function put64(b: Uint8Array, off: number, v: bigint): void {
  if (off + 8 <= b.length) setU64(b, off, v);
}

// ---- vfio_iommu_type1_dma_map ------------------------------------------------------------------

export interface DmaMapArgs extends BufferOptions {
  argsz?: number; // default 32
  flags: number;
  vaddr: bigint;
  iova: bigint;
  size: bigint;
}

/** A `vfio_iommu_type1_dma_map`: argsz @0, flags @4, vaddr @8, iova @16, size @24. */
export function dmaMap(a: DmaMapArgs): Uint8Array {
  const argsz = a.argsz ?? uapi.DMA_MAP_SIZE;
  const b = buffer(argsz, uapi.DMA_MAP_SIZE, a);
  put32(b, 0, argsz);
  put32(b, 4, a.flags);
  put64(b, 8, a.vaddr);
  put64(b, 16, a.iova);
  put64(b, 24, a.size);
  return b;
}

// ---- vfio_bitmap, vfio_iommu_type1_dma_unmap ---------------------------------------------------

/** A `vfio_bitmap`: pgsize u64, size (bytes) u64, data (user pointer) u64. */
export interface BitmapArgs {
  pgsize: bigint;
  size: bigint;
  data: bigint;
}

export interface DmaUnmapArgs extends BufferOptions {
  argsz?: number; // default 24, or 48 with `bitmap`
  flags: number;
  iova: bigint;
  size: bigint;
  bitmap?: BitmapArgs;
}

/** A `vfio_iommu_type1_dma_unmap`: argsz @0, flags @4, iova @8, size @16, vfio_bitmap @24. */
export function dmaUnmap(a: DmaUnmapArgs): Uint8Array {
  const structSize = a.bitmap ? uapi.DMA_UNMAP_BITMAP_SIZE : uapi.DMA_UNMAP_SIZE;
  const argsz = a.argsz ?? structSize;
  const b = buffer(argsz, structSize, a);
  put32(b, 0, argsz);
  put32(b, 4, a.flags);
  put64(b, 8, a.iova);
  put64(b, 16, a.size);
  if (a.bitmap) {
    put64(b, 24, a.bitmap.pgsize);
    put64(b, 32, a.bitmap.size);
    put64(b, 40, a.bitmap.data);
  }
  return b;
}

export interface DmaUnmapFields {
  argsz: number;
  flags: number;
  iova: bigint;
  size: bigint;
  bitmap?: BitmapArgs;
}

/** The fields of a `vfio_iommu_type1_dma_unmap` buffer (bitmap when the buffer holds one). */
export function parseDmaUnmap(b: Uint8Array): DmaUnmapFields {
  const r: DmaUnmapFields = { argsz: u32(b, 0), flags: u32(b, 4), iova: u64(b, 8), size: u64(b, 16) };
  if (b.length >= 48) r.bitmap = { pgsize: u64(b, 24), size: u64(b, 32), data: u64(b, 40) };
  return r;
}

// ---- vfio_iommu_type1_dirty_bitmap (+ _get) ----------------------------------------------------

export interface DirtyBitmapArgs extends BufferOptions {
  argsz?: number; // default 8
  flags: number;
}

/** A bare `vfio_iommu_type1_dirty_bitmap` (START / STOP): argsz @0, flags @4. */
export function dirtyBitmap(a: DirtyBitmapArgs): Uint8Array {
  const argsz = a.argsz ?? uapi.DIRTY_BITMAP_SIZE;
  const b = buffer(argsz, uapi.DIRTY_BITMAP_SIZE, a);
  put32(b, 0, argsz);
  put32(b, 4, a.flags);
  return b;
}

export interface DirtyBitmapGetArgs extends BufferOptions {
  argsz?: number; // default 48
  flags?: number; // default GET_BITMAP
  iova: bigint;
  size: bigint;
  bitmap: BitmapArgs;
}

/**
 * A `vfio_iommu_type1_dirty_bitmap` carrying a `vfio_iommu_type1_dirty_bitmap_get`: argsz @0,
 * flags @4, iova @8, size @16, bitmap.pgsize @24, bitmap.size @32, bitmap.data @40.
 */
export function dirtyBitmapGet(a: DirtyBitmapGetArgs): Uint8Array {
  const argsz = a.argsz ?? uapi.DIRTY_BITMAP_GET_SIZE;
  const b = buffer(argsz, uapi.DIRTY_BITMAP_GET_SIZE, a);
  put32(b, 0, argsz);
  put32(b, 4, a.flags ?? uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP);
  put64(b, 8, a.iova);
  put64(b, 16, a.size);
  put64(b, 24, a.bitmap.pgsize);
  put64(b, 32, a.bitmap.size);
  put64(b, 40, a.bitmap.data);
  return b;
}

// ---- vfio_iommu_type1_info and its capability chain --------------------------------------------

/** A GET_INFO buffer: `argsz` at @0, everything else `fill` (default 0). */
export function iommuInfo(argsz: number, o: BufferOptions = {}): Uint8Array {
  const b = buffer(argsz, uapi.IOMMU_INFO_MINSZ, o);
  put32(b, 0, argsz);
  return b;
}

export interface CapHeader {
  offset: number; // where the capability starts, from the start of the INFO buffer
  id: number;
  version: number;
  next: number;
}
export interface MigrationCap extends CapHeader {
  flags: number; // @8
  pad: number; // @12, must be 0
  pgsizeBitmap: bigint; // @16
  maxDirtyBitmapSize: bigint; // @24
}
export interface DmaAvailCap extends CapHeader {
  avail: number; // @8
}
export interface IovaRangeCap extends CapHeader {
  nrIovas: number; // @8
  reserved: number; // @12
  ranges: [bigint, bigint][]; // @16, inclusive
}
export interface InfoFields {
  argsz: number;
  flags: number;
  iovaPgsizes: bigint;
  capOffset: number;
  pad: number;
  /** Every capability header in chain order. */
  chain: CapHeader[];
  migration?: MigrationCap;
  dmaAvail?: DmaAvailCap;
  iovaRange?: IovaRangeCap;
}

/**
 * Parses a GET_INFO reply and, when `walk` (default true), walks the capability chain from
 * `cap_offset` (each `next` is an absolute offset; 0 ends it). Fields past the end of a short
 * buffer read as 0. Throws on a chain that loops or leaves the buffer.
 */
export function parseInfo(b: Uint8Array, walk = true): InfoFields {
  const r: InfoFields = {
    argsz: b.length >= 4 ? u32(b, 0) : 0,
    flags: b.length >= 8 ? u32(b, 4) : 0,
    iovaPgsizes: b.length >= 16 ? u64(b, 8) : 0n,
    capOffset: b.length >= 20 ? u32(b, 16) : 0,
    pad: b.length >= 24 ? u32(b, 20) : 0,
    chain: [],
  };
  if (!walk) return r;
  const seen = new Set<number>();
  for (let off = r.capOffset; off !== 0; ) {
    if (seen.has(off) || off + uapi.INFO_CAP_HEADER_SIZE > b.length) {
      throw new Error(`capability chain broken at offset ${off}`);
    }
    seen.add(off);
    const h: CapHeader = { offset: off, id: u16(b, off), version: u16(b, off + 2), next: u32(b, off + 4) };
    r.chain.push(h);
    if (h.id === uapi.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION) {
      r.migration = { ...h, flags: u32(b, off + 8), pad: u32(b, off + 12), pgsizeBitmap: u64(b, off + 16), maxDirtyBitmapSize: u64(b, off + 24) };
    } else if (h.id === uapi.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
      r.dmaAvail = { ...h, avail: u32(b, off + 8) };
    } else if (h.id === uapi.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
      const n = u32(b, off + 8);
      const ranges: [bigint, bigint][] = [];
      for (let i = 0; i < n; i++) ranges.push([u64(b, off + 16 + 16 * i), u64(b, off + 24 + 16 * i)]);
      r.iovaRange = { ...h, nrIovas: n, reserved: u32(b, off + 12), ranges };
    }
    off = h.next;
  }
  return r;
}

// ---- vfio_group_status -------------------------------------------------------------------------

/** A `vfio_group_status` buffer: argsz @0 (default 8), flags @4 (out). */
export function groupStatus(argsz: number = uapi.GROUP_STATUS_SIZE, o: BufferOptions = {}): Uint8Array {
  const b = buffer(argsz, uapi.GROUP_STATUS_SIZE, o);
  put32(b, 0, argsz);
  return b;
}

/** The flags of a GROUP_GET_STATUS reply. */
export function parseGroupStatus(b: Uint8Array): { argsz: number; flags: number } {
  return { argsz: u32(b, 0), flags: u32(b, 4) };
}
