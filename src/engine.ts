// The engine: one Wasm core instance, the host's devices and the processes using them. It owns
// one part per subsystem (src/vfio today; src/kvm, src/iommufd, src/ioasid, src/accel next), each
// answering `proc.open` for its paths and taking part in process exit (src/file.ts).
import { Core, type CoreFlavour } from './wasm.js';
import type { Subsystem } from './file.js';
import { Container } from './vfio/container.js';
import { vfioFiles } from './vfio/files.js';
import { Group, type GroupOptions } from './vfio/group.js';
import { Process, type ProcessOptions } from './process.js';
import { profileOf, type Profile, type ProfileName } from './vfio/profile.js';
import { VfioContainer } from './vfio/typed.js';
import { snapshot, type EngineSnapshot } from './vfio/inspect.js';
import { kvmFiles } from './kvm/files.js';

export interface EngineOptions {
  /** Errno table of SPEC §8 item 13: 'linux-6.18' (default) or 'linux-6.6'. */
  profile?: ProfileName;
  /** The type1 module parameter dma_entry_limit; default 65535. */
  dmaEntryLimit?: number;
  /** Bytes of Wasm memory the core may use; default (and at most) just under 2 GiB. */
  memoryLimit?: number;
  /** Which build of the core: 'release' (default) or 'debug' (assertions kept). */
  flavour?: CoreFlavour;
  /** KVM_USER_MEM_SLOTS: memslot ids per address space, 1..32764; default 32764. */
  kvmUserMemSlots?: number;
  /** KVM_MAX_VCPUS, 1..4096 (vCPU ids below 4 × this); default 1024. */
  kvmMaxVcpus?: number;
}

export class Engine {
  readonly core: Core;
  readonly profile: Profile;
  readonly dmaEntryLimit: number;
  /** Groups by number. */
  readonly groups = new Map<number, Group>();
  readonly processes: Process[] = [];
  /** Containers that are open or still hold groups. */
  readonly containers = new Set<Container>();
  /** The subsystems, in the order `proc.open` asks them about a path. */
  readonly subsystems: Subsystem[] = [vfioFiles, kvmFiles];
  /** KVM_USER_MEM_SLOTS (SPEC-KVM §11). */
  kvmUserMemSlots = 32764;
  /** KVM_MAX_VCPUS (SPEC-KVM §11). */
  kvmMaxVcpus = 1024;
  private nextGroupId = 1;
  private seq = 0;

  private constructor(core: Core, profile: Profile, dmaEntryLimit: number) {
    this.core = core;
    this.profile = profile;
    this.dmaEntryLimit = dmaEntryLimit;
  }

  /** Compiles the core once per process, then instantiates it for this engine. */
  static async create(o: EngineOptions = {}): Promise<Engine> {
    const profile = profileOf(o.profile);
    const limit = o.dmaEntryLimit ?? 65535;
    if (!Number.isInteger(limit) || limit < 0 || limit > 0xffff_ffff) {
      throw new RangeError('dmaEntryLimit must be an integer in [0, 2^32)');
    }
    const slots = intOption(o.kvmUserMemSlots, 32764, 1, 32764, 'kvmUserMemSlots');
    const vcpus = intOption(o.kvmMaxVcpus, 1024, 1, 4096, 'kvmMaxVcpus');
    const core = await Core.create({ flavour: o.flavour, memoryLimit: o.memoryLimit });
    const e = new Engine(core, profile, limit);
    e.kvmUserMemSlots = slots;
    e.kvmMaxVcpus = vcpus;
    return e;
  }

  /** A new IOMMU group with its devices (CONTRACT.md "The host"). */
  createGroup(o: GroupOptions = {}): Group {
    const g = new Group(this, this.nextGroupId++, o);
    this.groups.set(g.id, g);
    return g;
  }

  /** A new user process. */
  createProcess(o: ProcessOptions = {}): Process {
    const p = new Process(this, o);
    this.processes.push(p);
    return p;
  }

  /** Called by `proc.exit()` once the process has released everything. */
  forgetProcess(p: Process): void {
    const i = this.processes.indexOf(p);
    if (i >= 0) this.processes.splice(i, 1);
  }

  /** Opens /dev/vfio/vfio in `proc` and returns the typed API over that container fd. */
  openContainer(proc: Process): VfioContainer {
    return new VfioContainer(proc, proc.open('/dev/vfio/vfio'));
  }

  /** The next value of the engine's sequence (creation and join order). */
  nextSeq(): number {
    return ++this.seq;
  }

  /** Called by Process.open for /dev/vfio/vfio. */
  newContainer(fd: number): Container {
    const c = new Container(this, this.nextSeq(), fd);
    this.containers.add(c);
    return c;
  }

  /** Drops a container that has neither fds nor groups. */
  forgetIfUnused(c: Container): void {
    if (c.fds === 0 && c.groups.length === 0) this.containers.delete(c);
  }

  /** Makes the nth Wasm allocation from now fail with ENOMEM (1: the next one); 0 disarms. */
  failNthAllocation(n: number): void {
    this.core.x.heap_fail_nth(n);
  }

  /** Bytes held by the Wasm heap. */
  memoryInUse(): number {
    return this.core.heapUsed();
  }

  /**
   * A deterministic snapshot of the whole model, for tests and debugging. `bitmaps: false` leaves
   * the dirty bitmaps out (null), for mappings whose hex would be hundreds of MiB.
   */
  inspect(o: { bitmaps?: boolean } = {}): EngineSnapshot {
    return snapshot(this, o.bitmaps ?? true);
  }
}

/** An integer option in [lo, hi], or its default; RangeError outside. */
function intOption(v: number | undefined, dflt: number, lo: number, hi: number, name: string): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < lo || v > hi) throw new RangeError(`${name} must be an integer in [${lo}, ${hi}]`);
  return v;
}
