// A container: what /dev/vfio/vfio opens. It collects groups (SET_CONTAINER), then selects an
// IOMMU driver (SET_IOMMU), which is released again when the last group leaves (docs/conformance.md
// §2.7).
import { EBUSY, EDEADLK, EINVAL, ENODEV, EPERM } from '../../assembly/constants.js';
import type { Engine } from '../engine.js';
import type { Group } from './group.js';
import { Type1 } from './type1.js';
import { uapi } from '../uapi.js';
import type { Process } from '../process.js';
import { vmmDrop, vmmDropIfUnused, vmmTake } from '../ioasid/vfio_pasid.js';

const { VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU, VFIO_DMA_CC_IOMMU, VFIO_UNMAP_ALL, VFIO_UPDATE_VADDR } = uapi;

export class Container {
  readonly engine: Engine;
  /** Creation order, for inspect(). */
  readonly seq: number;
  /** The fd number it was first opened as, for inspect(). */
  readonly firstFd: number;
  /** Groups set to this container, in order. */
  readonly groups: Group[] = [];
  /** Open fds referring to this container. */
  fds = 1;
  /** The selected IOMMU driver's state, or null before SET_IOMMU. */
  iommu: Type1 | null = null;
  /**
   * True while one of this container's dma_unmap ops runs (an UNMAP notifying its drivers): calls
   * that would change its groups, page sizes or tracking state then answer -EDEADLK.
   */
  get notifying(): boolean {
    return this.iommu?.inCallback ?? false;
  }

  constructor(engine: Engine, seq: number, fd: number) {
    this.engine = engine;
    this.seq = seq;
    this.firstFd = fd;
  }

  /** VFIO_CHECK_EXTENSION: 1 or 0 (docs/conformance.md §3.2). */
  checkExtension(ext: number): number {
    const t = this.iommu;
    switch (ext) {
      case VFIO_TYPE1_IOMMU:
      case VFIO_TYPE1v2_IOMMU:
      case VFIO_UNMAP_ALL:
        return 1;
      case VFIO_UPDATE_VADDR:
        return t && t.emulatedGroups.length === 0 ? 1 : 0;
      case VFIO_DMA_CC_IOMMU:
        return t ? 1 : 0; // every modelled domain enforces coherency; none at all also answers 1
      default:
        return 0;
    }
  }

  /**
   * VFIO_SET_IOMMU: 0 or -errno; attaches every group in order (docs/conformance.md §2.4). A
   * `syswidePasid` group on TYPE1v2 takes `proc`'s vmm first (docs/conformance.md §15.6).
   */
  setIommu(type: number, proc: Process): number {
    if (this.iommu?.inCallback) return -EDEADLK; // the kernel takes the group lock first
    if (this.groups.length === 0 || this.iommu) return -EINVAL;
    if (type !== VFIO_TYPE1_IOMMU && type !== VFIO_TYPE1v2_IOMMU && type !== VFIO_UNMAP_ALL) return -ENODEV;
    if (type === VFIO_UNMAP_ALL) return -EINVAL; // type1 answers the extension but cannot open it
    const e = this.engine;
    const t = Type1.open(e.core, e.profile, type === VFIO_TYPE1v2_IOMMU, e.dmaEntryLimit);
    if (typeof t === 'number') return t;
    const done: Group[] = [];
    for (const g of this.groups) {
      let r = g.syswidePasid && t.v2 ? vmmTake(this, proc) : 0;
      if (r >= 0) r = t.attachGroup(g);
      if (r < 0) {
        for (const d of done.reverse()) t.detachGroup(d);
        vmmDrop(this);
        t.release();
        return r;
      }
      done.push(g);
    }
    this.iommu = t;
    return 0;
  }

  /**
   * VFIO_GROUP_SET_CONTAINER after the fd checks: 0 or -errno; -EDEADLK inside a dma_unmap op of
   * this container (the running UNMAP's groups and page sizes must not change under it).
   */
  addGroup(g: Group, proc: Process): number {
    if (this.notifying) return -EDEADLK;
    if (!g.viable) return -EPERM;
    if (this.iommu) {
      const t = this.iommu;
      const took = g.syswidePasid && t.v2 && !this.groups.some((o) => o.syswidePasid);
      if (took) {
        const v = vmmTake(this, proc);
        if (v < 0) return v;
      }
      const r = t.attachGroup(g);
      if (r < 0) {
        if (took) vmmDrop(this);
        return r;
      }
    }
    g.container = this;
    this.groups.push(g);
    return 0;
  }

  /** Detaches `g` (UNSET_CONTAINER or the group file's release); the last group releases the driver. */
  removeGroup(g: Group): void {
    if (this.iommu && g.attached) this.iommu.detachGroup(g);
    this.groups.splice(this.groups.indexOf(g), 1);
    g.container = null;
    vmmDropIfUnused(this);
    if (this.groups.length === 0 && this.iommu) {
      this.iommu.release();
      this.iommu = null;
    }
    this.engine.forgetIfUnused(this);
  }

  /**
   * VFIO_GROUP_UNSET_CONTAINER checks: no container -> EINVAL; inside a dma_unmap op of that
   * container -> EDEADLK; device fds still open -> EBUSY.
   */
  static unsetContainer(g: Group): number {
    if (!g.container) return -EINVAL;
    if (g.container.notifying) return -EDEADLK;
    if (g.file && g.file.deviceFds > 0) return -EBUSY;
    g.container.removeGroup(g);
    return 0;
  }
}
