// What goes over the link, byte for byte as QEMU's RAM stream puts it, and a VFIO device's
// migration data.
//
// RAM: every page carries an 8-byte header, the big-endian offset in its block with the
// RAM_SAVE_FLAG_* bits in the low bits (ram.c save_page_header; the block's name is sent only
// when the block changes, which this model leaves out). A normal page is its header and 4 KiB; a
// zero page (RAM_SAVE_FLAG_ZERO) is its header and one fill byte, 9 bytes. The zero pages are a
// workload property: a share of RAM that is zero when migration starts, which the bulk round
// finds; a page the guest later writes is sent as a normal page.
//
// A VFIO migration v2 device reports its pre-copy data (VFIO_MIG_GET_PRECOPY_INFO: initial_bytes,
// then dirty_bytes as it runs) and the size of its stop-copy data
// (VFIO_DEVICE_FEATURE_MIG_DATA_SIZE: stop_copy_length). QEMU's switch-over decision counts all
// of it as pending (vfio_state_pending_exact adds stop_copy_length and the pre-copy sizes to the
// RAM left): the guest stops when RAM left + device pending <= bandwidth x downtime limit.
import type { DeviceStateConfig } from './config.js';
import { GUEST_PAGE } from './guest_layout.js';

/** Bytes of a RAM page header on the wire (be64 offset | flags). */
export const PAGE_HEADER = 8;
/** Bytes of a zero page on the wire: its header and one fill byte. */
export const ZERO_PAGE_WIRE = PAGE_HEADER + 1;
/** Bytes of a normal page on the wire: its header and the page. */
export const NORMAL_PAGE_WIRE = PAGE_HEADER + GUEST_PAGE;

/** Bytes on the wire for `normalPages` normal pages and `zeroPages` zero pages. */
export function ramWireBytes(normalPages: number, zeroPages: number): number {
  return normalPages * NORMAL_PAGE_WIRE + zeroPages * ZERO_PAGE_WIRE;
}

/** Zero pages of a guest of `ramPages` pages with a share `zeroFraction` of zero RAM. */
export function zeroPagesOf(ramPages: number, zeroFraction: number): number {
  return Math.round(ramPages * zeroFraction);
}

/** A VFIO device's migration data over a run, as its driver reports it. */
export class DeviceState {
  private lastSyncS = 0;

  constructor(readonly c: DeviceStateConfig) {}

  /** Whether the device has migration state at all. */
  get present(): boolean {
    return this.c.precopyInitial > 0 || this.c.precopyDirtyRate > 0 || this.c.stopCopy > 0;
  }

  /**
   * The device's pre-copy dirty_bytes at a sync at `nowS`: what it dirtied since the previous
   * sync, all of which the previous round sent.
   */
  sync(nowS: number): number {
    const bytes = Math.floor(this.c.precopyDirtyRate * (nowS - this.lastSyncS) + 1e-9);
    this.lastSyncS = nowS;
    return bytes;
  }
}
