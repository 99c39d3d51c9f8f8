// The wire protocol of `vfio-dirty serve` (docs/PROTOCOL.md): frame layout, operation codes and
// the errno values the protocol itself uses. Shared by the server, its worker and the Node client.

/** Protocol versions this build speaks (HELLO picks the highest both sides accept). */
export const PROTOCOL_VERSION = 1;
/** The first four payload bytes of HELLO. */
export const MAGIC = 0x5944_4656; // 'VFDY' little-endian
/** Bytes of every frame header: size u32, op u16, flags u16, id u32, ctx u32. */
export const HEADER_SIZE = 16;
/** Default largest frame (header included) the server accepts: 16 MiB + header. */
export const DEFAULT_MAX_FRAME = (16 << 20) + HEADER_SIZE;
/** Set in the op of every reply frame: reply op = request op | REPLY_BIT. */
export const REPLY_BIT = 0x8000;
/** Op of an event frame (server to client) for a type1 dma_unmap callback. */
export const EVENT_DMA_UNMAP = 0x4001;
/** Event: a page-track node's trackWrite (an emulated guest store on a write-tracked page). */
export const EVENT_KVM_TRACK_WRITE = 0x4002;
/** Event: a page-track node's trackRemoveRegion (a memslot was deleted). */
export const EVENT_KVM_TRACK_REMOVE_REGION = 0x4003;
/** Event: the KVM-VFIO unlink notification of a device (its KVM association ended). */
export const EVENT_KVM_UNLINK = 0x4004;
/** Event: an IOASID notifier call (ALLOC, FREE, BIND, UNBIND of an ID of the VM set). */
export const EVENT_IOASID = 0x4005;

/** Request operation codes (client to server). */
export const Op = {
  HELLO: 1,
  OPEN: 2,
  CLOSE: 3,
  IOCTL: 4,
  MMAP: 5,
  MMAP_FD: 6,
  MUNMAP: 7,
  READ_MEM: 8,
  WRITE_MEM: 9,
  SHM_FROM_MEM: 10,
  SHM_TO_MEM: 11,
  CREATE_GROUP: 12,
  DEV_REGISTER_DMA_UNMAP: 13,
  DEV_PIN_PAGES: 14,
  DEV_UNPIN_PAGES: 15,
  DEV_DMA_RW: 16,
  EVENT_DONE: 17,
  STATS: 18,
  REMOVE_GROUP: 19,
  // KVM: guest accesses through a vCPU fd, and a device model's calls on its device's VM
  VCPU_WRITE: 20,
  VCPU_READ: 21,
  VCPU_WRITE_GUEST: 22,
  VCPU_WRITE_MANY: 23,
  DEV_KVM_TRACK_ADD: 24,
  DEV_KVM_TRACK_REMOVE: 25,
  DEV_KVM_TRACK_COUNT: 26,
  DEV_KVM_GFN_TO_HVA: 27,
  DEV_KVM_REGISTER_NODE: 28,
  DEV_KVM_UNREGISTER_NODE: 29,
  DEV_REGISTER_KVM_UNLINK: 30,
  // a passthrough device's own DMA (device dirty tracking)
  DEV_DMA_WRITE: 31,
  DEV_DMA_READ: 32,
  // accelerators, SVA and IOASID notifiers
  CREATE_ACCELERATOR: 33,
  REMOVE_ACCELERATOR: 34,
  SVA_BIND: 35,
  SVA_UNBIND: 36,
  SVA_GET_PASID: 37,
  ACCEL_DMA_WRITE: 38,
  ACCEL_DMA_READ: 39,
  IOASID_ADD_NOTIFIER: 40,
  IOASID_REMOVE_NOTIFIER: 41,
  IOASID_NOTIFY: 42,
  ACCEL_REGION_READ: 43,
  ACCEL_REGION_WRITE: 44,
} as const;

/** How IOCTL passes its argument: none, a value (u64), struct bytes, or a string (device name). */
export const ArgKind = { NONE: 0, VALUE: 1, BYTES: 2, STRING: 3 } as const;

/** Linux errno numbers the protocol layer answers with (the engine's own come from the model). */
export const PErr = {
  EPERM: 1, ENOENT: 2, EBADF: 9, ENOMEM: 12, EFAULT: 14, EBUSY: 16, EEXIST: 17, ENODEV: 19,
  EINVAL: 22, ESRCH: 3, EDEADLK: 35, E2BIG: 7, ENOSYS: 38, EPROTO: 71, EBADMSG: 74, EMSGSIZE: 90,
  EPROTONOSUPPORT: 93, ESHUTDOWN: 108, ETIMEDOUT: 110,
} as const;

/** A decoded frame header. */
export interface Header {
  size: number;
  op: number;
  flags: number;
  id: number;
  ctx: number;
}

/** Reads the header at `off` of `b` (at least HEADER_SIZE bytes there). */
export function readHeader(b: Uint8Array, off = 0): Header {
  const v = new DataView(b.buffer, b.byteOffset + off, HEADER_SIZE);
  return {
    size: v.getUint32(0, true), op: v.getUint16(4, true), flags: v.getUint16(6, true),
    id: v.getUint32(8, true), ctx: v.getUint32(12, true),
  };
}

/** A frame: header then `parts` concatenated. */
export function frame(op: number, id: number, ctx: number, ...parts: Uint8Array[]): Uint8Array {
  let n = HEADER_SIZE;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  const v = new DataView(out.buffer);
  v.setUint32(0, n, true);
  v.setUint16(4, op, true);
  v.setUint16(6, 0, true);
  v.setUint32(8, id >>> 0, true);
  v.setUint32(12, ctx >>> 0, true);
  let o = HEADER_SIZE;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A reply frame to request `op`/`id`: the i64 result, then the bytes the call wrote back. */
export function replyFrame(op: number, id: number, ret: number | bigint, data?: Uint8Array): Uint8Array {
  const n = HEADER_SIZE + 8 + (data ? data.length : 0);
  const out = new Uint8Array(n);
  writeReplyHead(new DataView(out.buffer), 0, n, op, id, ret);
  if (data) out.set(data, HEADER_SIZE + 8);
  return out;
}

/** Writes a reply's header and i64 result at `off` of `v`, for a frame of `size` bytes (the data, if any, follows). */
export function writeReplyHead(v: DataView, off: number, size: number, op: number, id: number, ret: number | bigint): void {
  v.setUint32(off, size, true);
  v.setUint16(off + 4, op | REPLY_BIT, true);
  v.setUint16(off + 6, 0, true);
  v.setUint32(off + 8, id >>> 0, true);
  v.setUint32(off + 12, 0, true);
  if (typeof ret === 'number' && ret >= -0x8000_0000 && ret <= 0x7fff_ffff) {
    v.setInt32(off + 16, ret, true);
    v.setInt32(off + 20, ret < 0 ? -1 : 0, true);
  } else {
    v.setBigInt64(off + 16, BigInt(ret), true);
  }
}

/** Little-endian field reader over a payload; `ok` turns false on a read past its end. */
export class Reader {
  private readonly v: DataView;
  readonly b: Uint8Array;
  off = 0;
  ok = true;

  constructor(b: Uint8Array) {
    this.b = b;
    this.v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  private take(n: number): number {
    const o = this.off;
    if (o + n > this.b.length) {
      this.ok = false;
      this.off = this.b.length;
      return -1;
    }
    this.off += n;
    return o;
  }

  u32(): number {
    const o = this.take(4);
    return o < 0 ? 0 : this.v.getUint32(o, true);
  }

  u64(): bigint {
    const o = this.take(8);
    return o < 0 ? 0n : this.v.getBigUint64(o, true);
  }

  i64(): bigint {
    const o = this.take(8);
    return o < 0 ? 0n : this.v.getBigInt64(o, true);
  }

  /** `n` bytes (a view, not a copy). */
  bytes(n: number): Uint8Array {
    const o = this.take(n);
    return o < 0 ? new Uint8Array(0) : this.b.subarray(o, o + n);
  }

  /** A u32 length then that many UTF-8 bytes. */
  str(): string {
    const n = this.u32();
    return new TextDecoder().decode(this.bytes(n));
  }

  /** Everything not read yet. */
  rest(): Uint8Array {
    const o = this.off;
    this.off = this.b.length;
    return this.b.subarray(o);
  }
}

/** Little-endian field writer that grows as needed. */
export class Writer {
  protected buf = new Uint8Array(64);
  protected v = new DataView(this.buf.buffer);
  len = 0;

  /** The offset of `n` more bytes, growing the buffer as needed (the caller writes every one). */
  protected room(n: number): number {
    if (this.len + n > this.buf.length) {
      const nb = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
      nb.set(this.buf.subarray(0, this.len));
      this.buf = nb;
      this.v = new DataView(nb.buffer);
    }
    const o = this.len;
    this.len += n;
    return o;
  }

  u32(x: number): this {
    const o = this.room(4); // before reading this.v: room() may replace the view
    this.v.setUint32(o, x >>> 0, true);
    return this;
  }

  u64(x: bigint): this {
    const o = this.room(8);
    this.v.setBigUint64(o, BigInt.asUintN(64, x), true);
    return this;
  }

  i64(x: bigint): this {
    const o = this.room(8);
    this.v.setBigInt64(o, BigInt.asIntN(64, x), true);
    return this;
  }

  bytes(b: Uint8Array): this {
    const o = this.room(b.length);
    this.buf.set(b, o);
    return this;
  }

  /** A u32 length then the UTF-8 bytes of `s`. */
  str(s: string): this {
    const b = new TextEncoder().encode(s);
    return this.u32(b.length).bytes(b);
  }

  done(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** Splits concatenated whole frames (each starting with its u32 size) into views. */
export function splitFrames(data: Uint8Array): Uint8Array[] {
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out: Uint8Array[] = [];
  for (let o = 0; o + HEADER_SIZE <= data.length;) {
    const n = v.getUint32(o, true);
    out.push(data.subarray(o, o + n));
    o += n;
  }
  return out;
}

/** Byte arrays copied into one fresh buffer (its own ArrayBuffer, so it can be transferred). */
export function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
