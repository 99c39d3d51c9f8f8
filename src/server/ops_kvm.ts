// The KVM part of the request table (docs/PROTOCOL.md §4, §6): guest stores and reads through a
// vCPU, named by its vCPU fd in the connection, and a device model's calls on its device's VM
// (`dev.kvm`): write tracking, a page-track node whose callbacks are events 0x4002 and 0x4003, and
// the KVM-VFIO unlink notification as event 0x4004.
import { callbackScope } from '../kvm/callbacks.js';
import type { Kvm } from '../kvm/kvm.js';
import type { PageTrackNotifierNode } from '../kvm/page_track.js';
import type { Vcpu } from '../kvm/vcpu.js';
import type { VfioDevice } from '../vfio/group.js';
import type { Host, Session } from './host.js';
import { driverDevice, holdsDevice, MAX_DATA, type Handler, type Reply } from './ops_common.js';
import {
  EVENT_KVM_TRACK_REMOVE_REGION, EVENT_KVM_TRACK_WRITE, EVENT_KVM_UNLINK, Op, PErr, Writer, type Reader,
} from './protocol.js';

/** The vCPU of a vCPU fd of the connection: -EBADF (not open), -EINVAL (not a vCPU fd). */
function vcpuOf(s: Session, fd: number): Vcpu | number {
  return s.proc!.vcpuFromFd(fd);
}

/** Decodes `u32 vcpu_fd, u32 as_id, u64 gpa` and runs `f` on the vCPU. */
function onVcpu(s: Session, r: Reader, f: (v: Vcpu, asId: number, gpa: bigint) => Reply): Reply {
  const fd = r.u32() | 0;
  const asId = r.u32();
  const gpa = r.u64();
  if (!r.ok) return [-PErr.EBADMSG];
  const v = vcpuOf(s, fd);
  return typeof v === 'number' ? [v] : f(v, asId, gpa);
}

const writeMany: Handler = (_h, s, r) => {
  const fd = r.u32() | 0;
  const asId = r.u32();
  const count = r.u32();
  const bytesEach = r.u32();
  const gpaBytes = r.bytes(count * 8);
  const data = r.rest().slice();
  if (!r.ok) return [-PErr.EBADMSG];
  const v = vcpuOf(s, fd);
  if (typeof v === 'number') return [v];
  const gpas = new BigUint64Array(count);
  new Uint8Array(gpas.buffer).set(gpaBytes);
  return [v.writeMany(gpas, data, bytesEach, asId)];
};

/**
 * The device model's VM: the device's KVM (docs/conformance.md §19.9), -ESRCH without one, or the
 * errno.
 */
function deviceKvm(host: Host, s: Session, r: Reader): [VfioDevice, Kvm] | number {
  const d = driverDevice(host, s, r.str());
  if (!r.ok) return -PErr.EBADMSG;
  if (typeof d === 'number') return d;
  return d.kvm ? [d, d.kvm] : -PErr.ESRCH;
}

/** A call on the device's VM with a gfn argument. */
function onGfn(f: (k: Kvm, gfn: bigint) => number | bigint): Handler {
  return (host, s, r) => {
    const dk = deviceKvm(host, s, r);
    const gfn = r.u64();
    if (!r.ok) return [-PErr.EBADMSG];
    return typeof dk === 'number' ? [dk] : [f(dk[1], gfn)];
  };
}

/** The page-track nodes each connection registered, by device. */
const nodesOf = new WeakMap<Session, Map<VfioDevice, { kvm: Kvm; node: PageTrackNotifierNode }>>();

/** Bits of DEV_KVM_REGISTER_NODE's `events`: which callbacks the node has. */
const NODE_TRACK_WRITE = 1;
const NODE_REMOVE_REGION = 2;

const registerNode: Handler = (host, s, r) => {
  const dk = deviceKvm(host, s, r);
  const events = r.u32();
  if (!r.ok) return [-PErr.EBADMSG];
  if (typeof dk === 'number') return [dk];
  if (events & ~(NODE_TRACK_WRITE | NODE_REMOVE_REGION)) return [-PErr.EINVAL];
  const [d, kvm] = dk;
  // Refused inside a track callback (docs/conformance.md §19.8), before EEXIST.
  callbackScope(host.engine).forbidIn('track', 'pageTrackRegisterNotifier');
  let mine = nodesOf.get(s);
  if (!mine) nodesOf.set(s, (mine = new Map()));
  if (mine.has(d)) return [-PErr.EEXIST];
  const name = new Writer().str(d.name).done();
  const node: PageTrackNotifierNode = {};
  if (events & NODE_TRACK_WRITE) {
    node.trackWrite = (gpa, data, bytes) => {
      host.deliver(s, EVENT_KVM_TRACK_WRITE, new Writer().u64(gpa).u32(bytes).bytes(name).bytes(data).done());
    };
  }
  if (events & NODE_REMOVE_REGION) {
    node.trackRemoveRegion = (gfn, nrPages) => {
      host.deliver(s, EVENT_KVM_TRACK_REMOVE_REGION, new Writer().u64(gfn).u32(nrPages).bytes(name).done());
    };
  }
  const ret = kvm.pageTrackRegisterNotifier(node);
  if (ret < 0) return [ret];
  mine.set(d, { kvm, node });
  // the node goes with the connection, as a device model's goes with its device's release
  s.ends.set(node, () => kvm.pageTrackUnregisterNotifier(node));
  return [0];
};

const unregisterNode: Handler = (host, s, r) => {
  const name = r.str();
  if (!r.ok) return [-PErr.EBADMSG];
  // Refused inside a track callback, whether the node is registered or not.
  callbackScope(host.engine).forbidIn('track', 'pageTrackUnregisterNotifier');
  const mine = nodesOf.get(s);
  const d = [...(mine?.keys() ?? [])].find((x) => x.name === name);
  const e = d && mine!.get(d);
  if (!e) return [0]; // a node that is not registered: no effect
  e.kvm.pageTrackUnregisterNotifier(e.node);
  mine!.delete(d);
  s.ends.delete(e.node);
  return [0];
};

const registerUnlink: Handler = (host, s, r) => {
  const d = driverDevice(host, s, r.str());
  const enable = r.u32();
  if (!r.ok) return [-PErr.EBADMSG];
  if (typeof d === 'number') return [d];
  if (enable > 1) return [-PErr.EINVAL];
  if (!enable) {
    d.registerKvmUnlink(null);
    return [0];
  }
  const name = new Writer().str(d.name).done();
  const cb = (): void => {
    // as dma_unmap: a registration serves only while its connection holds the device
    if (s.proc && !s.proc.exited && holdsDevice(s.proc, d)) host.deliver(s, EVENT_KVM_UNLINK, name);
  };
  d.registerKvmUnlink(cb);
  s.ends.set(cb, () => {
    if (d.kvmUnlink === cb) d.registerKvmUnlink(null);
  });
  return [0];
};

/** The KVM requests. */
export const kvmOps: Record<number, Handler> = {
  [Op.VCPU_WRITE]: (_h, s, r) => onVcpu(s, r, (v, asId, gpa) => [v.write(gpa, r.rest().slice(), asId)]),
  [Op.VCPU_WRITE_GUEST]: (_h, s, r) => onVcpu(s, r, (v, asId, gpa) => [v.writeGuest(gpa, r.rest().slice(), asId)]),
  [Op.VCPU_READ]: (_h, s, r) => onVcpu(s, r, (v, asId, gpa) => {
    const len = r.u32();
    if (!r.ok) return [-PErr.EBADMSG];
    if (len > MAX_DATA) return [-PErr.E2BIG];
    const got = v.read(gpa, len, asId);
    return typeof got === 'number' ? [got] : [0, got];
  }),
  [Op.VCPU_WRITE_MANY]: writeMany,
  [Op.DEV_KVM_TRACK_ADD]: onGfn((k, gfn) => k.writeTrackAddGfn(gfn)),
  [Op.DEV_KVM_TRACK_REMOVE]: onGfn((k, gfn) => k.writeTrackRemoveGfn(gfn)),
  [Op.DEV_KVM_TRACK_COUNT]: onGfn((k, gfn) => k.writeTrackCount(gfn)),
  [Op.DEV_KVM_GFN_TO_HVA]: onGfn((k, gfn) => k.gfnToHva(gfn)),
  [Op.DEV_KVM_REGISTER_NODE]: registerNode,
  [Op.DEV_KVM_UNREGISTER_NODE]: unregisterNode,
  [Op.DEV_REGISTER_KVM_UNLINK]: registerUnlink,
};
