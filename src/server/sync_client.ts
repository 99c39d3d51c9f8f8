// The blocking Node client of `vfio-dirty serve`: the calls of client.ts, each returning its
// result synchronously (sync_link.ts blocks the caller until the reply arrives). Made for the
// simulator, whose engine calls are synchronous. An event that arrives while a call waits is a
// callback the engine makes during that call: its handler runs there, on the caller's stack, its
// own calls go out inside the callback (ctx = the event id), then EVENT_DONE, then the wait goes
// on; exactly how a kernel callback nests in the ioctl that caused it.
import { EVENT_DMA_UNMAP, EVENT_KVM_TRACK_REMOVE_REGION, EVENT_KVM_TRACK_WRITE, EVENT_KVM_UNLINK, HEADER_SIZE, REPLY_BIT, Reader, concat, frame } from './protocol.js';
import { reply, req, type ClientReply, type HelloOptions, type IoctlArg, type Request } from './requests.js';
import { SyncLink } from './sync_link.js';

/** A dma_unmap callback, run synchronously inside the call that caused it. */
export type SyncDmaUnmapHandler = (iova: bigint, size: bigint) => void;

/** A device model's page-track node (docs/conformance.md §19.7), its calls run inside the event. */
export interface SyncKvmNode {
  trackWrite?(gpa: bigint, data: Uint8Array): void;
  trackRemoveRegion?(gfn: bigint, nrPages: number): void;
}

/** A connection (one process of the engine) whose calls block until answered. */
export class SyncClient {
  /** The shared file's path and size (after a HELLO that asked for one). */
  readonly shmPath: string;
  readonly shmSize: bigint;
  private readonly link: SyncLink;
  private readonly handlers = new Map<string, SyncDmaUnmapHandler>();
  private readonly kvmNodes = new Map<string, SyncKvmNode>();
  private readonly unlinks = new Map<string, () => void>();
  private readonly header = new Uint8Array(HEADER_SIZE);
  private nextId = 1;
  /** The event whose callback runs now (0: none): calls made meanwhile go inside it. */
  private ctx = 0;
  /** The first error a callback handler threw, rethrown when the call that caused it returns. */
  private callbackError: unknown = null;

  /**
   * Connects to the server at `path` and performs HELLO, blocking.
   * @throws Error when the connection fails or HELLO is refused (then with `errno`, also in the message)
   */
  constructor(path: string, o: HelloOptions = {}) {
    this.link = new SyncLink(path);
    const r = this.call(req.hello(o));
    if (r.ret < 0n) {
      this.link.close();
      throw Object.assign(new Error(`HELLO refused by ${path}: errno ${-r.ret}`), { errno: Number(-r.ret) });
    }
    ({ shmSize: this.shmSize, shmPath: this.shmPath } = reply.hello(r));
  }

  /** Whether the server has ended the connection. */
  get closed(): boolean {
    return this.link.closed;
  }

  /**
   * Sends one request and blocks until its reply, running the callbacks it causes meanwhile.
   * @throws Error when the connection ends first; what a callback handler threw
   */
  call(r: Request): ClientReply {
    return this.callMany([r])[0];
  }

  /**
   * Sends `reqs` in one write (pipelined: the server runs them in order, docs/PROTOCOL.md §2) and
   * blocks until every reply is in, running the callbacks they cause meanwhile; the replies in
   * order. A callback's own calls are answered before any later request runs, so they find their
   * replies in between.
   * @throws Error when the connection ends first; what a callback handler threw
   */
  callMany(reqs: readonly Request[]): ClientReply[] {
    const ids = reqs.map(() => {
      const id = this.nextId;
      this.nextId = (this.nextId + 1) >>> 0 || 1;
      return id;
    });
    const frames = reqs.map(([op, payload], i) => frame(op, ids[i], this.ctx, payload));
    this.link.write((frames.length === 1 ? frames[0] : concat(frames)) as Uint8Array<ArrayBuffer>);
    const out: ClientReply[] = [];
    while (out.length < reqs.length) {
      const [fop, fid, body] = this.nextFrame();
      if (!(fop & REPLY_BIT)) {
        this.onEvent(fop, fid, body);
        continue;
      }
      if (fid !== ids[out.length]) continue; // not ours: a reply to a request whose caller gave up (none today)
      out.push({ ret: new DataView(body.buffer, body.byteOffset).getBigInt64(0, true), data: body.subarray(8) });
    }
    if (this.ctx === 0 && this.callbackError !== null) {
      const e = this.callbackError;
      this.callbackError = null;
      throw e;
    }
    return out;
  }

  /** The next frame: op, id and payload. */
  private nextFrame(): [number, number, Uint8Array] {
    const h = this.header;
    this.link.readExact(h, 0, HEADER_SIZE);
    const v = new DataView(h.buffer);
    const size = v.getUint32(0, true);
    const body = new Uint8Array(Math.max(0, size - HEADER_SIZE));
    this.link.readExact(body, 0, body.length);
    return [v.getUint16(4, true), v.getUint32(8, true), body];
  }

  /** A callback: its handler runs with calls inside it, then EVENT_DONE answers it. */
  private onEvent(op: number, ev: number, body: Uint8Array): void {
    const outer = this.ctx;
    this.ctx = ev;
    try {
      const r = new Reader(body);
      if (op === EVENT_DMA_UNMAP) {
        const iova = r.u64();
        const size = r.u64();
        this.handlers.get(r.str())?.(iova, size);
      } else if (op === EVENT_KVM_TRACK_WRITE) {
        const gpa = r.u64();
        const n = r.u32();
        const node = this.kvmNodes.get(r.str());
        node?.trackWrite?.(gpa, r.bytes(n).slice());
      } else if (op === EVENT_KVM_TRACK_REMOVE_REGION) {
        const gfn = r.u64();
        const nr = r.u32();
        this.kvmNodes.get(r.str())?.trackRemoveRegion?.(gfn, nr);
      } else if (op === EVENT_KVM_UNLINK) {
        this.unlinks.get(r.str())?.();
      }
    } catch (e) {
      this.callbackError ??= e;
    } finally {
      this.call(req.eventDone(0n));
      this.ctx = outer;
    }
  }

  /** The result of a call as a number (fd, 0, npage, or -errno). */
  private num(r: Request): number {
    return Number(this.call(r).ret);
  }

  /** open(2) of a device path: a new fd, or -errno. */
  open(path: string): number {
    return this.num(req.open(path));
  }

  /** close(2): 0 or -errno. */
  close(fd: number): number {
    return this.num(req.close(fd));
  }

  /** ioctl(2); struct bytes are updated in place with what the kernel writes back. */
  ioctl(fd: number, request: number, arg?: IoctlArg): number {
    return reply.ioctl(this.call(req.ioctl(fd, request, arg)), arg);
  }

  /** mmap of anonymous memory: the address, or -errno as a bigint. */
  mmap(length: bigint | number): bigint {
    return this.call(req.mmap(length)).ret;
  }

  /** `proc.munmap`: 0 or -errno. */
  munmap(addr: bigint, length: bigint | number): number {
    return this.num(req.munmap(addr, length));
  }

  /** `proc.mmapFd`: the address, or -errno as a bigint. */
  mmapFd(fd: number, offset: bigint, length: bigint | number): bigint {
    return this.call(req.mmapFd(fd, offset, length)).ret;
  }

  /** Guest stores through a vCPU fd (VCPU_WRITE_MANY): the stores made, or -errno. */
  vcpuWriteMany(vcpuFd: number, gpas: BigUint64Array, data: Uint8Array, bytesEach: number): number {
    return this.num(req.vcpuWriteMany(vcpuFd, gpas, data, bytesEach));
  }

  /** A device model's call on its device's VM: track add / remove / count, or gfn to hva. */
  deviceKvm(call: 'trackAdd' | 'trackRemove' | 'trackCount' | 'gfnToHva', device: string, gfn: bigint): bigint {
    return this.call(req.deviceKvm(call, device, gfn)).ret;
  }

  /** This connection's page-track node for the device: 0 or -errno. */
  registerKvmNode(device: string, node: SyncKvmNode): number {
    const r = this.num(req.registerKvmNode(device, (node.trackWrite ? 1 : 0) | (node.trackRemoveRegion ? 2 : 0)));
    if (r === 0) this.kvmNodes.set(device, node);
    return r;
  }

  /** Unregisters this connection's node for the device: 0. */
  unregisterKvmNode(device: string): number {
    const r = this.num(req.unregisterKvmNode(device));
    this.kvmNodes.delete(device);
    return r;
  }

  /** The device's KVM unlink callback, or null to remove it: 0 or -errno. */
  registerKvmUnlink(device: string, cb: (() => void) | null): number {
    if (cb) this.unlinks.set(device, cb);
    else this.unlinks.delete(device);
    return this.num(req.registerKvmUnlink(device, cb !== null));
  }

  /** Bytes of the process's memory, or -errno. */
  read(addr: bigint, length: number): Uint8Array | number {
    return reply.read(this.call(req.read(addr, length)));
  }

  /** Stores bytes in the process's memory: 0 or -errno. */
  write(addr: bigint, bytes: Uint8Array): number {
    return this.num(req.write(addr, bytes));
  }

  /** Copies process memory [addr, addr+length) to the shared file at `offset`: 0 or -errno. */
  shmFromMem(addr: bigint, offset: bigint, length: bigint): number {
    return this.num(req.shmFromMem(addr, offset, length));
  }

  /** Copies the shared file at `offset` into process memory [addr, addr+length): 0 or -errno. */
  shmToMem(addr: bigint, offset: bigint, length: bigint): number {
    return this.num(req.shmToMem(addr, offset, length));
  }

  /** Creates a host IOMMU group from a spec: its number, or -errno. */
  createGroup(spec: string): number {
    return this.num(req.createGroup(spec));
  }

  /** Removes a host group: 0, -EBUSY while it is open, -ENOENT. */
  removeGroup(id: number): number {
    return this.num(req.removeGroup(id));
  }

  /** Registers `handler` as the device's dma_unmap op: 0 or -errno. */
  registerDmaUnmap(device: string, handler: SyncDmaUnmapHandler): number {
    this.handlers.set(device, handler);
    return this.num(req.registerDmaUnmap(device));
  }

  /** vfio_pin_pages: npage or -errno, with the pfns when asked for. */
  pinPages(device: string, iova: bigint, npage: number, prot: number, pfns?: BigUint64Array): number {
    return reply.pinPages(this.call(req.pinPages(device, iova, npage, prot, pfns !== undefined)), pfns);
  }

  /** vfio_unpin_pages. */
  unpinPages(device: string, iova: bigint, npage: number): number {
    return this.num(req.unpinPages(device, iova, npage));
  }

  /** vfio_dma_rw: 0 or -errno; a read fills `data`. */
  dmaRw(device: string, iova: bigint, data: Uint8Array, write: boolean): number {
    return reply.dmaRw(this.call(req.dmaRw(device, iova, data, write)), data, write);
  }

  /** A passthrough device's own DMA writes through its IOMMU (DEV_DMA_WRITE), pipelined: 0 or -errno each. */
  devDmaWrites(device: string, writes: readonly { iova: bigint; data: Uint8Array }[]): number[] {
    return this.callMany(writes.map((w) => req.devDmaWrite(device, w.iova, w.data))).map((r) => Number(r.ret));
  }

  /** A new shared accelerator from a spec: its path, or -errno. */
  createAccelerator(spec: string): string | number {
    return reply.createAccelerator(this.call(req.createAccelerator(spec)));
  }

  /** Removes a shared accelerator: 0 or -errno. */
  removeAccelerator(path: string): number {
    return this.num(req.removeAccelerator(path));
  }

  /** An SVA call of this process: bind (an accelerator's path: a handle), unbind or getPasid (a handle). */
  sva(call: 'bind' | 'unbind' | 'getPasid', x: string | number): number {
    return this.num(req.sva(call, x));
  }

  /** The accelerator's DMA write by this process's PASID: 0 or -errno. */
  accelDmaWrite(path: string, pasid: number, va: bigint, data: Uint8Array): number {
    return this.num(req.accelDmaWrite(path, pasid, va, data));
  }

  /** The server's counters (sessions, processes, heapUsed, groups, ...). */
  stats(): Record<string, unknown> {
    return reply.stats(this.call(req.stats()));
  }

  /** Ends the connection: the process exits on the server. */
  end(): void {
    this.link.close();
  }
}
