// The Node client of `vfio-dirty serve` (docs/PROTOCOL.md): a connection is a process of the
// engine; every call is a request frame, pipelined (many may be in flight), answered in order.
// Driver callbacks arrive as events; a handler's calls run inside the callback (their frames carry
// the event's id) and its return sends EVENT_DONE.
import { createConnection, type Socket } from 'node:net';
import {
  EVENT_DMA_UNMAP, EVENT_IOASID, EVENT_KVM_TRACK_REMOVE_REGION, EVENT_KVM_TRACK_WRITE, EVENT_KVM_UNLINK,
  HEADER_SIZE, Op, REPLY_BIT, Reader, Writer, concat, frame,
} from './protocol.js';
import { reply, req, type ClientReply, type HelloOptions, type IoctlArg, type Request } from './requests.js';

export type { ClientReply } from './requests.js';

/** A dma_unmap callback: runs with a client whose calls happen inside the callback. */
export type DmaUnmapHandler = (inside: Client, iova: bigint, size: bigint) => void | Promise<void>;

/** What HELLO declares: RLIMIT_MEMLOCK, CAP_IPC_LOCK, the shared file's size. */
export type ConnectOptions = HelloOptions;

const EMPTY = new Uint8Array(0);

/** State shared by a client and its callback views. */
class Link {
  nextId = 1;
  readonly waiting = new Map<number, (r: ClientReply) => void>();
  readonly handlers = new Map<string, DmaUnmapHandler>();
  buf: Uint8Array = new Uint8Array(0);
  closed = false;
  /** Frames of this tick, written together at its end. */
  pending: Uint8Array[] = [];
  constructor(readonly socket: Socket) {}

  /** Writes the frames of this tick, as one buffer. */
  flush(): void {
    if (this.pending.length === 0) return;
    const out = this.pending.length === 1 ? this.pending[0] : concat(this.pending);
    this.pending = [];
    if (!this.closed) this.socket.write(out);
  }
}

export class Client {
  /** The shared file's path and size (after a HELLO that asked for one). */
  shmPath = '';
  shmSize = 0n;
  /** The event id whose callback this view runs in; 0 for the client itself. */
  private ctx = 0;
  private readonly link: Link;

  private constructor(link: Link) {
    this.link = link;
  }

  /** Connects to a server at `path` and performs the HELLO handshake. */
  static async connect(path: string, o: ConnectOptions = {}): Promise<Client> {
    const socket = createConnection(path);
    await new Promise<void>((res, rej) => {
      socket.once('connect', res);
      socket.once('error', rej);
    });
    const c = new Client(new Link(socket));
    socket.on('data', (d: Buffer) => c.onData(d));
    socket.on('close', () => c.onClose());
    socket.on('error', () => {});
    const r = await c.send(req.hello(o));
    if (r.ret < 0n) {
      socket.destroy();
      throw new Error(`HELLO refused: errno ${-r.ret}`);
    }
    ({ shmSize: c.shmSize, shmPath: c.shmPath } = reply.hello(r));
    return c;
  }

  private onData(d: Buffer): void {
    const L = this.link;
    const buf = L.buf.length ? Buffer.concat([L.buf, d]) : d;
    const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    let o = 0;
    while (buf.length - o >= HEADER_SIZE) {
      const size = v.getUint32(o, true);
      if (buf.length - o < size) break;
      const op = v.getUint16(o + 4, true);
      const id = v.getUint32(o + 8, true);
      if (op & REPLY_BIT) {
        const res = L.waiting.get(id);
        L.waiting.delete(id);
        const data = size > HEADER_SIZE + 8 ? new Uint8Array(buf.subarray(o + HEADER_SIZE + 8, o + size)) : EMPTY;
        res?.({ ret: v.getBigInt64(o + HEADER_SIZE, true), data });
      } else if (op === EVENT_DMA_UNMAP) {
        void this.onDmaUnmap(id, new Uint8Array(buf.subarray(o + HEADER_SIZE, o + size)));
      } else if (op & 0x4000) {
        void this.onSubsystemEvent(op, id, new Uint8Array(buf.subarray(o + HEADER_SIZE, o + size)));
      }
      o += Math.max(size, HEADER_SIZE);
    }
    L.buf = o < buf.length ? new Uint8Array(buf.subarray(o)) : new Uint8Array(0);
  }

  private async onDmaUnmap(ev: number, body: Uint8Array): Promise<void> {
    const r = new Reader(body);
    const iova = r.u64();
    const size = r.u64();
    const name = r.str();
    const inside = this.within(ev);
    try {
      await this.link.handlers.get(name)?.(inside, iova, size);
    } finally {
      if (!this.link.closed) await inside.send(req.eventDone(0n));
    }
  }

  private onClose(): void {
    this.link.closed = true;
    for (const res of this.link.waiting.values()) res({ ret: -104n, data: new Uint8Array(0) }); // ECONNRESET
    this.link.waiting.clear();
  }

  /** A view of this client whose requests run inside the callback of event `ctx`. */
  private within(ctx: number): Client {
    const c = new Client(this.link);
    c.ctx = ctx;
    c.shmPath = this.shmPath;
    c.shmSize = this.shmSize;
    return c;
  }

  /** Sends one request frame; resolves with its reply. */
  request(op: number, payload: Uint8Array, ctx = this.ctx): Promise<ClientReply> {
    const L = this.link;
    if (L.closed) return Promise.resolve({ ret: -104n, data: new Uint8Array(0) });
    const id = L.nextId;
    L.nextId = (L.nextId + 1) >>> 0 || 1;
    const p = new Promise<ClientReply>((res) => L.waiting.set(id, res));
    // requests issued in one tick go out in one write of one buffer
    L.pending.push(frame(op, id, ctx, payload));
    if (L.pending.length === 1) process.nextTick(() => L.flush());
    return p;
  }

  private async num(op: number, payload: Uint8Array): Promise<number> {
    return Number((await this.request(op, payload)).ret);
  }

  private send([op, payload]: Request): Promise<ClientReply> {
    return this.request(op, payload);
  }

  /** open(2) of a device path: a new fd, or -errno. */
  open(path: string): Promise<number> {
    return this.num(...req.open(path));
  }

  /** close(2): 0 or -errno. */
  close(fd: number): Promise<number> {
    return this.num(...req.close(fd));
  }

  /**
   * ioctl(2) as `proc.ioctl` takes it: a number/bigint value, a device name, or the struct's bytes
   * (updated in place with what the kernel writes back). Resolves with the result or -errno.
   */
  async ioctl(fd: number, request: number, arg?: IoctlArg): Promise<number> {
    return reply.ioctl(await this.send(req.ioctl(fd, request, arg)), arg);
  }

  /** mmap of anonymous memory in the process: the address, or -errno as a bigint. */
  async mmap(length: bigint | number): Promise<bigint> {
    return (await this.send(req.mmap(length))).ret;
  }

  /** `proc.mmapFd`: the address, or -errno as a bigint. */
  async mmapFd(fd: number, offset: bigint, length: bigint | number): Promise<bigint> {
    return (await this.send(req.mmapFd(fd, offset, length))).ret;
  }

  /** `proc.munmap`: 0 or -errno. */
  munmap(addr: bigint, length: bigint | number): Promise<number> {
    return this.num(...req.munmap(addr, length));
  }

  /** Bytes of the process's memory, or -errno (-EFAULT: not mapped). */
  async read(addr: bigint, length: number): Promise<Uint8Array | number> {
    return reply.read(await this.send(req.read(addr, length)));
  }

  /** Stores bytes in the process's memory: 0 or -errno. */
  write(addr: bigint, bytes: Uint8Array): Promise<number> {
    return this.num(...req.write(addr, bytes));
  }

  /** Copies process memory [addr, addr+length) to the shared file at `offset`: 0 or -errno. */
  shmFromMem(addr: bigint, offset: bigint, length: bigint): Promise<number> {
    return this.num(...req.shmFromMem(addr, offset, length));
  }

  /** Copies the shared file at `offset` into process memory at `addr`: 0 or -errno. */
  shmToMem(addr: bigint, offset: bigint, length: bigint): Promise<number> {
    return this.num(...req.shmToMem(addr, offset, length));
  }

  /** Creates a host IOMMU group from a spec (`kind=iommu,devices=a+b`): its number, or -errno. */
  createGroup(spec: string): Promise<number> {
    return this.num(...req.createGroup(spec));
  }

  /** Removes a host group (as unbinding its devices): 0, -EBUSY while it is open, -ENOENT. */
  removeGroup(id: number): Promise<number> {
    return this.num(...req.removeGroup(id));
  }

  /** Registers `handler` as the device's dma_unmap op: 0 or -errno. */
  registerDmaUnmap(device: string, handler: DmaUnmapHandler): Promise<number> {
    this.link.handlers.set(device, handler);
    return this.num(...req.registerDmaUnmap(device));
  }

  /** vfio_pin_pages on `device`: npage or -errno, with the pfns when asked for. */
  async pinPages(device: string, iova: bigint, npage: number, prot: number, pfns?: BigUint64Array): Promise<number> {
    return reply.pinPages(await this.send(req.pinPages(device, iova, npage, prot, pfns !== undefined)), pfns);
  }

  /** vfio_unpin_pages on `device`. */
  async unpinPages(device: string, iova: bigint, npage: number): Promise<number> {
    return this.num(...req.unpinPages(device, iova, npage));
  }

  /** vfio_dma_rw on `device`: 0 or -errno; a read fills `data`. */
  async dmaRw(device: string, iova: bigint, data: Uint8Array, write: boolean): Promise<number> {
    return reply.dmaRw(await this.send(req.dmaRw(device, iova, data, write)), data, write);
  }

  /** The server's counters (sessions, processes, heap bytes, groups, its footprint); `collect`: after a full GC. */
  async stats(collect = false): Promise<Record<string, unknown>> {
    return reply.stats(await this.send(req.stats(collect)));
  }

  /** Ends the connection: the process exits on the server. */
  end(): Promise<void> {
    return new Promise((res) => {
      if (this.link.closed) return res();
      this.link.socket.once('close', () => res());
      this.link.flush(); // requests made in this tick go out first
      this.link.socket.end();
    });
  }

  /** Drops the connection at once, as a killed client would. */
  destroy(): void {
    this.link.socket.destroy();
  }
  // ---- KVM, device DMA, accelerators and IOASID notifiers (docs/PROTOCOL.md §4, ops 20-44) -----

  /** Runs the handler of an event of ops 0x4002.. inside its callback, then EVENT_DONE with its value. */
  private async onSubsystemEvent(op: number, ev: number, body: Uint8Array): Promise<void> {
    const h = subsystemHandlers(this.link);
    const r = new Reader(body);
    const inside = this.within(ev);
    let value = 0n;
    try {
      if (op === EVENT_KVM_TRACK_WRITE) {
        const gpa = r.u64();
        const n = r.u32();
        const name = r.str();
        await h.trackWrite.get(name)?.(inside, gpa, r.bytes(n).slice());
      } else if (op === EVENT_KVM_TRACK_REMOVE_REGION) {
        const gfn = r.u64();
        const nr = r.u32();
        await h.removeRegion.get(r.str())?.(inside, gfn, nr);
      } else if (op === EVENT_KVM_UNLINK) {
        await h.unlink.get(r.str())?.(inside);
      } else if (op === EVENT_IOASID && h.ioasid) {
        value = BigInt((await h.ioasid(inside, r.u32(), r.u32(), r.u32())) ?? 0);
      }
    } finally {
      // unknown events are answered 0, as the protocol asks
      if (!this.link.closed) await inside.send(req.eventDone(value));
    }
  }

  /** A guest store through vCPU fd `vcpuFd`: the bytes stored, or -errno. */
  vcpuWrite(vcpuFd: number, gpa: bigint, data: Uint8Array, asId = 0): Promise<number> {
    return this.num(Op.VCPU_WRITE, new Writer().u32(vcpuFd).u32(asId).u64(gpa).bytes(data).done());
  }

  /** KVM's own write into guest memory (recorded, never notified): 0 or -errno. */
  vcpuWriteGuest(vcpuFd: number, gpa: bigint, data: Uint8Array, asId = 0): Promise<number> {
    return this.num(Op.VCPU_WRITE_GUEST, new Writer().u32(vcpuFd).u32(asId).u64(gpa).bytes(data).done());
  }

  /** A guest read: the bytes, or -errno. */
  async vcpuRead(vcpuFd: number, gpa: bigint, length: number, asId = 0): Promise<Uint8Array | number> {
    const r = await this.request(Op.VCPU_READ, new Writer().u32(vcpuFd).u32(asId).u64(gpa).u32(length).done());
    return r.ret < 0n ? Number(r.ret) : r.data;
  }

  /** Store i writes data[i·bytesEach ..] at gpas[i]: the stores made, or -errno. */
  vcpuWriteMany(vcpuFd: number, gpas: BigUint64Array, data: Uint8Array, bytesEach: number, asId = 0): Promise<number> {
    return this.num(...req.vcpuWriteMany(vcpuFd, gpas, data, bytesEach, asId));
  }

  /** A device model's call on its device's VM: track add / remove / count, or gfn to hva. */
  async deviceKvm(call: 'trackAdd' | 'trackRemove' | 'trackCount' | 'gfnToHva', device: string, gfn: bigint): Promise<bigint> {
    return (await this.request(...req.deviceKvm(call, device, gfn))).ret;
  }

  /** A page-track node on the device's VM; its callbacks run with a client inside them. */
  async registerKvmNode(device: string, node: KvmNodeHandlers): Promise<number> {
    const events = (node.trackWrite ? 1 : 0) | (node.trackRemoveRegion ? 2 : 0);
    const r = await this.num(...req.registerKvmNode(device, events));
    if (r === 0) {
      // registering sends no event, so the handlers can be set once the node is in
      const h = subsystemHandlers(this.link);
      if (node.trackWrite) h.trackWrite.set(device, node.trackWrite);
      if (node.trackRemoveRegion) h.removeRegion.set(device, node.trackRemoveRegion);
    }
    return r;
  }

  /** Unregisters this connection's node of the device: 0. */
  unregisterKvmNode(device: string): Promise<number> {
    return this.num(...req.unregisterKvmNode(device));
  }

  /** The device's KVM unlink callback, or null to remove it. */
  registerKvmUnlink(device: string, cb: ((inside: Client) => void | Promise<void>) | null): Promise<number> {
    const h = subsystemHandlers(this.link);
    if (cb) h.unlink.set(device, cb);
    else h.unlink.delete(device);
    return this.num(...req.registerKvmUnlink(device, cb !== null));
  }

  /** A passthrough device's own DMA write: 0 or -errno. */
  devDmaWrite(device: string, iova: bigint, data: Uint8Array): Promise<number> {
    return this.num(...req.devDmaWrite(device, iova, data));
  }

  /** A passthrough device's own DMA read: the bytes, or -errno. */
  async devDmaRead(device: string, iova: bigint, length: number): Promise<Uint8Array | number> {
    const r = await this.request(Op.DEV_DMA_READ, new Writer().str(device).u64(iova).u32(length).done());
    return r.ret < 0n ? Number(r.ret) : r.data;
  }

  /** A new accelerator from a spec ('name=zip,queues=4'): its path, or -errno. */
  async createAccelerator(spec = ''): Promise<string | number> {
    return reply.createAccelerator(await this.request(...req.createAccelerator(spec)));
  }

  /** An SVA call: bind (path: a handle), unbind or getPasid (handle). */
  sva(call: 'bind', path: string): Promise<number>;
  sva(call: 'unbind' | 'getPasid', handle: number): Promise<number>;
  sva(call: 'bind' | 'unbind' | 'getPasid', x: string | number): Promise<number> {
    return this.num(...req.sva(call, x));
  }

  /** The accelerator's DMA tagged with this process's PASID: write 0 or -errno. */
  accelDmaWrite(path: string, pasid: number, va: bigint, data: Uint8Array): Promise<number> {
    return this.num(...req.accelDmaWrite(path, pasid, va, data));
  }

  /** The accelerator's DMA read: the bytes, or -errno. */
  async accelDmaRead(path: string, pasid: number, va: bigint, length: number): Promise<Uint8Array | number> {
    const r = await this.request(Op.ACCEL_DMA_READ, new Writer().str(path).u32(pasid).u32(length).u64(va).done());
    return r.ret < 0n ? Number(r.ret) : r.data;
  }

  /** The device's view of a queue region of this process (0 MMIO, 1 DUS): the bytes, or -errno. */
  async accelRegionRead(path: string, qid: number, region: number, offset: number, length: number): Promise<Uint8Array | number> {
    const r = await this.request(Op.ACCEL_REGION_READ, new Writer().str(path).u32(qid).u32(region).u32(offset).u32(length).done());
    return r.ret < 0n ? Number(r.ret) : r.data;
  }

  /** The device writes a queue region of this process: 0 or -errno. */
  accelRegionWrite(path: string, qid: number, region: number, offset: number, data: Uint8Array): Promise<number> {
    return this.num(Op.ACCEL_REGION_WRITE, new Writer().str(path).u32(qid).u32(region).u32(offset).bytes(data).done());
  }

  /** The IOASID notifier of this process's VM set (null removes it); its result answers the event. */
  async ioasidNotifier(fn: IoasidHandler | null, priority = 0): Promise<number> {
    if (!fn) return this.num(Op.IOASID_REMOVE_NOTIFIER, EMPTY);
    const r = await this.num(Op.IOASID_ADD_NOTIFIER, new Writer().u32(priority).done());
    if (r === 0) subsystemHandlers(this.link).ioasid = fn;
    return r;
  }

  /** IOASID_BIND (3) or IOASID_UNBIND (4) of an ID of this process's VM set. */
  ioasidNotify(id: number, cmd: number): Promise<number> {
    return this.num(Op.IOASID_NOTIFY, new Writer().u32(id).u32(cmd).done());
  }
}

/** A page-track node's callbacks, run with a client inside the callback. */
export interface KvmNodeHandlers {
  trackWrite?: (inside: Client, gpa: bigint, data: Uint8Array) => void | Promise<void>;
  trackRemoveRegion?: (inside: Client, gfn: bigint, nrPages: number) => void | Promise<void>;
}

/** An IOASID notifier: returns the NOTIFY_* value of the callback. */
export type IoasidHandler = (inside: Client, event: number, id: number, sid: number) => number | void | Promise<number | void>;

interface SubsystemHandlers {
  trackWrite: Map<string, NonNullable<KvmNodeHandlers['trackWrite']>>;
  removeRegion: Map<string, NonNullable<KvmNodeHandlers['trackRemoveRegion']>>;
  unlink: Map<string, (inside: Client) => void | Promise<void>>;
  ioasid: IoasidHandler | null;
}

/** The event handlers of a connection (shared by the client and its callback views). */
const handlersOf = new WeakMap<object, SubsystemHandlers>();

function subsystemHandlers(link: object): SubsystemHandlers {
  let h = handlersOf.get(link);
  if (!h) handlersOf.set(link, (h = { trackWrite: new Map(), removeRegion: new Map(), unlink: new Map(), ioasid: null }));
  return h;
}
