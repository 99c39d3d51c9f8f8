// The engine: one Wasm core instance, the host's devices and the processes using them. It owns
// one part per subsystem (src/vfio today; src/kvm, src/iommufd, src/ioasid, src/accel next), each
// answering `proc.open` for its paths and taking part in process exit (src/file.ts).
import { Core } from './wasm.js';
import type { CoreRecycler } from './core_recycler.js';
import type { Subsystem } from './file.js';
import { checkEngineOptions, type EngineOptions } from './engine_options.js';
import { Container } from './vfio/container.js';
import { vfioFiles } from './vfio/files.js';
import { iommufdFiles } from './iommufd/subsystem.js';
import { Group, type GroupOptions } from './vfio/group.js';
import { Process, type ProcessOptions } from './process.js';
import { profileOf, type Profile } from './vfio/profile.js';
import { assertOwnedBy, VfioContainer } from './vfio/typed.js';
import { snapshot, type EngineSnapshot } from './vfio/inspect.js';
import { Calls } from './ioasid/calls.js';
import { callbackScope } from './kvm/callbacks.js';
import { subsystemsSnapshot, type SubsystemsSnapshot } from './inspect_subsystems.js';
import { Ioasid } from './ioasid/ioasid.js';
import { Accelerators } from './accel/accelerators.js';
import type { Accelerator, AcceleratorOptions } from './accel/accelerator.js';
import { Sva } from './accel/sva.js';

import { kvmFiles } from './kvm/files.js';

export type { EngineOptions } from './engine_options.js';

export class Engine {
  readonly core: Core;
  readonly profile: Profile;
  readonly dmaEntryLimit: number;
  /** Groups by number. */
  readonly groups = new Map<number, Group>();
  readonly processes: Process[] = [];
  /** Containers that are open or still hold groups. */
  readonly containers = new Set<Container>();
  /** Shared accelerators (docs/conformance.md §16). */
  readonly accelerators = new Accelerators(this);
  /** Shared virtual addressing: process PASIDs and bonds (docs/conformance.md §16.2). */
  readonly sva = new Sva(this);
  /** The subsystems, in the order `proc.open` asks them about a path. */
  readonly subsystems: Subsystem[] = [vfioFiles, this.accelerators, iommufdFiles, kvmFiles];
  /** KVM_USER_MEM_SLOTS (docs/conformance.md §13.6). */
  kvmUserMemSlots = 32764;
  /** KVM_MAX_VCPUS (docs/conformance.md §13.6). */
  kvmMaxVcpus = 1024;
  /** What a callback may call, and deferred work (docs/conformance.md §15.5). */
  readonly calls = new Calls(() => callbackScope(this).forbid('a mutating engine call'));
  /** The IOASID allocator (docs/conformance.md §15). */
  readonly ioasid: Ioasid;
  /** Quota of each VM's PASID set. */
  readonly vfioPasidQuota: number;
  /** Devices created so far: the next device's index N (docs/conformance.md §20.1). */
  devicesCreated = 0;
  private nextGroupId = 1;
  private seq = 0;
  private disposedFlag = false;

  private constructor(core: Core, profile: Profile, dmaEntryLimit: number, vfioPasidQuota: number) {
    this.core = core;
    this.profile = profile;
    this.dmaEntryLimit = dmaEntryLimit;
    this.vfioPasidQuota = vfioPasidQuota;
    this.ioasid = new Ioasid(core, this.calls);
  }

  /**
   * Compiles the core once per process, then instantiates it for this engine. Options are checked
   * first (src/engine_options.ts): an unknown name or a wrong type is a TypeError, a value out of
   * range a RangeError. With `recycler`, the core's instance comes from it and goes back to it at
   * `dispose` (engines made one after another on one thread: src/compare/cell.ts).
   */
  static async create(options?: EngineOptions, recycler?: CoreRecycler): Promise<Engine> {
    const o = checkEngineOptions(options);
    const profile = profileOf(o.profile);
    const limit = o.dmaEntryLimit ?? 65535;
    const capacity = o.ioasidCapacity ?? 0x100000;
    const systemQuota = o.ioasidSystemQuota ?? 32768;
    const pasidQuota = o.vfioPasidQuota ?? 1000;
    const core = await Core.create({ flavour: o.flavour, memoryLimit: o.memoryLimit, recycler });
    const e = new Engine(core, profile, limit, pasidQuota);
    e.kvmUserMemSlots = o.kvmUserMemSlots ?? 32764;
    e.kvmMaxVcpus = o.kvmMaxVcpus ?? 1024;
    // The IOMMU driver at boot installs the capacity (docs/conformance.md §15.1).
    if (capacity > 0) {
      e.ioasid.installCapacity(capacity);
      if (systemQuota > 0) {
        const r = e.ioasid.allocSystemSet(systemQuota);
        if (r < 0) throw new RangeError(`ioasidSystemQuota ${systemQuota}: the system set cannot be made (errno ${-r})`);
      }
    }
    return e;
  }

  /** True once `dispose()` has run: every call on the engine then throws. */
  get isDisposed(): boolean {
    return this.disposedFlag;
  }

  /** Throws once the engine is disposed (every public method but `dispose` calls it). */
  private live(): void {
    if (this.disposedFlag) throw new Error('engine disposed');
  }

  /**
   * Every engine call that creates, removes or arms something calls it: throws once disposed, and
   * inside a KVM callback (a page-track notifier or an unlink callback), where only the KVM
   * write-track calls, `proc.read`/`proc.write` and the vendor-driver API may run
   * (docs/conformance.md §19.8).
   */
  private mutating(what: string): void {
    this.live();
    callbackScope(this).forbid(`engine.${what}`);
  }

  /**
   * A new IOMMU group with its devices (docs/conformance.md §2.2). Group numbers are never reused,
   * even after `group.remove()`: a Group held by the embedder cannot come to name another group.
   */
  createGroup(o: GroupOptions = {}): Group {
    this.mutating('createGroup');
    const g = new Group(this, this.nextGroupId, o);
    this.nextGroupId++;
    this.groups.set(g.id, g);
    return g;
  }

  /** A new shared accelerator run by the reference driver (docs/conformance.md §16.1). */
  createAccelerator(o: AcceleratorOptions = {}): Accelerator {
    this.mutating('createAccelerator');
    return this.accelerators.create(o);
  }

  /** A new user process. */
  createProcess(o: ProcessOptions = {}): Process {
    this.mutating('createProcess');
    const p = new Process(this, o);
    this.processes.push(p);
    return p;
  }

  /** Called by `proc.exit()` once the process has released everything. */
  forgetProcess(p: Process): void {
    const i = this.processes.indexOf(p);
    if (i >= 0) this.processes.splice(i, 1);
  }

  /** Called by `group.remove()`: the group's path is gone (its number is not handed out again). */
  forgetGroup(g: Group): void {
    this.groups.delete(g.id);
  }

  /**
   * Ends the engine: every process exits (in creation order), every group is removed, every
   * subsystem returns what it holds, and the Wasm instance is dropped so its memory can be
   * collected. Inside a callback (a driver's dma_unmap op, an IOASID notifier, getter or KVM callback,
   * an accelerator observer) it throws and changes nothing. Afterwards every call on the engine, its
   * groups and accelerators throws Error('engine disposed'), a process's calls say that it has
   * exited, and a typed container's calls throw EBADF (its fd is closed). Idempotent.
   */
  dispose(): void {
    if (this.disposedFlag) return;
    callbackScope(this).forbid('engine.dispose');
    if (this.calls.inCallback) throw new Error('engine.dispose() cannot run inside a callback');
    for (const c of this.containers) {
      if (c.notifying) throw new Error('engine.dispose() cannot run inside a dma_unmap callback');
    }
    for (const p of [...this.processes]) p.exit();
    for (const g of [...this.groups.values()]) g.remove(); // every fd was a process's: none is open
    for (const s of this.subsystems) s.dispose?.();
    this.disposedFlag = true;
    this.containers.clear();
    this.core.dispose('engine disposed');
  }

  /**
   * Opens /dev/vfio/vfio in `proc` and returns the typed API over that container fd. Throws
   * TypeError for a process of another engine.
   */
  openContainer(proc: Process): VfioContainer {
    this.mutating('openContainer');
    assertOwnedBy(this, proc, Process, 'process', 'openContainer');
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
    this.mutating('failNthAllocation');
    this.core.x.heap_fail_nth(n);
  }

  /** Bytes held by the Wasm heap. */
  memoryInUse(): number {
    this.live();
    return this.core.heapUsed();
  }

  /**
   * A deterministic, read-only snapshot of the whole model, for tests and debugging: type1
   * containers and processes, then VMs, iommufd contexts, the IOASID allocator and accelerators
   * (see `SubsystemsSnapshot`). `bitmaps: false` leaves the dirty bitmaps out (null), for
   * mappings or slots whose hex would be hundreds of MiB.
   */
  inspect(o: { bitmaps?: boolean } = {}): EngineSnapshot & SubsystemsSnapshot {
    this.live();
    const bitmaps = o.bitmaps ?? true;
    return { ...snapshot(this, bitmaps), ...this.core.unarmed(() => subsystemsSnapshot(this, bitmaps)) };
  }
}

