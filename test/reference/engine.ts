// The reference model of docs/conformance.md §2 to §8 with the engine's choices among kernel
// versions: a plain TypeScript engine with the engine's public surface, written for obviousness rather
// than speed (Maps, arrays, byte bitmaps). The differential tests run it beside the Wasm engine;
// VFIO_DIRTY_ENGINE=reference runs the type1 vector tests against it.
//
//   engine.ts     options, groups and processes, inspect()
//   process.ts    fds, open/close/ioctl, user memory, locked_vm
//   group.ts      groups, devices, group-fd ioctls
//   container.ts  CHECK_EXTENSION, SET_IOMMU, attach/detach, iova list, pgsize
//   map.ts        MAP_DMA / UNMAP_DMA      pin.ts   pin, unpin, dma_rw
//   dirty.ts      DIRTY_PAGES and update_user_bitmap      info.ts  GET_INFO
import type { RefContainer } from './container.js';
import { RefGroup, type RefGroupOptions } from './group.js';
import { RefProcess, type RefProcessOptions } from './process.js';
import { EINVAL, EOVERFLOW, type ProfileName } from './uapi.js';
import type { ContainerSnapshot, DmaSnapshot, EngineSnapshot } from '../../src/vfio/inspect.js';

export interface RefEngineOptions {
  profile?: ProfileName;
  dmaEntryLimit?: number;
  /** Accepted for option compatibility with the Wasm engine; unused. */
  memoryLimit?: number;
  /** Accepted for option compatibility with the Wasm engine; unused. */
  flavour?: 'release' | 'debug';
}

// The snapshot shape is the engine's own (engine.inspect()), so the two can be compared directly.
export type RefDmaSnapshot = DmaSnapshot;
export type RefContainerSnapshot = ContainerSnapshot;
export type RefSnapshot = EngineSnapshot;

/** The first group number handed out. */
export const FIRST_GROUP_ID = 1;

export class RefEngine {
  readonly profile: ProfileName;
  readonly dmaEntryLimit: number;
  readonly groups: RefGroup[] = [];
  readonly processes: RefProcess[] = [];
  /** Every container ever opened, in creation order. */
  readonly containers: RefContainer[] = [];
  private seq = 0;

  constructor(o: RefEngineOptions) {
    const profile = o.profile ?? 'linux-6.18';
    if (profile !== 'linux-6.18' && profile !== 'linux-6.6') throw new RangeError(`unknown profile ${String(profile)}`);
    this.profile = profile;
    this.dmaEntryLimit = o.dmaEntryLimit ?? 65535;
  }

  /** errno of an address range wrapping past 2^64 (docs/conformance.md §9-§10). */
  get overflowErrno(): number {
    return this.profile === 'linux-6.18' ? EOVERFLOW : EINVAL;
  }

  nextSeq(): number {
    return ++this.seq;
  }

  createGroup(o: RefGroupOptions): RefGroup {
    const g = new RefGroup(this, FIRST_GROUP_ID + this.groups.length, o);
    this.groups.push(g);
    return g;
  }

  createProcess(o: RefProcessOptions = {}): RefProcess {
    const p = new RefProcess(this, o);
    this.processes.push(p);
    return p;
  }

  /** The whole model as plain data (the Wasm engine's inspect() shape; heapUsed is always 0). */
  inspect(): RefSnapshot {
    const containers = this.containers.filter((c) => c.alive).map((c) => ({
      fd: c.fd,
      iommu: c.iommu,
      tracking: c.tracking,
      dmaAvail: c.iommu ? c.dmaAvail : this.dmaEntryLimit,
      nonPinnedGroups: c.nonPinnedGroups,
      vaddrInvalidCount: c.vaddrInvalidCount,
      groups: c.groups.map((g) => g.id),
      dmas: c.dmas.map((d) => ({
        iova: d.iova,
        size: d.size,
        vaddr: d.vaddr,
        prot: d.prot,
        iommuMapped: d.iommuMapped,
        vaddrInvalid: d.vaddrInvalid,
        lockCap: d.lockCap,
        pins: d.pinList(),
        bitmap: d.bitmapHex(),
      })),
    }));
    return { containers, processes: this.processes.map((p) => ({ lockedVm: p.lockedVm })), heapUsed: 0 };
  }
}

/** A reference engine (async like the Wasm engine's createEngine). */
export async function createReferenceEngine(o: RefEngineOptions = {}): Promise<RefEngine> {
  return new RefEngine(o);
}

/** The same, under the Wasm engine's name, for VFIO_DIRTY_ENGINE=reference. */
export const createEngine = createReferenceEngine;
