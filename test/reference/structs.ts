// Builders of the uAPI argument structs (docs/conformance.md §3.3) for the reference model's own
// tests and the differential harness: each returns a fresh Uint8Array in the LP64 little-endian
// layout.
import { wr32, wr64 } from './uapi.js';

/** vfio_iommu_type1_dma_map (32 bytes). */
export function mapArg(flags: number, vaddr: bigint, iova: bigint, size: bigint, argsz = 32, length = Math.max(argsz, 32)): Uint8Array {
  const b = new Uint8Array(length);
  put(b, 0, argsz, 4);
  put(b, 4, flags, 4);
  put(b, 8, vaddr, 8);
  put(b, 16, iova, 8);
  put(b, 24, size, 8);
  return b;
}

/** vfio_iommu_type1_dma_unmap (24 bytes), plus a vfio_bitmap at 24 when `bitmap` is given. */
export function unmapArg(
  flags: number, iova: bigint, size: bigint,
  bitmap?: { pgsize: bigint; size: bigint; data: bigint }, argsz?: number, length?: number,
): Uint8Array {
  const az = argsz ?? (bitmap ? 48 : 24);
  const b = new Uint8Array(length ?? Math.max(az, bitmap ? 48 : 24));
  put(b, 0, az, 4);
  put(b, 4, flags, 4);
  put(b, 8, iova, 8);
  put(b, 16, size, 8);
  if (bitmap) {
    put(b, 24, bitmap.pgsize, 8);
    put(b, 32, bitmap.size, 8);
    put(b, 40, bitmap.data, 8);
  }
  return b;
}

/** vfio_iommu_type1_dirty_bitmap (8 bytes), plus the 40-byte GET_BITMAP range when given. */
export function dirtyArg(
  flags: number, range?: { iova: bigint; size: bigint; pgsize: bigint; bsize: bigint; data: bigint },
  argsz?: number, length?: number,
): Uint8Array {
  const az = argsz ?? (range ? 48 : 8);
  const b = new Uint8Array(length ?? Math.max(az, range ? 48 : 8));
  put(b, 0, az, 4);
  put(b, 4, flags, 4);
  if (range) {
    put(b, 8, range.iova, 8);
    put(b, 16, range.size, 8);
    put(b, 24, range.pgsize, 8);
    put(b, 32, range.bsize, 8);
    put(b, 40, range.data, 8);
  }
  return b;
}

/** A GET_INFO or GET_STATUS buffer: argsz at 0, `length` bytes (default max(argsz, 8)). */
export function argszArg(argsz: number, length = Math.max(argsz, 8)): Uint8Array {
  const b = new Uint8Array(length);
  put(b, 0, argsz, 4);
  return b;
}

function put(b: Uint8Array, off: number, v: number | bigint, width: 4 | 8): void {
  if (off + width > b.length) return;
  if (width === 4) wr32(b, off, Number(v));
  else wr64(b, off, BigInt(v));
}
