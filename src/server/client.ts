// The Node client of `vfio-dirty serve` (docs/PROTOCOL.md): a connection is a process of the
// engine; every call is a request frame, pipelined (many may be in flight), answered in order.
// Driver callbacks arrive as events; a handler's calls run inside the callback (their frames carry
// the event's id) and its return sends EVENT_DONE.
import { createConnection, type Socket } from 'node:net';
import { EVENT_DMA_UNMAP, HEADER_SIZE, REPLY_BIT, Reader, concat, frame } from './protocol.js';
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
        const data = size > HEADER_SIZE + 8 ? Uint8Array.from(buf.subarray(o + HEADER_SIZE + 8, o + size)) : EMPTY;
        res?.({ ret: v.getBigInt64(o + HEADER_SIZE, true), data });
      } else if (op === EVENT_DMA_UNMAP) {
        void this.onDmaUnmap(id, Uint8Array.from(buf.subarray(o + HEADER_SIZE, o + size)));
      } else if (op & 0x4000) {
        void this.within(id).send(req.eventDone(0n)); // unknown: returns 0
      }
      o += Math.max(size, HEADER_SIZE);
    }
    L.buf = o < buf.length ? Uint8Array.from(buf.subarray(o)) : new Uint8Array(0);
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
}
