// The request payloads of docs/PROTOCOL.md §4 and the decoding of their replies, written once for
// both Node clients: the asynchronous one (client.ts) and the blocking one (sync_client.ts).
// Each encoder returns the op and its payload; nothing here touches a socket.
import { ArgKind, MAGIC, Op, PROTOCOL_VERSION, Reader, Writer } from './protocol.js';

/** A reply: the i64 result and the bytes after it. */
export interface ClientReply {
  ret: bigint;
  data: Uint8Array;
}

/** An op and its payload, ready for a frame. */
export type Request = [op: number, payload: Uint8Array];

/** What HELLO declares about the connection's process. */
export interface HelloOptions {
  /** RLIMIT_MEMLOCK of the process in bytes; default unlimited. */
  memlockLimit?: bigint;
  /** CAP_IPC_LOCK; default false. */
  capIpcLock?: boolean;
  /** Bytes of shared file to ask for (SHM_* requests); default 0 (none). */
  shmBytes?: bigint | number;
}

/** An ioctl argument as `proc.ioctl` takes it: none, a value, a device name, or struct bytes. */
export type IoctlArg = number | bigint | string | Uint8Array | undefined;

const utf8 = new TextEncoder();
const EMPTY = new Uint8Array(0);

/** The request payloads, one encoder per operation. */
export const req = {
  hello(o: HelloOptions): Request {
    return [Op.HELLO, new Writer().u32(MAGIC).u32(PROTOCOL_VERSION).u32(PROTOCOL_VERSION)
      .u32(o.capIpcLock ? 1 : 0).u64(o.memlockLimit ?? (1n << 64n) - 1n).u64(BigInt(o.shmBytes ?? 0)).done()];
  },
  open: (path: string): Request => [Op.OPEN, utf8.encode(path)],
  close: (fd: number): Request => [Op.CLOSE, new Writer().u32(fd).done()],
  ioctl(fd: number, request: number, arg: IoctlArg): Request {
    const bytes = typeof arg === 'string' ? utf8.encode(arg) : arg instanceof Uint8Array ? arg : null;
    const p = new Uint8Array(16 + (bytes ? bytes.length : arg === undefined ? 0 : 8));
    const v = new DataView(p.buffer);
    v.setUint32(0, fd >>> 0, true);
    v.setUint32(4, request >>> 0, true);
    v.setUint32(8, arg === undefined ? ArgKind.NONE : bytes ? (arg instanceof Uint8Array ? ArgKind.BYTES : ArgKind.STRING) : ArgKind.VALUE, true);
    if (bytes) p.set(bytes, 16);
    else if (arg !== undefined) v.setBigUint64(16, BigInt.asUintN(64, BigInt(arg as number | bigint)), true);
    return [Op.IOCTL, p];
  },
  mmap: (length: bigint | number): Request => [Op.MMAP, new Writer().u64(BigInt(length)).done()],
  mmapFd: (fd: number, offset: bigint, length: bigint | number): Request =>
    [Op.MMAP_FD, new Writer().u32(fd).u32(0).u64(offset).u64(BigInt(length)).done()],
  munmap: (addr: bigint, length: bigint | number): Request => [Op.MUNMAP, new Writer().u64(addr).u64(BigInt(length)).done()],
  read: (addr: bigint, length: number): Request => [Op.READ_MEM, new Writer().u64(addr).u32(length).done()],
  write: (addr: bigint, bytes: Uint8Array): Request => [Op.WRITE_MEM, new Writer().u64(addr).bytes(bytes).done()],
  shmFromMem: (addr: bigint, offset: bigint, length: bigint): Request =>
    [Op.SHM_FROM_MEM, new Writer().u64(addr).u64(offset).u64(length).done()],
  shmToMem: (addr: bigint, offset: bigint, length: bigint): Request =>
    [Op.SHM_TO_MEM, new Writer().u64(addr).u64(offset).u64(length).done()],
  createGroup: (spec: string): Request => [Op.CREATE_GROUP, utf8.encode(spec)],
  removeGroup: (id: number): Request => [Op.REMOVE_GROUP, new Writer().u32(id).done()],
  registerDmaUnmap: (device: string): Request => [Op.DEV_REGISTER_DMA_UNMAP, new Writer().str(device).done()],
  pinPages: (device: string, iova: bigint, npage: number, prot: number, wantPfns: boolean): Request =>
    [Op.DEV_PIN_PAGES, new Writer().str(device).u64(iova).u32(npage).u32(prot).u32(wantPfns ? 1 : 0).done()],
  unpinPages: (device: string, iova: bigint, npage: number): Request =>
    [Op.DEV_UNPIN_PAGES, new Writer().str(device).u64(iova).u32(npage).done()],
  dmaRw(device: string, iova: bigint, data: Uint8Array, write: boolean): Request {
    const w = new Writer().str(device).u64(iova).u32(write ? 1 : 0).u32(data.length);
    if (write) w.bytes(data);
    return [Op.DEV_DMA_RW, w.done()];
  },
  vcpuWriteMany(vcpuFd: number, gpas: BigUint64Array, data: Uint8Array, bytesEach: number, asId = 0): Request {
    const w = new Writer().u32(vcpuFd).u32(asId).u32(gpas.length).u32(bytesEach);
    for (const g of gpas) w.u64(g);
    return [Op.VCPU_WRITE_MANY, w.bytes(data).done()];
  },
  deviceKvm(call: 'trackAdd' | 'trackRemove' | 'trackCount' | 'gfnToHva', device: string, gfn: bigint): Request {
    const op = { trackAdd: Op.DEV_KVM_TRACK_ADD, trackRemove: Op.DEV_KVM_TRACK_REMOVE,
      trackCount: Op.DEV_KVM_TRACK_COUNT, gfnToHva: Op.DEV_KVM_GFN_TO_HVA }[call];
    return [op, new Writer().str(device).u64(gfn).done()];
  },
  registerKvmNode: (device: string, events: number): Request => [Op.DEV_KVM_REGISTER_NODE, new Writer().str(device).u32(events).done()],
  unregisterKvmNode: (device: string): Request => [Op.DEV_KVM_UNREGISTER_NODE, new Writer().str(device).done()],
  registerKvmUnlink: (device: string, enable: boolean): Request =>
    [Op.DEV_REGISTER_KVM_UNLINK, new Writer().str(device).u32(enable ? 1 : 0).done()],
  devDmaWrite: (device: string, iova: bigint, data: Uint8Array): Request =>
    [Op.DEV_DMA_WRITE, new Writer().str(device).u64(iova).bytes(data).done()],
  createAccelerator: (spec: string): Request => [Op.CREATE_ACCELERATOR, utf8.encode(spec)],
  removeAccelerator: (path: string): Request => [Op.REMOVE_ACCELERATOR, new Writer().str(path).done()],
  sva(call: 'bind' | 'unbind' | 'getPasid', x: string | number): Request {
    if (call === 'bind') return [Op.SVA_BIND, new Writer().str(x as string).done()];
    return [call === 'unbind' ? Op.SVA_UNBIND : Op.SVA_GET_PASID, new Writer().u32(x as number).done()];
  },
  accelDmaWrite: (path: string, pasid: number, va: bigint, data: Uint8Array): Request =>
    [Op.ACCEL_DMA_WRITE, new Writer().str(path).u32(pasid).u32(0).u64(va).bytes(data).done()],
  eventDone: (value: bigint): Request => [Op.EVENT_DONE, new Writer().i64(value).done()],
  stats: (collect = false): Request => [Op.STATS, collect ? new Writer().u32(1).done() : EMPTY],
} as const;

/** The reply to `req`: what each call returns, from the reply's bytes. */
export const reply = {
  /** HELLO: the shared file's size and path. */
  hello(r: ClientReply): { shmSize: bigint; shmPath: string } {
    const rd = new Reader(r.data);
    const shmSize = rd.u64();
    return { shmSize, shmPath: rd.str() };
  },
  /** IOCTL: copies the struct the kernel left over the caller's; returns the result. */
  ioctl(r: ClientReply, arg: IoctlArg): number {
    if (arg instanceof Uint8Array && r.data.length === arg.length) arg.set(r.data);
    return Number(r.ret);
  },
  /** DEV_PIN_PAGES: copies the pfns when asked for; returns npage or -errno. */
  pinPages(r: ClientReply, pfns?: BigUint64Array): number {
    if (pfns && r.ret > 0n) {
      const v = new DataView(r.data.buffer, r.data.byteOffset, r.data.byteLength);
      for (let i = 0; i < Number(r.ret) && i < pfns.length; i++) pfns[i] = v.getBigUint64(i * 8, true);
    }
    return Number(r.ret);
  },
  /** DEV_DMA_RW: fills `data` on a read; returns 0 or -errno. */
  dmaRw(r: ClientReply, data: Uint8Array, write: boolean): number {
    if (!write && r.ret === 0n) data.set(r.data.subarray(0, data.length));
    return Number(r.ret);
  },
  /** CREATE_ACCELERATOR: the accelerator's path, or -errno. */
  createAccelerator: (r: ClientReply): string | number => (r.ret < 0n ? Number(r.ret) : new TextDecoder().decode(r.data)),
  /** READ_MEM: the bytes, or -errno. */
  read: (r: ClientReply): Uint8Array | number => (r.ret < 0n ? Number(r.ret) : r.data),
  /** STATS: the JSON object. */
  stats: (r: ClientReply): Record<string, unknown> => JSON.parse(new TextDecoder().decode(r.data)) as Record<string, unknown>,
} as const;
