// An engine behind a `vfio-dirty serve` socket, with the members the simulator needs (SimEngine):
// every call is the request a separate program would send (docs/PROTOCOL.md), through the
// blocking Node client. A process is a connection; groups are made with CREATE_GROUP and held by
// the process whose container attached them or that opened a device's cdev (remote_device.ts);
// the container is driven by ioctls with the kernel's struct bytes (remote_container.ts); the
// devices' driver calls and their own DMA are DEV_* requests and the dma_unmap op an event; the
// shared accelerators and SVA binds are their own requests (remote_accel.ts). The VMM's syscalls
// (the process's `kvm` member: KVM, the device features, iommufd) are IOCTLs with struct bytes,
// VCPU_WRITE_MANY, and bitmaps and rings copied between process memory and the local core
// through the shared file; the vGPU's page-table shadow uses its device's VM through DEV_KVM_*
// requests, its node's callbacks being events. The simulator's own bitmaps (the harvested CPU
// log, the trackers' reports) live in a local Wasm core.
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { Core } from '../wasm.js';
import { E2BIG } from '../../assembly/constants.js';
import { vfioError } from '../errors.js';
import type { KvmProcess, SimEngine, SimProcess } from '../sim/sim_engine.js';
import { MAX_DATA } from './ops.js';
import { RemoteAccelerators } from './remote_accel.js';
import { RemoteContainer } from './remote_container.js';
import { groupSpec, RemoteDevice, RemoteGroup, type GroupOpts } from './remote_device.js';
import { SyncClient } from './sync_client.js';

export { RemoteDevice, RemoteGroup } from './remote_device.js';

/** Options of {@link RemoteEngine.connect}. */
export interface RemoteEngineOptions {
  /** Bytes of shared file each process asks for at HELLO (bitmaps larger than it use READ_MEM). */
  shmBytes?: number;
}

/** A process of the remote engine: one connection. */
export class RemoteProcess implements SimProcess {
  /** Group fds and device fds opened through this process and not closed yet, closed before it ends. */
  readonly fds: number[] = [];
  /** The shared file, opened on first use. */
  private shmFd = -1;
  /** The VMM's syscalls as requests of this connection. */
  readonly kvm: KvmProcess;

  /**
   * A process on connection `client`; `core` is the simulator's local core (readInto and
   * writeFrom copy between it and process memory); `opened(path)` learns of each file it opens.
   */
  constructor(readonly client: SyncClient, readonly core: Core, opened: (path: string, p: RemoteProcess) => void = () => {}) {
    const c = client;
    const ok = (r: number, op: string): number => {
      if (r < 0) throw vfioError(r, op);
      return r;
    };
    this.kvm = {
      open: (path) => {
        const fd = c.open(path);
        if (fd >= 0) opened(path, this);
        return fd;
      },
      ioctl: (fd, request, arg) => c.ioctl(fd, request, arg),
      close: (fd) => {
        const i = this.fds.indexOf(fd);
        if (i >= 0) this.fds.splice(i, 1);
        return c.close(fd);
      },
      mmap: (length) => this.mmap(length),
      munmap: (addr, length) => c.munmap(addr, length),
      mmapFd: (fd, offset, length) => c.mmapFd(fd, offset, length),
      read: (addr, length) => {
        const b = new Uint8Array(length);
        this.readBytes(addr, b, 'read');
        return b;
      },
      write: (addr, bytes) => void ok(c.write(addr, bytes), 'write'),
      readInto: (addr, dst, length, op) => this.readBytes(addr, this.core.u8().subarray(dst, dst + length), op),
      writeFrom: (addr, src, length, op) => this.writeBytes(addr, this.core.u8().subarray(src, src + length), op),
      vcpuWriteMany: (fd, gpas, data, bytesEach) => c.vcpuWriteMany(fd, gpas, data, bytesEach),
    };
  }

  /** Anonymous memory in the process (MMAP). */
  mmap(length: bigint | number): bigint {
    const a = this.client.mmap(length);
    if (a < 0n) throw vfioError(Number(a), 'mmap');
    return a;
  }

  /** The shared file's fd here, when it holds `n` bytes; else -1. */
  private shm(n: number): number {
    const c = this.client;
    if (n > Number(c.shmSize)) return -1;
    if (this.shmFd < 0) this.shmFd = openSync(c.shmPath, 'r+');
    return this.shmFd;
  }

  /**
   * Fills `dst` with process memory from `addr`: one SHM_FROM_MEM and one read of the shared file
   * when it is large enough, else READ_MEM in pieces of at most MAX_DATA bytes.
   * @throws VfioError (op) when the server refuses; Error when the shared file is short
   */
  readBytes(addr: bigint, dst: Uint8Array, op: string): void {
    const c = this.client;
    const n = dst.length;
    const fd = this.shm(n);
    if (fd >= 0) {
      const r = c.shmFromMem(addr, 0n, BigInt(n));
      if (r < 0) throw vfioError(r, op);
      for (let done = 0; done < n;) {
        const k = readSync(fd, dst, done, n - done, done);
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

  /**
   * Stores `src` in process memory at `addr`: one write of the shared file and one SHM_TO_MEM when
   * it is large enough, else WRITE_MEM in pieces of at most MAX_DATA bytes (then a refused piece
   * leaves the ones before it stored: the callers rewrite the whole range on their next try).
   * @throws VfioError (op) when the server refuses
   */
  writeBytes(addr: bigint, src: Uint8Array, op: string): void {
    const c = this.client;
    const n = src.length;
    const fd = this.shm(n);
    if (fd >= 0) {
      for (let done = 0; done < n;) done += writeSync(fd, src, done, n - done, done);
      const r = c.shmToMem(addr, 0n, BigInt(n));
      if (r < 0) throw vfioError(r, op);
      return;
    }
    for (let off = 0; off < n; off += MAX_DATA) {
      const r = c.write(addr + BigInt(off), src.subarray(off, Math.min(n, off + MAX_DATA)));
      if (r < 0) throw vfioError(r, op);
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

/** The engine of a `vfio-dirty serve` server, as the simulator drives it. */
export class RemoteEngine implements SimEngine {
  private readonly processes: RemoteProcess[] = [];
  private readonly groups: RemoteGroup[] = [];
  private readonly accels: RemoteAccelerators;

  private constructor(
    readonly path: string,
    /** The local core of the simulator's own bitmaps. */
    readonly core: Core,
    /** The administration connection: CREATE_GROUP, REMOVE_GROUP, CREATE_ACCELERATOR, STATS. */
    private readonly admin: SyncClient,
    private readonly o: RemoteEngineOptions,
  ) {
    this.accels = new RemoteAccelerators(admin);
    this.sva = this.accels.sva;
  }

  /** The SVA binds of processes to accelerators (SVA_* requests of the process's connection). */
  readonly sva: RemoteAccelerators['sva'];

  /** A shared accelerator (CREATE_ACCELERATOR); removed again by dispose if the run did not. */
  createAccelerator(o: { name?: string } = {}) {
    return this.accels.createAccelerator(o);
  }

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
    // A process that opens a device's cdev holds the device (its driver calls go through it).
    const p = new RemoteProcess(client, this.core, (path, proc) => {
      for (const g of this.groups) for (const d of g.devices) if (d.cdevPath === path) d.holder = proc;
    });
    this.processes.push(p);
    return p;
  }

  /**
   * A host group (CREATE_GROUP), with its devices' names and cdev paths as STATS lists them;
   * removed again by dispose.
   */
  createGroup(opts: GroupOpts): RemoteGroup {
    const spec = groupSpec(opts);
    const id = this.admin.createGroup(spec);
    if (id < 0) throw vfioError(id, 'createGroup', undefined, `CREATE_GROUP ${spec} refused by the server`);
    const listed = (this.admin.stats().groups as { id: number; devices: string[]; cdevs?: (string | null)[] }[]).find((x) => x.id === id);
    if (!listed) throw new Error(`createGroup: STATS does not list group ${id} just created`);
    const g = new RemoteGroup(id, listed.devices.map((n, i) => new RemoteDevice(n, listed.cdevs?.[i] ?? null)));
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
    step(() => this.accels.removeAll());
    for (const g of this.groups.splice(0)) step(() => this.admin.closed || this.admin.removeGroup(g.id));
    step(() => this.admin.end());
    this.core.dispose('remote engine disposed');
    if (first !== null) throw first;
  }
}
