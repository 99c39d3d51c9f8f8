// The process and host part of the request table (docs/PROTOCOL.md §3, §4): HELLO, files,
// ioctls, memory, the shared file, groups and STATS. Every subsystem's files are reached through
// OPEN, IOCTL, MMAP_FD and MUNMAP here.
import { U64_MAX } from '../u64.js';
import { GroupFd } from '../vfio/files.js';
import { parseGroupSpec } from './group_spec.js';
import type { Host, Session } from './host.js';
import { deviceByName, faulting, MAX_DATA, valueArg, type Handler, type Reply } from './ops_common.js';
import { ArgKind, MAGIC, Op, PErr, PROTOCOL_VERSION, Reader, Writer } from './protocol.js';

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

/** Requests of the process and the host. */
export const processOps: Record<number, Handler> = {
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
      groups: [...e.groups.values()].map((g) => ({
        id: g.id, open: g.file !== null, devices: g.devices.map((d) => d.name), cdevs: g.devices.map((d) => d.cdevPath),
      })),
      pendingEvents: host.pendingEvents,
      server: host.footprint((flags & 1) !== 0),
    };
    return [0, new TextEncoder().encode(JSON.stringify(stats))];
  },
};
