// engine.inspect() beyond type1: KVM, iommufd, IOASID and accelerator state as plain data,
// deterministic, read-only. Processes are named by their index in engine.processes (-1 once a
// process has exited); groups by number, devices by name.
import type { Engine } from './engine.js';
import type { Process } from './process.js';
import { liveVms, type Kvm } from './kvm/kvm.js';
import type { KvmVfio } from './kvm/kvm_vfio.js';
import { liveContexts } from './iommufd/context.js';

/** One memory slot of a VM. */
export interface SlotSnapshot {
  asId: number;
  id: number;
  flags: number;
  /** Base gfn and size in pages. */
  gfn: bigint;
  npages: number;
  uaddr: bigint;
  /** The slot's dirty bitmap as hex (byte 0 first), null without one or with `bitmaps: false`. */
  bitmap: string | null;
  /** Pages whose write-track count is above 0. */
  trackedPages: number;
}

/** A VM not yet destroyed. */
export interface KvmSnapshot {
  proc: number;
  usersCount: number;
  /** The manual-protect value (0 fetch-and-clear). */
  manualProtect: number;
  /** Dirty ring bytes per vCPU; 0 in bitmap mode. */
  ringSize: number;
  /** Ascending by address space, then slot id. */
  slots: SlotSnapshot[];
  /** In creation order. */
  vcpus: { id: number; ringUsed: number; softFull: boolean }[];
  /** Registered page-track nodes. */
  nodes: number;
  /** The KVM-VFIO device's entries in list order, or null without a device. */
  kvmVfio: { file: 'group' | 'device' | 'cdev'; group: number; device: string | null }[] | null;
}

/** An iommufd object. */
export type IommufdObjectSnapshot =
  | { id: number; type: 'ioas'; areas: { iova: bigint; length: bigint; userVa: bigint; prot: number }[] }
  | { id: number; type: 'hwpt'; ioas: number; auto: boolean; dirtyCapable: boolean; tracking: boolean; devices: number[] }
  | { id: number; type: 'device'; group: number; device: string; hwpt: number | null };

/** An iommufd context not yet released. */
export interface IommufdSnapshot {
  fdOpen: boolean;
  bindings: number;
  /** By ascending id. */
  objects: IommufdObjectSnapshot[];
}

/** An IOASID set with its IDs. */
export interface IoasidSetSnapshot {
  sid: number;
  owner: string;
  quota: number;
  destroying: boolean;
  /** Ascending: [id, state, users, owner]. */
  ids: [number, 'active' | 'free-pending', number, string][];
}

/** A live accelerator. */
export interface AcceleratorSnapshot {
  path: string;
  /** Hardware queues held, ascending. */
  queues: { qid: number; pasid: number; state: number; proc: number }[];
  /** Bonds in the order they began. */
  bonds: { proc: number; pasid: number; refs: number }[];
}

/** The subsystems' part of engine.inspect(). */
export interface SubsystemsSnapshot {
  kvm: KvmSnapshot[];
  iommufd: IommufdSnapshot[];
  ioasid: { capacity: number; available: number; systemSid: number; sets: IoasidSetSnapshot[] };
  accelerators: AcceleratorSnapshot[];
}

/** The snapshot of every subsystem beside type1 (`bitmaps: false` leaves slot bitmaps out). */
export function subsystemsSnapshot(e: Engine, bitmaps: boolean): SubsystemsSnapshot {
  const procIndex = (p: Process): number => e.processes.indexOf(p);
  const io = e.ioasid;
  return {
    kvm: liveVms(e).map((k) => kvmSnapshot(k, procIndex, bitmaps)),
    iommufd: liveContexts(e).map((c) => ({
      fdOpen: c.fdOpen,
      bindings: c.bindings,
      objects: [...c.objects.values()].sort((a, b) => a.id - b.id).map((o): IommufdObjectSnapshot => {
        if (o.type === 'ioas') {
          return { id: o.id, type: 'ioas', areas: o.iopt.areas.map((a) => ({ iova: a.iova, length: a.last - a.iova + 1n, userVa: a.userVa, prot: a.prot })) };
        }
        if (o.type === 'hwpt') {
          const devices = [...o.devices].map((d) => d.id).sort((a, b) => a - b);
          return { id: o.id, type: 'hwpt', ioas: o.ioas.id, auto: o.auto, dirtyCapable: o.dirtyCap, tracking: o.tracking, devices };
        }
        return { id: o.id, type: 'device', group: o.dev.group.id, device: o.dev.name, hwpt: o.hwpt?.id ?? null };
      }),
    })),
    ioasid: {
      capacity: io.getCapacity(),
      available: io.getAvailable(),
      systemSid: io.systemSid,
      sets: io.allSets().map((s) => ({
        sid: s.sid,
        owner: s.owner,
        quota: s.quota,
        destroying: s.destroying,
        ids: io.members(s).map((id): [number, 'active' | 'free-pending', number, string] => {
          const i = io.idInfo(id)!;
          return [id, i.state, i.users, i.owner];
        }),
      })),
    },
    accelerators: e.accelerators.list().map((a) => ({
      path: a.path,
      queues: a.queues().map((q) => ({ qid: q.qid, pasid: q.pasid, state: q.state, proc: procIndex(q.proc) })),
      bonds: a.bondList().map((b) => ({ proc: procIndex(b.mm.proc), pasid: b.pasid, refs: b.count })),
    })),
  };
}

function kvmSnapshot(k: Kvm, procIndex: (p: Process) => number, bitmaps: boolean): KvmSnapshot {
  const x = k.core.x;
  const slots = [...k.slots.values()].sort((a, b) => a.num - b.num).map((s): SlotSnapshot => {
    const bm = x.kvm_slot_bitmap(s.handle);
    let hex: string | null = null;
    if (bm && bitmaps) {
      const w = x.bitmap_words(bm);
      hex = Buffer.from(k.core.u8().subarray(w, w + Math.ceil(s.npages / 64) * 8)).toString('hex');
    }
    return { asId: s.as, id: s.id, flags: s.flags, gfn: s.base, npages: s.npages, uaddr: s.uaddr, bitmap: hex, trackedPages: x.kvm_slot_tracked(s.handle) };
  });
  return {
    proc: procIndex(k.proc),
    usersCount: k.usersCount,
    manualProtect: k.manualProtect,
    ringSize: k.ringSize,
    slots,
    vcpus: k.vcpus.map((v) => ({ id: v.id, ringUsed: v.dirtyRingUsed, softFull: v.dirtyRingSoftFull })),
    nodes: k.nodes.length,
    kvmVfio: k.kvmVfio ? entriesOf(k.kvmVfio) : null,
  };
}

function entriesOf(d: KvmVfio): NonNullable<KvmSnapshot['kvmVfio']> {
  return d.entries.map((e) => {
    if (e.kind === 'group') return { file: 'group', group: e.file.group.id, device: null };
    if (e.kind === 'device') return { file: 'device', group: e.file.device.group.id, device: e.file.device.name };
    return { file: 'cdev', group: e.file.dev.group.id, device: e.file.dev.name };
  });
}
