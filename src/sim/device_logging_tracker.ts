// --tracking device: the passthrough device reports its own writes through VFIO device DMA
// logging, set up and read the way QEMU does (hw/vfio/migration.c, listener.c):
// - the device sits in a type1 container of its own (its IOMMU mappings: every RAM slot), which
//   does not track: device logging is chosen for a container whose devices can all log;
// - at realize: VFIO_DEVICE_FEATURE MIGRATION GET (STOP_COPY needed), then PROBE of DMA logging;
// - START with the ranges QEMU builds from the RAM sections: the min/max of the sections below
//   4 GiB and of those above, two ranges at most, at the tracking page size; the device's tracker
//   holds --tracker-ranges ranges and merges more into these;
// - each harvest: DMA_LOGGING_REPORT per RAM section into a zeroed bitmap (section_reader.ts);
// - STOP after the last harvest.
import { EINVAL } from '../../assembly/constants.js';
import { DirtyBitmap } from '../core/dirty_bitmap.js';
import { vfioError } from '../errors.js';
import { uapi } from '../uapi.js';
import type { Core } from '../wasm.js';
import { GUEST_PAGE, type RamSlot } from './guest_layout.js';
import { vmmProcess } from './local_kvm.js';
import { SectionReader, type TrackProcess } from './section_reader.js';
import type { SimContainer, SimEngine, SimGroup, SimProcess } from './sim_engine.js';
import type { PassthroughTracker } from './tracking.js';
import { loggingProbe, loggingReport, loggingStart, loggingStop, migrationGet, struct, u64At } from './uapi_args.js';

const U32_MAX = 0xffff_ffffn;
const U64_MAX = (1n << 64n) - 1n;

/** A DMA_LOGGING range: IOVA and length, bytes. */
export interface LoggingRange {
  iova: bigint;
  length: bigint;
}

/**
 * QEMU's logging ranges for RAM sections `slots`: the extents of the sections ending at or below
 * 4 GiB - 1 and of the others, in that order, each present when it has a section; widened to
 * multiples of `pageSize` (START's mask test refuses anything else), so no RAM is left out.
 */
export function loggingRanges(slots: readonly RamSlot[], pageSize: number): LoggingRange[] {
  const pairs = [{ min: U32_MAX, max: 0n }, { min: U64_MAX, max: 0n }];
  for (const s of slots) {
    const iova = BigInt(s.gpa);
    const end = iova + BigInt(s.size) - 1n;
    const p = end <= U32_MAX ? pairs[0] : pairs[1];
    if (iova < p.min) p.min = iova;
    if (end > p.max) p.max = end;
  }
  const ps = BigInt(pageSize);
  return pairs.filter((p) => p.max !== 0n).map((p) => {
    const iova = (p.min / ps) * ps;
    const end = ((p.max + ps) / ps) * ps; // one past the last byte, rounded up
    return { iova, length: end - iova };
  });
}

/** The passthrough device's DMA logging, driven through its device fd. */
export class DeviceLoggingTracker implements PassthroughTracker {
  private readonly proc: TrackProcess;
  private readonly group: SimGroup;
  private container: SimContainer | null = null;
  private groupFd = -1;
  private attached = false;
  private fd = -1;
  private readonly reader: SectionReader;
  private readonly slots: readonly RamSlot[];
  private readonly pageSize: number;
  private logging = false;

  /**
   * The device's own container (which does not track: QEMU uses device logging for a container
   * whose devices can all log, and the vGPU in the VM's container cannot) in the VMM's process
   * `owner`, the RAM slots mapped from the VMM's memory at `base` (RAM order), the device fd; the
   * MIGRATION and logging probes.
   * @throws VfioError when a call fails or the device cannot migrate or log (what was set up is
   *   torn down, the group detached and its fd closed)
   */
  constructor(core: Core, engine: SimEngine, owner: SimProcess, group: SimGroup, name: string, base: bigint, slots: readonly RamSlot[], pageSize: number) {
    const proc = (this.proc = vmmProcess(owner));
    this.group = group;
    this.slots = slots;
    this.pageSize = pageSize;
    try {
      const container = (this.container = engine.openContainer(owner));
      // The typed API's attach uses the group fd the process has open: opened here, so that it is
      // closed here. A container whose attach opens the group itself (attachedGroupFd) needs none.
      if (!container.attachedGroupFd) {
        this.groupFd = proc.open(`/dev/vfio/${group.id}`);
        if (this.groupFd < 0) throw vfioError(this.groupFd, `open(/dev/vfio/${group.id})`);
      }
      container.attach(group);
      this.attached = true;
      container.setIommu('type1v2');
      for (const s of slots) container.map({ iova: BigInt(s.gpa), vaddr: base + BigInt(s.firstRamPage) * BigInt(GUEST_PAGE), size: BigInt(s.size) });
      this.fd = container.openDevice(group, name);
      const mig = migrationGet();
      this.ioctl(mig, 'VFIO_DEVICE_FEATURE(MIGRATION GET)');
      if (!(u64At(mig, 8) & BigInt(uapi.VFIO_MIGRATION_STOP_COPY))) {
        throw vfioError(-EINVAL, 'VFIO_DEVICE_FEATURE(MIGRATION GET)', undefined, 'the device cannot migrate (no STOP_COPY)');
      }
      this.ioctl(loggingProbe(), 'VFIO_DEVICE_FEATURE(DMA_LOGGING PROBE)');
      this.reader = new SectionReader(core, proc, slots, pageSize);
    } catch (e) {
      try {
        this.closeAll();
      } catch {
        // The set-up's own error is the one to report.
      }
      throw e;
    }
  }

  /** DMA_LOGGING_START with QEMU's ranges at the tracking page size. */
  start(): void {
    const ranges = loggingRanges(this.slots, this.pageSize);
    const addr = this.proc.mmap(ranges.length * 16);
    ranges.forEach((r, i) => this.proc.write(addr + BigInt(16 * i), struct(16, [[0, r.iova], [8, r.length]])));
    this.ioctl(loggingStart(BigInt(this.pageSize), ranges.length, addr), 'VFIO_DEVICE_FEATURE(DMA_LOGGING_START)');
    this.logging = true;
  }

  /** DMA_LOGGING_REPORT per RAM section, merged into `into`. */
  harvest(into: DirtyBitmap): void {
    const p = BigInt(this.pageSize);
    this.reader.read(into, 'VFIO_DEVICE_FEATURE(DMA_LOGGING_REPORT)', (s, bitmap) =>
      this.proc.ioctl(this.fd, uapi.VFIO_DEVICE_FEATURE, loggingReport(s.iova, s.length, p, bitmap)));
  }

  /** DMA_LOGGING_STOP. */
  stop(): void {
    if (!this.logging) return;
    this.logging = false;
    this.ioctl(loggingStop(), 'VFIO_DEVICE_FEATURE(DMA_LOGGING_STOP)');
  }

  /** The device fd closes, the container's mappings go and it closes. */
  dispose(): void {
    this.reader.dispose();
    this.closeAll();
  }

  /** The device fd, the mappings, the group's attachment, the container and the group fd go. */
  private closeAll(): void {
    if (this.fd >= 0) this.proc.close(this.fd);
    this.fd = -1;
    if (this.container) {
      if (this.attached) {
        this.container.unmapAll();
        this.container.detach(this.group);
      }
      this.attached = false;
      this.container.close();
      this.container = null;
    }
    if (this.groupFd >= 0) this.proc.close(this.groupFd);
    this.groupFd = -1;
  }

  private ioctl(arg: Uint8Array, what: string): void {
    const r = this.proc.ioctl(this.fd, uapi.VFIO_DEVICE_FEATURE, arg);
    if (r < 0) throw vfioError(r, what);
  }
}
