// An engine behind a `vfio-dirty serve` socket, with the members the simulator needs (SimEngine):
// every call is the request a separate program would send (docs/PROTOCOL.md), through the
// blocking Node client. A process is a connection; groups are made with CREATE_GROUP and held by
// the process whose container attached them; the container is driven by ioctls with the kernel's
// struct bytes (remote_container.ts); the vGPU's driver calls are DEV_* requests and its dma_unmap
// op an event. The VMM's KVM side (src/sim/cpu_log.ts) drives the process's `kvm` member: ioctls,
// VCPU_WRITE_MANY, and dirty logs and rings read over into the local core; the vGPU's page-table
// shadow uses its device's VM through DEV_KVM_* requests, its node's callbacks being events. The
// simulator's own bitmaps (the harvested CPU log, reports) live in a local Wasm core.
//
// Subsystems the protocol does not carry yet are refused up front (REMOTE_REFUSALS); a new one
// is a new entry there and new members here, nothing else changes.
import { closeSync, openSync, readSync } from 'node:fs';
import { Core } from '../wasm.js';
import { E2BIG } from '../../assembly/constants.js';
import { vfioError } from '../errors.js';
import type { SimConfig } from '../sim/config.js';
import type { KvmProcess, SimEngine, SimGroup, SimProcess } from '../sim/sim_engine.js';
import type { DeviceKvm, MdevDevice } from '../sim/vgpu.js';
import type { PageTrackNotifierNode } from '../kvm/page_track.js';
import { MAX_DATA } from './ops.js';
import { RemoteContainer } from './remote_container.js';
import { SyncClient } from './sync_client.js';

/** A simulator option the remote engine cannot serve yet, and when it applies. */
interface Refusal {
  option: string;
  applies(c: SimConfig): boolean;
}

/** Options a remote run refuses: each needs calls the protocol does not carry yet. */
export const REMOTE_REFUSALS: readonly Refusal[] = [
  { option: 'tracking', applies: (c) => c.tracking !== 'type1' },
  { option: 'tracking-page-size', applies: (c) => c.trackingPageSize !== 4096 },
  { option: 'accelerator', applies: (c) => c.accelerator.enabled },
  // The passthrough device's own DMA (dev.dmaWrite): run remotely with --passthrough-dma-rate 0.
  { option: 'passthrough-dma-rate', applies: (c) => c.passthrough !== 'none' && c.passthroughDmaRate > 0 },
];

/** The first option of `config` a remote run cannot serve, or undefined. */
export function remoteRefusal(config: SimConfig): string | undefined {
  return REMOTE_REFUSALS.find((r) => r.applies(config))?.option;
}

/** Options of {@link RemoteEngine.connect}. */
export interface RemoteEngineOptions {
  /** Bytes of shared file each process asks for at HELLO (bitmaps larger than it use READ_MEM). */
  shmBytes?: number;
}

/** A process of the remote engine: one connection. */
export class RemoteProcess implements SimProcess {
  /** Group fds and device fds opened through this process, closed before it ends. */
  readonly fds: number[] = [];
  /** The shared file, opened on first use. */
  private shmFd = -1;
  /** The VMM's KVM calls as requests of this connection. */
  readonly kvm: KvmProcess;

  constructor(readonly client: SyncClient) {
    const c = client;
    const ok = (r: number, op: string): number => {
      if (r < 0) throw vfioError(r, op);
      return r;
    };
    this.kvm = {
      open: (path) => c.open(path),
      ioctl: (fd, request, arg) => c.ioctl(fd, request, arg),
      close: (fd) => c.close(fd),
      mmap: (length) => this.mmap(length),
      munmap: (addr, length) => c.munmap(addr, length),
      mmapFd: (fd, offset, length) => c.mmapFd(fd, offset, length),
      read: (addr, length) => {
        const b = new Uint8Array(length);
        this.readInto(addr, b, 'read');
        return b;
      },
      write: (addr, bytes) => void ok(c.write(addr, bytes), 'write'),
      vcpuWriteMany: (fd, gpas, data, bytesEach) => c.vcpuWriteMany(fd, gpas, data, bytesEach),
    };
  }

  /** Anonymous memory in the process (MMAP). */
  mmap(length: bigint | number): bigint {
    const a = this.client.mmap(length);
    if (a < 0n) throw vfioError(Number(a), 'mmap');
    return a;
  }

  /**
   * Fills `dst` with process memory from `addr`: one SHM_FROM_MEM and one read of the shared file
   * when it is large enough, else READ_MEM in pieces of at most MAX_DATA bytes.
   * @throws VfioError (op) when the server refuses; Error when the shared file is short
   */
  readInto(addr: bigint, dst: Uint8Array, op: string): void {
    const c = this.client;
    const n = dst.length;
    if (n <= Number(c.shmSize)) {
      const r = c.shmFromMem(addr, 0n, BigInt(n));
      if (r < 0) throw vfioError(r, op);
      if (this.shmFd < 0) this.shmFd = openSync(c.shmPath, 'r');
      for (let done = 0; done < n;) {
        const k = readSync(this.shmFd, dst, done, n - done, done);
        if (k <= 0) throw new Error(`${op}: the shared file ${c.shmPath} is shorter than ${n} bytes`);
        done += k;
      }
      return;
    }
    for (let off = 0; off < n; off += MAX_DATA) {
      const part = c.read(addr + BigInt(off), Math.min(MAX_DATA, n - off));
      if (typeof part === 'number') throw vfioError(part, op);
      dst.set(part, off);
    }
  }

  /** Closes its fds (release effects first, as CLOSE answers after them), then the connection. */
  end(): void {
    try {
      if (this.shmFd >= 0) closeSync(this.shmFd);
      this.shmFd = -1;
      if (!this.client.closed) for (const fd of this.fds.splice(0).reverse()) this.client.close(fd);
    } finally {
      this.client.end();
    }
  }
}

/** A device of a remote group: its driver calls go through the process holding the group. */
export class RemoteDevice implements MdevDevice {
  /** The process whose container attached the group (set by attach). */
  holder: RemoteProcess | null = null;
  private deviceKvm: DeviceKvm | null = null;

  constructor(readonly name: string) {}

  /**
   * The device's VM as its model uses it (DEV_KVM_* requests of the holding process; a page-track
   * node's callbacks are its events), once the group is attached. Whether the device has a VM is
   * the server's to say: each call answers -ESRCH when it has none.
   */
  get kvm(): DeviceKvm | null {
    if (!this.holder) return null;
    if (this.deviceKvm) return this.deviceKvm;
    const proc = this.holder;
    const c = proc.client;
    const name = this.name;
    return (this.deviceKvm = {
      pageTrackRegisterNotifier: (node: PageTrackNotifierNode) => c.registerKvmNode(name, {
        trackWrite: node.trackWrite && ((gpa, data) => node.trackWrite?.(gpa, data, data.length)),
        trackRemoveRegion: node.trackRemoveRegion && ((gfn, nr) => node.trackRemoveRegion?.(gfn, nr)),
      }),
      pageTrackUnregisterNotifier: () => void c.unregisterKvmNode(name),
      writeTrackAddGfn: (gfn) => Number(c.deviceKvm('trackAdd', name, gfn)),
      writeTrackRemoveGfn: (gfn) => Number(c.deviceKvm('trackRemove', name, gfn)),
      gfnToHva: (gfn) => c.deviceKvm('gfnToHva', name, gfn),
      proc: { read: (addr, length) => proc.kvm.read(addr, length) },
    });
  }

  /** The device's KVM unlink callback (DEV_REGISTER_KVM_UNLINK; the event runs `cb`). */
  registerKvmUnlink(cb: (() => void) | null): void {
    const r = this.client('registerKvmUnlink').registerKvmUnlink(this.name, cb);
    if (r < 0) throw vfioError(r, 'registerKvmUnlink');
  }

  private client(op: string): SyncClient {
    if (!this.holder) throw new Error(`${op} on ${this.name}: its group is not attached to a container yet`);
    return this.holder.client;
  }

  registerDmaUnmap(fn: (iova: bigint, size: bigint) => void): void {
    const r = this.client('registerDmaUnmap').registerDmaUnmap(this.name, fn);
    if (r < 0) throw vfioError(r, 'registerDmaUnmap');
  }

  pinPages(iova: bigint, npage: number, prot: number): number {
    return this.client('pinPages').pinPages(this.name, iova, npage, prot);
  }

  unpinPages(iova: bigint, npage: number): void {
    this.client('unpinPages').unpinPages(this.name, iova, npage);
  }

  dmaRw(iova: bigint, data: Uint8Array, write: boolean): number {
    return this.client('dmaRw').dmaRw(this.name, iova, data, write);
  }
}

/** A host group made on the server. */
export class RemoteGroup implements SimGroup {
  constructor(readonly id: number, readonly devices: readonly RemoteDevice[]) {}
}

/** The engine of a `vfio-dirty serve` server, as the simulator drives it. */
export class RemoteEngine implements SimEngine {
  private readonly processes: RemoteProcess[] = [];
  private readonly groups: RemoteGroup[] = [];

  private constructor(
    readonly path: string,
    /** The local core of the simulator's own bitmaps. */
    readonly core: Core,
    /** The administration connection: CREATE_GROUP, REMOVE_GROUP, STATS. */
    private readonly admin: SyncClient,
    private readonly o: RemoteEngineOptions,
  ) {}

  /**
   * Connects to the server listening at `path`.
   * @throws Error when it cannot connect or the handshake is refused
   */
  static async connect(path: string, o: RemoteEngineOptions = {}): Promise<RemoteEngine> {
    const core = await Core.create();
    try {
      return new RemoteEngine(path, core, new SyncClient(path), o);
    } catch (e) {
      core.dispose('connect failed');
      throw e;
    }
  }

  /**
   * A new process: a new connection, with the shared file of the options (without one when the
   * server refuses that size, E2BIG: bitmaps then come back through READ_MEM).
   */
  createProcess(opts: { memlockLimit?: bigint; capIpcLock?: boolean } = {}): RemoteProcess {
    let client: SyncClient;
    try {
      client = new SyncClient(this.path, { ...opts, shmBytes: this.o.shmBytes ?? 0 });
    } catch (e) {
      if ((e as { errno?: number }).errno !== E2BIG || !this.o.shmBytes) throw e;
      client = new SyncClient(this.path, opts);
    }
    const p = new RemoteProcess(client);
    this.processes.push(p);
    return p;
  }

  /** A host group (CREATE_GROUP); removed again by dispose. */
  createGroup(opts: { kind: 'iommu' | 'emulated'; devices?: string[] }): RemoteGroup {
    const names = opts.devices ?? [];
    const spec = `kind=${opts.kind}${names.length ? `,devices=${names.join('+')}` : ''}`;
    const id = this.admin.createGroup(spec);
    if (id < 0) throw vfioError(id, 'createGroup', undefined, `CREATE_GROUP ${spec} refused by the server`);
    const g = new RemoteGroup(id, (names.length ? names : [`group${id}-dev0`]).map((n) => new RemoteDevice(n)));
    this.groups.push(g);
    return g;
  }

  /** A container (/dev/vfio/vfio) in `proc`. */
  openContainer(proc: SimProcess): RemoteContainer {
    if (!(proc instanceof RemoteProcess)) throw new TypeError('openContainer: the process is not one of this remote engine');
    return new RemoteContainer(proc, this.core);
  }

  /** The server engine's Wasm heap bytes (STATS heapUsed). */
  memoryInUse(): number {
    return Number(this.admin.stats().heapUsed);
  }

  /**
   * Ends every process, removes the groups it made, closes the connections and the local core.
   * Goes on past a failed step (a server that died) and throws the first failure at the end.
   */
  dispose(): void {
    let first: unknown = null;
    const step = (f: () => unknown): void => {
      try {
        f();
      } catch (e) {
        first ??= e;
      }
    };
    for (const p of this.processes.splice(0)) step(() => p.end());
    for (const g of this.groups.splice(0)) step(() => this.admin.closed || this.admin.removeGroup(g.id));
    step(() => this.admin.end());
    this.core.dispose('remote engine disposed');
    if (first !== null) throw first;
  }
}
