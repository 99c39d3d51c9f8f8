// An engine behind a `vfio-dirty serve` socket, with the members the simulator needs (SimEngine):
// every call is the request a separate program would send (docs/PROTOCOL.md), through the
// blocking Node client. A process is a connection; groups are made with CREATE_GROUP and held by
// the process whose container attached them; the container is driven by ioctls with the kernel's
// struct bytes (remote_container.ts); the vGPU's driver calls are DEV_* requests and its dma_unmap
// op an event. The simulator's own bitmaps (CPU log, reports) live in a local Wasm core.
//
// Subsystems the protocol does not carry yet are refused up front (REMOTE_REFUSALS); a new one
// is a new entry there and new members here, nothing else changes.
import { Core } from '../wasm.js';
import { E2BIG } from '../../assembly/constants.js';
import { vfioError } from '../errors.js';
import type { SimConfig } from '../sim/config.js';
import type { SimEngine, SimGroup, SimProcess } from '../sim/sim_engine.js';
import type { MdevDevice } from '../sim/vgpu.js';
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

  constructor(readonly client: SyncClient) {}

  /** Anonymous memory in the process (MMAP). */
  mmap(length: bigint | number): bigint {
    const a = this.client.mmap(length);
    if (a < 0n) throw vfioError(Number(a), 'mmap');
    return a;
  }

  /** Closes its fds (release effects first, as CLOSE answers after them), then the connection. */
  end(): void {
    try {
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

  constructor(readonly name: string) {}

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
