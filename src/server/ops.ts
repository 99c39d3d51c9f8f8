// The request table of the server: one entry per operation code (docs/PROTOCOL.md §4). Each entry
// decodes its payload with a Reader, calls the engine as the in-process API would, and returns
// the i64 result with the bytes the call wrote back. A new subsystem's calls are new entries.
import type { OpenFile } from '../file.js';
import type { Process } from '../process.js';
import { DeviceFile } from '../vfio/device_file.js';
import { GroupFd } from '../vfio/files.js';
import type { Group, VfioDevice } from '../vfio/group.js';
import { U64_MAX } from '../u64.js';
import { parseGroupSpec } from './group_spec.js';
import type { Host, Session } from './host.js';
import { ArgKind, EVENT_DMA_UNMAP, MAGIC, Op, PErr, PROTOCOL_VERSION, Reader, Writer } from './protocol.js';

/** A result (i64: >= 0, or -errno) and the bytes written back, if any. */
export type Reply = [number | bigint, Uint8Array?];
type Handler = (host: Host, s: Session, r: Reader) => Reply;

/** Largest READ_MEM / DMA_RW length and SHM copy chunk: 16 MiB. */
export const MAX_DATA = 16 << 20;

/** How each kind of file refers to its group file (the unit of ownership). */
const groupFileOf: ((f: OpenFile) => unknown)[] = [
  (f) => (f instanceof GroupFd ? f.file : undefined),
  (f) => (f instanceof DeviceFile ? f.group : undefined),
];

/** Whether `proc` holds `g`: its group fd, or a device fd obtained through it, is open there. */
export function holdsGroup(proc: Process, g: Group): boolean {
  if (!g.file) return false;
  for (const f of proc.fds.values()) {
    for (const of of groupFileOf) if (of(f) === g.file) return true;
  }
  return false;
}

/** The device named `name` among all groups, or undefined. */
export function deviceByName(host: Host, name: string): VfioDevice | undefined {
  for (const g of host.engine.groups.values()) {
    const d = g.device(name);
    if (d) return d;
  }
  return undefined;
}

/** The device for a driver call: the device, or -ENODEV (no such name) / -EPERM (group not held). */
function driverDevice(host: Host, s: Session, name: string): VfioDevice | number {
  const d = deviceByName(host, name);
  if (!d) return -PErr.ENODEV;
  return holdsGroup(s.proc!, d.group) ? d : -PErr.EPERM;
}

/** An ioctl value argument: a number while it fits an int, else the u64 as a bigint. */
function valueArg(v: bigint): number | bigint {
  const i = BigInt.asIntN(64, v);
  return i >= -(1n << 31n) && i < 1n << 31n ? Number(i) : v;
}

/** Runs `f`, mapping the RangeError of an unmapped address to -EFAULT. */
function faulting(f: () => Reply): Reply {
  try {
    return f();
  } catch (e) {
    if (e instanceof RangeError) return [-PErr.EFAULT];
    throw e;
  }
}

/** Checks a shared-file range: the session's file, or an errno. */
function shmRange(s: Session, off: bigint, len: bigint): number {
  if (!s.shm) return -6; // ENXIO: no shared file was asked for at HELLO
  if (off + len > BigInt(s.shm.size)) return -PErr.EINVAL;
  return 0;
}

/** SHM_FROM_MEM (toShm) and SHM_TO_MEM: copies in chunks of MAX_DATA. */
function shmCopy(host: Host, s: Session, r: Reader, toShm: boolean): Reply {
  const addr = r.u64();
  const off = r.u64();
  const len = r.u64();
  if (!r.ok) return [-PErr.EBADMSG];
  const e = shmRange(s, off, len);
  if (e) return [e];
  return faulting(() => {
    for (let done = 0n; done < len; done += BigInt(MAX_DATA)) {
      const n = Number(len - done < BigInt(MAX_DATA) ? len - done : BigInt(MAX_DATA));
      if (toShm) host.shmWrite(s, Number(off + done), s.proc!.read(addr + done, n));
      else s.proc!.write(addr + done, host.shmRead(s, Number(off + done), n));
    }
    return [0];
  });
}

const hello: Handler = (host, s, r) => {
  const magic = r.u32();
  const minV = r.u32();
  const maxV = r.u32();
  const flags = r.u32();
  const memlock = r.u64();
  const shmBytes = r.u64();
  if (!r.ok) return [-PErr.EBADMSG];
  if (magic !== MAGIC) return [-PErr.EPROTO];
  if (minV > PROTOCOL_VERSION || maxV < PROTOCOL_VERSION) return [-PErr.EPROTONOSUPPORT];
  if (flags & ~1) return [-PErr.EINVAL];
  if (shmBytes > BigInt(host.config.shmMax)) return [-PErr.E2BIG];
  s.proc = host.engine.createProcess({
    memlockLimit: memlock === U64_MAX ? undefined : memlock,
    capIpcLock: (flags & 1) !== 0,
  });
  const path = shmBytes > 0n ? host.createShm(s, Number(shmBytes)) : '';
  host.log('info', 'hello', { conn: s.id, shm: Number(shmBytes) });
  return [PROTOCOL_VERSION, new Writer().u64(shmBytes).str(path).done()];
};

const ioctl: Handler = (_host, s, r) => {
  const fd = r.u32() | 0;
  const request = r.u32();
  const kind = r.u32();
  r.u32();
  if (!r.ok) return [-PErr.EBADMSG];
  const proc = s.proc!;
  let arg: number | bigint | string | Uint8Array | undefined;
  if (kind === ArgKind.NONE) arg = undefined;
  else if (kind === ArgKind.VALUE) arg = valueArg(r.u64());
  else if (kind === ArgKind.STRING) arg = new TextDecoder().decode(r.rest());
  else if (kind === ArgKind.BYTES) arg = r.rest().slice();
  else return [-PErr.EINVAL];
  if (!r.ok) return [-PErr.EBADMSG];
  let ret: number;
  try {
    ret = proc.ioctl(fd, request, arg);
  } catch (e) {
    if (!(e instanceof TypeError)) throw e;
    return [/struct/.test(e.message) ? -PErr.EFAULT : -PErr.EINVAL];
  }
  return arg instanceof Uint8Array ? [ret, arg] : [ret];
};

const createGroup: Handler = (host, _s, r) => {
  let o;
  try {
    o = parseGroupSpec(new TextDecoder().decode(r.rest()));
  } catch {
    return [-PErr.EINVAL];
  }
  for (const d of o.devices ?? []) if (deviceByName(host, typeof d === 'string' ? d : d.name)) return [-PErr.EEXIST];
  try {
    const g = host.engine.createGroup(o);
    host.log('info', 'group-created', { id: g.id, devices: g.devices.map((d) => d.name) });
    return [g.id];
  } catch {
    return [-PErr.EINVAL];
  }
};

const registerDmaUnmap: Handler = (host, s, r) => {
  const d = driverDevice(host, s, r.str());
  if (typeof d === 'number' || !r.ok) return [typeof d === 'number' ? d : -PErr.EBADMSG];
  const name = new Writer().str(d.name).done();
  d.registerDmaUnmap((iova, size) => {
    // a registration serves only while its connection holds the group
    if (s.proc && !s.proc.exited && holdsGroup(s.proc, d.group)) {
      host.deliver(s, EVENT_DMA_UNMAP, new Writer().u64(iova).u64(size).bytes(name).done());
    }
  });
  for (const o of host.sessions.values()) if (o !== s) o.registered.delete(d);
  s.registered.add(d);
  return [0];
};

const pinPages: Handler = (host, s, r) => {
  const d = driverDevice(host, s, r.str());
  const iova = r.u64();
  const npage = r.u32() | 0;
  const prot = r.u32() | 0;
  const want = r.u32();
  if (!r.ok) return [-PErr.EBADMSG];
  if (typeof d === 'number') return [d];
  const pfns = want && npage > 0 && npage <= 1 << 16 ? new BigUint64Array(npage) : undefined;
  const ret = d.pinPages(iova, npage, prot, pfns);
  return ret > 0 && pfns ? [ret, new Uint8Array(pfns.buffer, 0, ret * 8)] : [ret];
};

const unpinPages: Handler = (host, s, r) => {
  const d = driverDevice(host, s, r.str());
  const iova = r.u64();
  const npage = r.u32() | 0;
  if (!r.ok) return [-PErr.EBADMSG];
  if (typeof d === 'number') return [d];
  d.unpinPages(iova, npage);
  return [0];
};

const dmaRw: Handler = (host, s, r) => {
  const d = driverDevice(host, s, r.str());
  const iova = r.u64();
  const write = r.u32();
  const length = r.u32();
  const data = write ? r.rest() : new Uint8Array(length);
  if (!r.ok) return [-PErr.EBADMSG];
  if (typeof d === 'number') return [d];
  if (!write && length > MAX_DATA) return [-PErr.E2BIG];
  const buf = write ? data.slice() : data;
  const ret = d.dmaRw(iova, buf, write !== 0);
  return ret === 0 && !write ? [0, buf] : [ret];
};

/** The request table: op code to handler. */
export const opTable: Record<number, Handler | undefined> = {
  [Op.HELLO]: hello,
  [Op.OPEN]: (host, s, r) => {
    const fd = s.proc!.open(new TextDecoder().decode(r.rest()));
    const f = s.proc!.fds.get(fd);
    // a group changing hands drops the previous holder's driver registrations on its devices
    if (fd >= 0 && f instanceof GroupFd) {
      for (const d of f.file.group.devices) {
        if (s.registered.has(d)) continue;
        for (const o of host.sessions.values()) {
          if (o.registered.delete(d)) d.dmaUnmap = null;
        }
      }
    }
    return [fd];
  },
  [Op.CLOSE]: (_h, s, r) => [s.proc!.close(r.u32() | 0)],
  [Op.IOCTL]: ioctl,
  [Op.MMAP]: (_h, s, r) => {
    const len = r.u64();
    if (len === 0n || len >= 1n << 63n) return [-PErr.EINVAL];
    try {
      return [s.proc!.mmap(len)];
    } catch {
      return [-PErr.ENOMEM];
    }
  },
  [Op.MMAP_FD]: (_h, s, r) => {
    const fd = r.u32() | 0;
    r.u32();
    const off = r.u64();
    const len = BigInt.asIntN(64, r.u64());
    return r.ok ? [s.proc!.mmapFd(fd, off, len)] : [-PErr.EBADMSG];
  },
  [Op.MUNMAP]: (_h, s, r) => {
    const addr = r.u64();
    const len = BigInt.asIntN(64, r.u64());
    return r.ok ? [s.proc!.munmap(addr, len)] : [-PErr.EBADMSG];
  },
  [Op.READ_MEM]: (_h, s, r) => {
    const addr = r.u64();
    const len = r.u32();
    if (!r.ok) return [-PErr.EBADMSG];
    if (len > MAX_DATA) return [-PErr.E2BIG];
    return faulting(() => [0, s.proc!.read(addr, len)]);
  },
  [Op.WRITE_MEM]: (_h, s, r) => {
    const addr = r.u64();
    const data = r.rest();
    return r.ok ? faulting(() => (s.proc!.write(addr, data), [0])) : [-PErr.EBADMSG];
  },
  [Op.SHM_FROM_MEM]: (host, s, r) => shmCopy(host, s, r, true),
  [Op.SHM_TO_MEM]: (host, s, r) => shmCopy(host, s, r, false),
  [Op.CREATE_GROUP]: createGroup,
  [Op.REMOVE_GROUP]: (host, _s, r) => {
    const g = host.engine.groups.get(r.u32());
    if (!r.ok) return [-PErr.EBADMSG];
    const ret = g ? g.remove() : -PErr.ENOENT;
    if (g && ret === 0) host.log('info', 'group-removed', { id: g.id });
    return [ret];
  },
  [Op.DEV_REGISTER_DMA_UNMAP]: registerDmaUnmap,
  [Op.DEV_PIN_PAGES]: pinPages,
  [Op.DEV_UNPIN_PAGES]: unpinPages,
  [Op.DEV_DMA_RW]: dmaRw,
  [Op.EVENT_DONE]: () => [-PErr.ESRCH],
  [Op.STATS]: (host, _s, r) => {
    const flags = r.b.length >= 4 ? r.u32() : 0; // optional: bit 0 collects garbage first
    if (flags & ~1) return [-PErr.EINVAL];
    const e = host.engine;
    const stats = {
      sessions: host.sessions.size,
      processes: e.processes.length,
      heapUsed: e.memoryInUse(),
      containers: e.containers.size,
      groups: [...e.groups.values()].map((g) => ({ id: g.id, open: g.file !== null, devices: g.devices.map((d) => d.name) })),
      pendingEvents: host.pendingEvents,
      server: host.footprint((flags & 1) !== 0),
    };
    return [0, new TextEncoder().encode(JSON.stringify(stats))];
  },
};
