// --tracking iommufd: the passthrough device is bound through its cdev to an iommufd context, and
// the IOMMU's dirty bits report its writes, set up and read the way QEMU's iommufd backend does
// (hw/vfio/iommufd.c, container-base.c):
// - /dev/iommu, the device cdev, BIND, IOAS_ALLOC, GET_HW_INFO (the dirty capability needed),
//   HWPT_ALLOC with DIRTY_TRACKING on the IOAS, ATTACH to that HWPT, IOAS_MAP of every RAM slot;
// - start: SET_DIRTY_TRACKING(ENABLE); each harvest: GET_DIRTY_BITMAP per RAM section;
// - stop: SET_DIRTY_TRACKING(disable); the tear-down reads the dirty bits with NO_CLEAR before it
//   unmaps (iommufd has no unmap-with-bitmap; what it finds is counted in `leftAtUnmap`).
import { EOPNOTSUPP } from '../../assembly/constants.js';
import { DirtyBitmap } from '../core/dirty_bitmap.js';
import { vfioError } from '../errors.js';
import { uapi } from '../uapi.js';
import type { Core } from '../wasm.js';
import { GUEST_PAGE, type RamSlot } from './guest_layout.js';
import { SectionReader, type Section, type TrackProcess } from './section_reader.js';
import type { PassthroughTracker, PtDevice } from './tracking.js';
import {
  attachPt, bindIommufd, destroy, detachPt, getDirtyBitmap, hwInfo, hwptAlloc, ioasAlloc, ioasMapFixed, ioasUnmap, setDirtyTracking, u32At, u64At,
} from './uapi_args.js';

/** The passthrough device on iommufd, with a dirty-tracking HWPT over guest RAM. */
export class IommufdTracker implements PassthroughTracker {
  /** Guest pages the NO_CLEAR read before the final unmap found dirty (0 after a last harvest). */
  leftAtUnmap = 0;
  private readonly proc: TrackProcess;
  private readonly core: Core;
  private readonly slots: readonly RamSlot[];
  private readonly pageSize: bigint;
  private readonly gpaPages: number;
  private iommufd = -1;
  private cdev = -1;
  private ioas = 0;
  private hwpt = 0;
  private attached = false;
  private readonly mapped: RamSlot[] = [];
  private reader: SectionReader | null = null;

  /**
   * Binds the device, makes the IOAS and the dirty-tracking HWPT, attaches, maps every RAM slot at
   * its GPA from the VMM's memory at `base` (RAM index order).
   * @throws VfioError naming the call that failed (what was set up is torn down)
   */
  constructor(core: Core, proc: TrackProcess, dev: PtDevice, base: bigint, slots: readonly RamSlot[], gpaPages: number, pageSize: number) {
    this.core = core;
    this.proc = proc;
    this.slots = slots;
    this.gpaPages = gpaPages;
    this.pageSize = BigInt(pageSize);
    try {
      this.iommufd = this.fd(proc.open('/dev/iommu'), 'open(/dev/iommu)');
      if (dev.cdevPath === null) throw vfioError(-EOPNOTSUPP, 'open(cdev)', undefined, 'the passthrough device has no cdev');
      this.cdev = this.fd(proc.open(dev.cdevPath), `open(${dev.cdevPath})`);
      const bind = bindIommufd(this.iommufd);
      this.call(this.cdev, uapi.VFIO_DEVICE_BIND_IOMMUFD, bind, 'VFIO_DEVICE_BIND_IOMMUFD');
      const devId = u32At(bind, 12);
      const alloc = ioasAlloc();
      this.iommu(uapi.IOMMU_IOAS_ALLOC, alloc, 'IOMMU_IOAS_ALLOC');
      this.ioas = u32At(alloc, 8);
      const info = hwInfo(devId);
      this.iommu(uapi.IOMMU_GET_HW_INFO, info, 'IOMMU_GET_HW_INFO');
      if (!(u64At(info, 32) & BigInt(uapi.IOMMU_HW_CAP_DIRTY_TRACKING))) {
        throw vfioError(-EOPNOTSUPP, 'IOMMU_GET_HW_INFO', undefined, 'the IOMMU has no dirty tracking');
      }
      const hwpt = hwptAlloc(uapi.IOMMU_HWPT_ALLOC_DIRTY_TRACKING, devId, this.ioas);
      this.iommu(uapi.IOMMU_HWPT_ALLOC, hwpt, 'IOMMU_HWPT_ALLOC(DIRTY_TRACKING)');
      this.hwpt = u32At(hwpt, 16);
      this.call(this.cdev, uapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT, attachPt(this.hwpt), 'VFIO_DEVICE_ATTACH_IOMMUFD_PT');
      this.attached = true;
      for (const s of slots) {
        const va = base + BigInt(s.firstRamPage) * BigInt(GUEST_PAGE);
        this.iommu(uapi.IOMMU_IOAS_MAP, ioasMapFixed(this.ioas, va, BigInt(s.size), BigInt(s.gpa)), 'IOMMU_IOAS_MAP');
        this.mapped.push(s);
      }
      this.reader = new SectionReader(core, proc, slots, pageSize);
    } catch (e) {
      try {
        this.teardown();
      } catch {
        // The set-up's own error is the one to report.
      }
      throw e;
    }
  }

  /** SET_DIRTY_TRACKING(ENABLE) on the HWPT. */
  start(): void {
    this.iommu(uapi.IOMMU_HWPT_SET_DIRTY_TRACKING, setDirtyTracking(this.hwpt, true), 'IOMMU_HWPT_SET_DIRTY_TRACKING(ENABLE)');
  }

  /** GET_DIRTY_BITMAP per RAM section, merged into `into`. */
  harvest(into: DirtyBitmap): void {
    this.read(into, false);
  }

  /** SET_DIRTY_TRACKING(disable): the dirty bits stay. */
  stop(): void {
    this.iommu(uapi.IOMMU_HWPT_SET_DIRTY_TRACKING, setDirtyTracking(this.hwpt, false), 'IOMMU_HWPT_SET_DIRTY_TRACKING(disable)');
  }

  /** NO_CLEAR read, then the unmaps, DETACH, the HWPT and IOAS destroyed, the fds closed. */
  dispose(): void {
    if (this.reader && this.mapped.length) {
      const left = DirtyBitmap.create(this.core, this.gpaPages);
      try {
        this.read(left, true);
        this.leftAtUnmap += left.count();
      } finally {
        left.dispose();
      }
    }
    this.teardown();
  }

  private read(into: DirtyBitmap, noClear: boolean): void {
    const what = `IOMMU_HWPT_GET_DIRTY_BITMAP${noClear ? '(NO_CLEAR)' : ''}`;
    this.reader!.read(into, what, (s: Section, data: bigint) =>
      this.proc.ioctl(this.iommufd, uapi.IOMMU_HWPT_GET_DIRTY_BITMAP, getDirtyBitmap(this.hwpt, s.iova, s.length, this.pageSize, data, noClear)));
  }

  /** Undoes whatever the set-up did, in reverse, from wherever a partial set-up stopped. */
  private teardown(): void {
    this.reader?.dispose();
    this.reader = null;
    while (this.mapped.length) {
      const s = this.mapped.pop()!;
      this.iommu(uapi.IOMMU_IOAS_UNMAP, ioasUnmap(this.ioas, BigInt(s.gpa), BigInt(s.size)), 'IOMMU_IOAS_UNMAP');
    }
    if (this.attached) this.call(this.cdev, uapi.VFIO_DEVICE_DETACH_IOMMUFD_PT, detachPt(), 'VFIO_DEVICE_DETACH_IOMMUFD_PT');
    this.attached = false;
    for (const id of [this.hwpt, this.ioas]) if (id) this.iommu(uapi.IOMMU_DESTROY, destroy(id), 'IOMMU_DESTROY');
    this.hwpt = this.ioas = 0;
    for (const fd of [this.cdev, this.iommufd]) if (fd >= 0) this.proc.close(fd);
    this.cdev = this.iommufd = -1;
  }

  private iommu(request: number, arg: Uint8Array, what: string): void {
    this.call(this.iommufd, request, arg, what);
  }

  private call(fd: number, request: number, arg: Uint8Array, what: string): void {
    const r = this.proc.ioctl(fd, request, arg);
    if (r < 0) throw vfioError(r, what);
  }

  private fd(r: number, what: string): number {
    if (r < 0) throw vfioError(r, what);
    return r;
  }
}
