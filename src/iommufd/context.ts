// An iommufd context (/dev/iommu): its object-id space shared by IOASes, HWPTs and bound devices
// (ids from 1, lowest free first, reused after destruction), and the file behind its fds. The
// context is released, destroying every object, once its fd is closed and no device is bound.
import type { Engine } from '../engine.js';
import type { IoctlArg, OpenFile } from '../file.js';
import type { Process } from '../process.js';
import type { DeviceBinding } from './device.js';
import { hwptDestroy, type Hwpt } from './hwpt.js';
import type { Ioas } from './ioas.js';
import { iommufdIoctl } from './ioctl.js';

export type IommufdObject = Ioas | Hwpt | DeviceBinding;

/** The unreleased contexts of each engine, in creation order (for inspection). */
const live = new WeakMap<Engine, Set<IommufdCtx>>();

/** The engine's iommufd contexts not yet released, in creation order. */
export function liveContexts(engine: Engine): IommufdCtx[] {
  return [...(live.get(engine) ?? [])];
}

export class IommufdCtx {
  readonly engine: Engine;
  /** Objects by id. */
  readonly objects = new Map<number, IommufdObject>();
  /** The /dev/iommu fd is still open. */
  fdOpen = true;
  /** Devices bound to this context: each holds it. */
  bindings = 0;

  constructor(engine: Engine) {
    this.engine = engine;
    let set = live.get(engine);
    if (!set) live.set(engine, (set = new Set()));
    set.add(this);
  }

  /** The lowest free id. */
  allocId(): number {
    let id = 1;
    while (this.objects.has(id)) id++;
    return id;
  }

  /** The object `id` if it has type `type`, else undefined (the caller's ENOENT). */
  get<K extends IommufdObject['type']>(id: number, type: K): Extract<IommufdObject, { type: K }> | undefined {
    const o = this.objects.get(id);
    return o && o.type === type ? (o as Extract<IommufdObject, { type: K }>) : undefined;
  }

  /** Releases the context once nothing holds it: every object is destroyed. */
  releaseIfUnused(): void {
    if (this.fdOpen || this.bindings > 0) return;
    for (const o of [...this.objects.values()]) if (o.type === 'hwpt') hwptDestroy(o);
    this.objects.clear();
    live.get(this.engine)?.delete(this);
  }
}

/** An fd of /dev/iommu. */
export class IommufdFile implements OpenFile {
  readonly kind = 'iommufd';
  readonly ctx: IommufdCtx;

  constructor(ctx: IommufdCtx) {
    this.ctx = ctx;
  }

  ioctl(proc: Process, request: number, arg: IoctlArg): number {
    return iommufdIoctl(proc, this.ctx, request, arg);
  }

  close(): void {
    this.ctx.fdOpen = false;
    this.ctx.releaseIfUnused();
  }
}
