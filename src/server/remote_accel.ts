// The shared accelerators of a remote engine and their SVA binds, with the members of the typed
// API the simulator's accelerator workload calls (AccelEngine, src/sim/accel_workload.ts): the
// accelerator is made and removed by the administration connection (CREATE_ACCELERATOR,
// REMOVE_ACCELERATOR); a process binds with SVA_BIND on its own connection; the accelerator's DMA
// by a PASID is an ACCEL_DMA_WRITE of the connection of the process holding that PASID.
import { ENOENT } from '../../assembly/constants.js';
import { vfioError } from '../errors.js';
import type { AccelDevice, AccelEngine } from '../sim/accel_workload.js';
import type { RemoteProcess } from './remote_engine.js';
import type { SyncClient } from './sync_client.js';

/** A bond of a process with an accelerator: the handle SVA_BIND gave on its connection. */
export class RemoteSvaHandle {
  constructor(readonly accel: RemoteAccelerator, readonly proc: RemoteProcess, readonly handle: number) {}
}

/** An accelerator made on the server. */
export class RemoteAccelerator implements AccelDevice {
  /** The processes bound to it, by the PASID SVA_GET_PASID gave. */
  readonly byPasid = new Map<number, RemoteProcess>();
  removed = false;

  constructor(private readonly admin: SyncClient, readonly path: string) {}

  /** The accelerator writes `data` at `va` of the process bound with `pasid`: 0 or -errno. */
  dmaWrite(pasid: number, va: bigint, data: Uint8Array): number {
    const proc = this.byPasid.get(pasid);
    return proc ? proc.client.accelDmaWrite(this.path, pasid, va, data) : -ENOENT;
  }

  /** REMOVE_ACCELERATOR: 0 or -errno. */
  remove(): number {
    if (this.removed) return -ENOENT;
    const r = this.admin.removeAccelerator(this.path);
    if (r === 0) this.removed = true;
    return r;
  }
}

/** The accelerator members of a remote engine, served through `admin` and each process's connection. */
export class RemoteAccelerators implements AccelEngine {
  private readonly made: RemoteAccelerator[] = [];

  constructor(private readonly admin: SyncClient) {}

  /**
   * A new accelerator (CREATE_ACCELERATOR with the name).
   * @throws VfioError when the server refuses the spec
   */
  createAccelerator(o: { name?: string } = {}): RemoteAccelerator {
    const spec = o.name === undefined ? '' : `name=${o.name}`;
    const path = this.admin.createAccelerator(spec);
    if (typeof path === 'number') throw vfioError(path, 'createAccelerator', undefined, `CREATE_ACCELERATOR ${spec} refused by the server`);
    const a = new RemoteAccelerator(this.admin, path);
    this.made.push(a);
    return a;
  }

  readonly sva = {
    /** SVA_BIND of `proc` to `accel`: a handle, or -errno. */
    bindDevice: (accel: never, proc: never): RemoteSvaHandle | number => {
      const a = accel as RemoteAccelerator;
      const p = proc as RemoteProcess;
      const h = p.client.sva('bind', a.path);
      return h < 0 ? h : new RemoteSvaHandle(a, p, h);
    },
    /** SVA_GET_PASID: the bond's PASID (the accelerator's DMA by it then goes through its process), or -errno. */
    getPasid: (handle: never): number => {
      const h = handle as RemoteSvaHandle;
      const pasid = h.proc.client.sva('getPasid', h.handle);
      if (pasid >= 0) h.accel.byPasid.set(pasid, h.proc);
      return pasid;
    },
    /** SVA_UNBIND: 0 or -errno. */
    unbindDevice: (handle: never): number => {
      const h = handle as RemoteSvaHandle;
      return h.proc.client.sva('unbind', h.handle);
    },
  };

  /** Removes the accelerators made here and not removed yet (a run that failed midway). */
  removeAll(): void {
    for (const a of this.made.splice(0)) if (!a.removed && !this.admin.closed) a.remove();
  }
}
