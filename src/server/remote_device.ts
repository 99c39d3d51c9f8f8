// The devices and groups of a remote engine (remote_engine.ts): a device's driver calls (pins,
// dma_rw, its own DMA, its VM's page tracking) are requests of the connection of the process that
// holds it, as docs/PROTOCOL.md §6 has it; a group is made with CREATE_GROUP from the createGroup
// options the simulator passes.
import { vfioError } from '../errors.js';
import type { PageTrackNotifierNode } from '../kvm/page_track.js';
import type { SimEngine, SimGroup } from '../sim/sim_engine.js';
import type { PtDevice } from '../sim/tracking.js';
import type { DeviceKvm, MdevDevice } from '../sim/vgpu.js';
import type { RemoteProcess } from './remote_engine.js';
import type { SyncClient } from './sync_client.js';

/** The createGroup options of the simulator. */
export type GroupOpts = Parameters<SimEngine['createGroup']>[0];

/** The CREATE_GROUP spec (docs/PROTOCOL.md §1) of `o`. */
export function groupSpec(o: GroupOpts): string {
  const devices = o.devices ?? [];
  const names = devices.map((d) => (typeof d === 'string' ? d : d.name));
  const logging = devices.filter((d) => typeof d !== 'string' && d.dmaLogging);
  const ranges = new Set(logging.map((d) => (typeof d === 'string' ? undefined : d.dmaLogging?.maxRanges)));
  if (ranges.size > 1) throw new RangeError('createGroup: a remote group\'s DMA-logging trackers share one maxRanges');
  const maxRanges = [...ranges][0];
  return [
    `kind=${o.kind}`,
    ...(names.length ? [`devices=${names.join('+')}`] : []),
    ...(o.iommuDirtyTracking ? ['iommuDirtyTracking=1'] : []),
    ...(logging.length ? [`dmaLogging=${logging.map((d) => (d as { name: string }).name).join('+')}`] : []),
    ...(maxRanges !== undefined ? [`maxRanges=${maxRanges}`] : []),
  ].join(',');
}

/** A device of a remote group: its driver calls go through the process holding the group. */
export class RemoteDevice implements MdevDevice, PtDevice {
  /**
   * The process holding the device, whose connection makes its driver calls: the one whose
   * container attached the group, or that opened the device's cdev.
   */
  holder: RemoteProcess | null = null;
  private deviceKvm: DeviceKvm | null = null;

  /** `name`, and its cdev path as the server's STATS gives it (null for an emulated group's). */
  constructor(readonly name: string, readonly cdevPath: string | null) {}

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
    if (!this.holder) throw new Error(`${op} on ${this.name}: no process holds it yet (its group attached to a container, or its cdev opened)`);
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

  /** The device's own DMA write through its IOMMU (DEV_DMA_WRITE): 0 or -errno. */
  dmaWrite(iova: bigint, data: Uint8Array): number {
    return this.dmaWrites([{ iova, data }])[0];
  }

  /** Its own DMA writes, pipelined on the holder's connection: 0 or -errno each. */
  dmaWrites(writes: readonly { iova: bigint; data: Uint8Array }[]): number[] {
    return this.client('dmaWrite').devDmaWrites(this.name, writes);
  }
}

/** A host group made on the server. */
export class RemoteGroup implements SimGroup {
  constructor(readonly id: number, readonly devices: readonly RemoteDevice[]) {}
}
