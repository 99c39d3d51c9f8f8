// A VM (struct kvm): its references, memslots, vCPUs, dirty-log mode, write tracking and
// KVM-VFIO device. The `Kvm` object is also the handle device models hold (docs/conformance.md
// §19.1): one object per VM, holding no reference of its own.
import { ESRCH } from '../../assembly/constants.js';
import type { Engine } from '../engine.js';
import type { Process } from '../process.js';
import type { Core } from '../wasm.js';
import { checkU64 } from './args.js';
import { callbackScope } from './callbacks.js';
import type { KvmVfio } from './kvm_vfio.js';
import type { Memslot } from './memslot.js';
import {
  gfnIsWriteTracked, pageTrackRegister, pageTrackUnregister, writeTrackAdd, writeTrackCount,
  writeTrackRemove, type PageTrackNotifierNode,
} from './page_track.js';
import { gfnToHva } from './memslot.js';
import type { Vcpu } from './vcpu.js';

/** The live VMs of each engine, in creation order (for inspection). */
const live = new WeakMap<Engine, Set<Kvm>>();

/** The engine's VMs not yet destroyed, in creation order. */
export function liveVms(engine: Engine): Kvm[] {
  return [...(live.get(engine) ?? [])];
}

/** A VM. Methods answer -ESRCH (-3n) once it is destroyed (docs/conformance.md §19.1). */
export class Kvm {
  readonly engine: Engine;
  /** The process whose memory the memslots name. */
  readonly proc: Process;
  /** The core's slot tables (0 once destroyed). */
  vm: number;
  private users = 1;
  /** KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 value: 0 fetch-and-clear; bit 0 manual, bit 1 INITIALLY_SET. */
  manualProtect = 0;
  /** Dirty ring bytes per vCPU; 0 in bitmap mode. */
  ringSize = 0;
  /** vCPUs in creation order. */
  readonly vcpus: Vcpu[] = [];
  /** Memslots by number (as_id << 16 | id). */
  readonly slots = new Map<number, Memslot>();
  /** Memslots by core handle. */
  readonly byHandle = new Map<number, Memslot>();
  /** Registered page-track nodes, newest first. */
  readonly nodes: PageTrackNotifierNode[] = [];
  /** The VM's KVM-VFIO device, or null. */
  kvmVfio: KvmVfio | null = null;

  constructor(engine: Engine, proc: Process, vm: number) {
    this.engine = engine;
    this.proc = proc;
    this.vm = vm;
    let set = live.get(engine);
    if (!set) live.set(engine, (set = new Set()));
    set.add(this);
  }

  get core(): Core {
    return this.engine.core;
  }

  /** The references that keep the VM alive (docs/conformance.md §19.1); 0 once destroyed. */
  get usersCount(): number {
    return this.users;
  }

  /** True once destroyed. */
  get destroyed(): boolean {
    return this.users === 0;
  }

  /** kvm_get_kvm: one more reference. */
  get(): void {
    this.users++;
  }

  /** kvm_put_kvm: one reference fewer; the last one destroys the VM (no callback runs). */
  put(): void {
    if (this.users === 0) return;
    if (--this.users > 0) return;
    for (const v of this.vcpus) v.destroy();
    this.core.x.kvm_vm_free(this.vm);
    this.vm = 0;
    this.slots.clear();
    this.byHandle.clear();
    this.nodes.length = 0;
    live.get(this.engine)?.delete(this);
  }

  /**
   * writeTrackAddGfn: count + 1 (saturating at 65535) and protect: 0, -EINVAL without a slot,
   * -ESRCH.
   */
  writeTrackAddGfn(gfn: bigint): number {
    return writeTrackAdd(this, gfn);
  }

  /** writeTrackRemoveGfn: count − 1 (not below 0), protection unchanged: 0, -EINVAL, -ESRCH. */
  writeTrackRemoveGfn(gfn: bigint): number {
    return writeTrackRemove(this, gfn);
  }

  /** Whether the gfn's count is above 0 (false without a slot or once destroyed). */
  gfnIsWriteTracked(gfn: bigint): boolean {
    return gfnIsWriteTracked(this, gfn);
  }

  /** The gfn's count, -EINVAL without an address-space-0 slot, -ESRCH. */
  writeTrackCount(gfn: bigint): number {
    return writeTrackCount(this, gfn);
  }

  /** Registers a node at the head (a VM reference): 0, -EEXIST, -ESRCH. */
  pageTrackRegisterNotifier(node: PageTrackNotifierNode): number {
    callbackScope(this.engine).forbidIn('track', 'pageTrackRegisterNotifier');
    return pageTrackRegister(this, node);
  }

  /** Unregisters a node and drops its reference; an unknown node is ignored. */
  pageTrackUnregisterNotifier(node: PageTrackNotifierNode): void {
    callbackScope(this.engine).forbidIn('track', 'pageTrackUnregisterNotifier');
    pageTrackUnregister(this, node);
  }

  /** The host address of gfn in its address-space-0 slot (not READONLY); -14n; -3n. */
  gfnToHva(gfn: bigint): bigint {
    checkU64(gfn, 'gfn');
    if (this.destroyed) return -BigInt(ESRCH);
    return gfnToHva(this, gfn);
  }
}
