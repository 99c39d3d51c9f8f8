// The PASID part of the request table (docs/PROTOCOL.md §4, §6): shared accelerators (created by
// the host's administration), SVA bonds of the connection's process, the accelerator's DMA tagged
// with that process's PASID, and IOASID notifiers on the connection's VM set as event 0x4005.
// PASID allocation for a VM is VFIO_IOMMU_PASID_REQUEST, an IOCTL.
import type { Accelerator } from '../accel/accelerator.js';
import type { SvaHandle } from '../accel/sva.js';
import type { IoasidNotifier } from '../ioasid/notifier.js';
import { INV } from '../ioasid/set.js';
import { vmSetOf } from '../ioasid/vfio_pasid.js';
import { parseAccelSpec } from './accel_spec.js';
import type { Host, Session } from './host.js';
import { MAX_DATA, type Handler } from './ops_common.js';
import { EVENT_IOASID, Op, PErr, Writer, type Reader } from './protocol.js';

/** The accelerators the server's clients created, by path. */
const accelsOf = new WeakMap<Host, Map<string, Accelerator>>();

function accelByPath(host: Host, path: string): Accelerator | undefined {
  const a = accelsOf.get(host)?.get(path);
  return a && !a.removed ? a : undefined;
}

/** A connection's SVA handles: its numbers for them, and how many API references each holds. */
interface Handles {
  next: number;
  byId: Map<number, { h: SvaHandle; refs: number }>;
}
const handlesOf = new WeakMap<Session, Handles>();

function handles(s: Session): Handles {
  let h = handlesOf.get(s);
  if (!h) {
    h = { next: 1, byId: new Map() };
    handlesOf.set(s, h);
    // the connection's end drops the bonds it took, as a driver unbinds at its release
    s.ends.set(h, () => {
      for (const e of h!.byId.values()) for (let i = 0; i < e.refs; i++) s.proc!.engine.sva.unbindDevice(e.h);
      h!.byId.clear();
    });
  }
  return h;
}

const svaBind: Handler = (host, s, r) => {
  const path = r.str();
  if (!r.ok) return [-PErr.EBADMSG];
  const a = accelByPath(host, path);
  if (!a) return [-PErr.ENODEV];
  const got = host.engine.sva.bindDevice(a, s.proc!);
  if (typeof got === 'number') return [got];
  const hs = handles(s);
  for (const [id, e] of hs.byId) {
    if (e.h === got) {
      e.refs++;
      return [id];
    }
  }
  const id = hs.next++;
  hs.byId.set(id, { h: got, refs: 1 });
  return [id];
};

/** Decodes `u32 handle`: the connection's entry, or -EINVAL. */
function handleArg(s: Session, r: Reader): [number, { h: SvaHandle; refs: number }] | number {
  const id = r.u32();
  if (!r.ok) return -PErr.EBADMSG;
  const e = handlesOf.get(s)?.byId.get(id);
  return e ? [id, e] : -PErr.EINVAL;
}

/**
 * Decodes `str path, u32 pasid, u32 length, u64 va` of the accelerator DMA requests: the
 * accelerator, or -ENODEV, or -EPERM when the PASID is not the connection's process's.
 */
function accelDma(host: Host, s: Session, r: Reader): [Accelerator, number, number, bigint] | number {
  const path = r.str();
  const pasid = r.u32();
  const len = r.u32();
  const va = r.u64();
  if (!r.ok) return -PErr.EBADMSG;
  const a = accelByPath(host, path);
  if (!a) return -PErr.ENODEV;
  const mine = host.engine.sva.pasidOf(s.proc!);
  return mine !== INV && pasid === mine ? [a, pasid, len, va] : -PErr.EPERM;
}

/**
 * Decodes `str path, u32 qid, u32 region, u32 offset` of the queue-region requests: the
 * accelerator, or -ENODEV, or -EPERM when hardware queue `qid` is held by another process (a qid
 * nobody holds is the engine's -ENXIO).
 */
function accelRegion(host: Host, s: Session, r: Reader): [Accelerator, number, number, number] | number {
  const path = r.str();
  const qid = r.u32();
  const region = r.u32();
  const offset = r.u32() | 0;
  if (!r.ok) return -PErr.EBADMSG;
  const a = accelByPath(host, path);
  if (!a) return -PErr.ENODEV;
  const q = a.queues().find((x) => x.qid === qid);
  return q && q.proc !== s.proc ? -PErr.EPERM : [a, qid, region, offset];
}

/** Each connection's IOASID notifier, and the set it is on. */
const notifierOf = new WeakMap<Session, { nb: IoasidNotifier; sid: number }>();

const addNotifier: Handler = (host, s, r) => {
  const priority = r.u32() | 0;
  if (!r.ok) return [-PErr.EBADMSG];
  if (host.engine.calls.inCallback) return [-PErr.EDEADLK]; // addNotifier's first check, before ours
  if (notifierOf.has(s)) return [-PErr.EEXIST];
  const sid = vmSetOf(s.proc!);
  if (sid < 0) return [-PErr.ENOENT];
  const nb: IoasidNotifier = (event, args) => {
    const v = host.deliver(s, EVENT_IOASID, new Writer().u32(event).u32(args.id).u32(args.sid).done());
    return v >= 0n && v <= 0xffff_ffffn ? Number(v) : undefined;
  };
  const ret = host.engine.ioasid.addNotifier(nb, { priority, sid });
  if (ret < 0) return [ret];
  notifierOf.set(s, { nb, sid });
  s.ends.set(nb, () => host.engine.ioasid.removeNotifier(nb, { sid }));
  return [0];
};

const removeNotifier: Handler = (host, s) => {
  const n = notifierOf.get(s);
  if (host.engine.calls.inCallback) return [-PErr.EDEADLK];
  if (!n) return [-PErr.ENOENT];
  const ret = host.engine.ioasid.removeNotifier(n.nb, { sid: n.sid });
  notifierOf.delete(s);
  s.ends.delete(n.nb);
  return [ret === -PErr.EINVAL ? 0 : ret]; // its set went with the VM: the notifier with it
};

/** The accelerator and PASID requests. */
export const pasidOps: Record<number, Handler> = {
  [Op.CREATE_ACCELERATOR]: (host, _s, r) => {
    let a: Accelerator;
    try {
      a = host.engine.createAccelerator(parseAccelSpec(new TextDecoder().decode(r.rest())));
    } catch (e) {
      if (e instanceof RangeError || e instanceof TypeError) return [-PErr.EINVAL];
      throw e;
    }
    let m = accelsOf.get(host);
    if (!m) accelsOf.set(host, (m = new Map()));
    m.set(a.path, a);
    host.log('info', 'accelerator-created', { path: a.path });
    return [a.devId, new TextEncoder().encode(a.path)];
  },
  [Op.REMOVE_ACCELERATOR]: (host, _s, r) => {
    const path = r.str();
    if (!r.ok) return [-PErr.EBADMSG];
    const a = accelByPath(host, path);
    if (!a) return [-PErr.ENOENT];
    const ret = a.remove();
    if (ret === 0) accelsOf.get(host)!.delete(path);
    return [ret];
  },
  [Op.SVA_BIND]: svaBind,
  [Op.SVA_UNBIND]: (host, s, r) => {
    const e = handleArg(s, r);
    if (typeof e === 'number') return [e];
    const ret = host.engine.sva.unbindDevice(e[1].h);
    if (ret === 0 && --e[1].refs === 0) handlesOf.get(s)!.byId.delete(e[0]);
    return [ret];
  },
  [Op.SVA_GET_PASID]: (host, s, r) => {
    const e = handleArg(s, r);
    return [typeof e === 'number' ? e : host.engine.sva.getPasid(e[1].h)];
  },
  [Op.ACCEL_DMA_WRITE]: (host, s, r) => {
    const a = accelDma(host, s, r);
    const data = r.rest().slice();
    return [typeof a === 'number' ? a : a[0].dmaWrite(a[1], a[3], data)];
  },
  [Op.ACCEL_DMA_READ]: (host, s, r) => {
    const a = accelDma(host, s, r);
    if (typeof a === 'number') return [a];
    if (a[2] > MAX_DATA) return [-PErr.E2BIG];
    const got = a[0].dmaRead(a[1], a[3], a[2]);
    return typeof got === 'number' ? [got] : [0, got];
  },
  [Op.ACCEL_REGION_READ]: (host, s, r) => {
    const q = accelRegion(host, s, r);
    const len = r.u32() | 0;
    if (!r.ok) return [-PErr.EBADMSG];
    if (typeof q === 'number') return [q];
    const got = q[0].regionRead(q[1], q[2], q[3], len);
    return typeof got === 'number' ? [got] : [0, got];
  },
  [Op.ACCEL_REGION_WRITE]: (host, s, r) => {
    const q = accelRegion(host, s, r);
    const data = r.rest().slice();
    return [typeof q === 'number' ? q : q[0].regionWrite(q[1], q[2], q[3], data)];
  },
  [Op.IOASID_ADD_NOTIFIER]: addNotifier,
  [Op.IOASID_REMOVE_NOTIFIER]: removeNotifier,
  [Op.IOASID_NOTIFY]: (host, s, r) => {
    const id = r.u32();
    const cmd = r.u32();
    if (!r.ok) return [-PErr.EBADMSG];
    const sid = host.engine.ioasid.findSid(id);
    if (sid >= 0 && sid !== vmSetOf(s.proc!)) return [-PErr.EPERM];
    return [host.engine.ioasid.notify(id, cmd)];
  },
};
