// A user process: sparse memory from mmap, an fd table, RLIMIT_MEMLOCK / CAP_IPC_LOCK and
// locked_vm. Its open/ioctl/close are the syscall surface of CONTRACT.md.
import { EBADF, EBUSY, ENOENT } from '../../assembly/constants.js';
import { UserMemory } from '../core/user_memory.js';
import { Container } from './container.js';
import type { Engine } from './engine.js';
import type { GroupFile, VfioDevice } from './group.js';
import { ioctl as dispatchIoctl } from './ioctl.js';
import { USER_TOP } from './u64.js';

export interface ProcessOptions {
  /** RLIMIT_MEMLOCK in bytes; default unlimited. */
  memlockLimit?: bigint | number;
  /** CAP_IPC_LOCK: locked memory is charged but never limited; default false. */
  capIpcLock?: boolean;
}

/** What an fd refers to. */
export type FdEntry =
  | { kind: 'container'; container: Container }
  | { kind: 'group'; file: GroupFile }
  | { kind: 'device'; device: VfioDevice; file: GroupFile };

const PAGE = 4096n;
// mmap hands out addresses upward from here, leaving a guard page between mappings.
const MMAP_BASE = 0x10_0000_0000n;

export class Process {
  readonly engine: Engine;
  /** Sparse memory in the Wasm core. */
  readonly um: UserMemory;
  /** RLIMIT_MEMLOCK in pages, or null for unlimited. */
  readonly memlockPages: bigint | null;
  readonly capIpcLock: boolean;
  /** Pages charged to RLIMIT_MEMLOCK (the mm's locked_vm). */
  lockedVm = 0n;
  /** Open file descriptors. */
  readonly fds = new Map<number, FdEntry>();
  /** Mapped regions [start, end), ascending and disjoint. */
  private readonly regions: [bigint, bigint][] = [];
  private nextAddr = MMAP_BASE;
  private lastRegion: [bigint, bigint] | undefined;

  constructor(engine: Engine, o: ProcessOptions) {
    this.engine = engine;
    const lim = o.memlockLimit;
    if (lim !== undefined && ((typeof lim !== 'bigint' && !Number.isInteger(lim)) || BigInt(lim) < 0n)) {
      throw new RangeError('memlockLimit must be a non-negative integer number of bytes');
    }
    this.memlockPages = lim === undefined ? null : BigInt(lim) / PAGE;
    this.capIpcLock = o.capIpcLock ?? false;
    this.um = new UserMemory(engine.core);
  }

  /** A page-aligned address of `length` bytes of zeroed memory (rounded up to whole pages). */
  mmap(length: bigint | number): bigint {
    if ((typeof length !== 'bigint' && !Number.isInteger(length)) || BigInt(length) <= 0n) {
      throw new RangeError('mmap length must be a positive integer');
    }
    const len = (BigInt(length) + PAGE - 1n) & ~(PAGE - 1n);
    const start = this.nextAddr;
    if (start + len > USER_TOP) throw new RangeError('mmap: no room left below the user-space top');
    this.regions.push([start, start + len]);
    this.nextAddr = start + len + PAGE;
    return start;
  }

  /** The region containing `addr`, or undefined. */
  private regionOf(addr: bigint): [bigint, bigint] | undefined {
    const hot = this.lastRegion; // tools touch the same buffers call after call
    if (hot && addr >= hot[0] && addr < hot[1]) return hot;
    const r = this.regions;
    let lo = 0;
    let hi = r.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (addr < r[mid][0]) hi = mid - 1;
      else if (addr >= r[mid][1]) lo = mid + 1;
      else return (this.lastRegion = r[mid]);
    }
    return undefined;
  }

  /** Whether every byte of [addr, addr+len) is mapped (len 0: true). */
  isMapped(addr: bigint, len: bigint): boolean {
    if (len <= 0n) return true;
    const r = this.regionOf(addr);
    return r !== undefined && addr + len <= r[1];
  }

  /** Index of the first page of n pages from `addr` that is not mapped, or -1 if all are. */
  firstUnmappedPage(addr: bigint, n: number): number {
    const r = this.regionOf(addr);
    if (!r) return n > 0 ? 0 : -1;
    const mapped = (r[1] - addr) / PAGE;
    return mapped >= BigInt(n) ? -1 : Number(mapped);
  }

  /** Bytes at `addr`; throws RangeError if any byte is not mapped. */
  read(addr: bigint, length: number): Uint8Array {
    if (typeof addr !== 'bigint' || !Number.isInteger(length) || length < 0) {
      throw new TypeError('read(addr: bigint, length: non-negative integer)');
    }
    if (!this.isMapped(addr, BigInt(length))) throw new RangeError(`read: 0x${addr.toString(16)} +${length} is not mapped`);
    const r = this.um.read(addr, length);
    if (typeof r === 'number') throw new RangeError(`read failed: errno ${-r}`);
    return r;
  }

  /** Writes `bytes` at `addr`; throws RangeError if any byte is not mapped. */
  write(addr: bigint, bytes: Uint8Array): void {
    if (typeof addr !== 'bigint' || !(bytes instanceof Uint8Array)) {
      throw new TypeError('write(addr: bigint, bytes: Uint8Array)');
    }
    if (!this.isMapped(addr, BigInt(bytes.length))) {
      throw new RangeError(`write: 0x${addr.toString(16)} +${bytes.length} is not mapped`);
    }
    const r = this.um.write(addr, bytes);
    if (r < 0) throw new RangeError(`write failed: out of host memory (errno ${-r})`);
  }

  /** The lowest free fd number (from 3, as stdio holds 0 to 2). */
  allocFd(entry: FdEntry): number {
    let fd = 3;
    while (this.fds.has(fd)) fd++;
    this.fds.set(fd, entry);
    return fd;
  }

  /** '/dev/vfio/vfio': a new container fd; '/dev/vfio/<id>': the group's fd (-EBUSY, -ENOENT). */
  open(path: string): number {
    if (typeof path !== 'string') throw new TypeError('open(path: string)');
    if (path === '/dev/vfio/vfio') {
      const fd = this.allocFd({ kind: 'container', container: null as unknown as Container });
      const c = this.engine.newContainer(fd);
      this.fds.set(fd, { kind: 'container', container: c });
      return fd;
    }
    const m = /^\/dev\/vfio\/(0|[1-9][0-9]*)$/.exec(path);
    const g = m ? this.engine.groups.get(Number(m[1])) : undefined;
    if (!g) return -ENOENT;
    if (g.file) return -EBUSY;
    const file: GroupFile = { group: g, fdOpen: true, deviceFds: 0 };
    g.file = file;
    return this.allocFd({ kind: 'group', file });
  }

  /** The ioctl syscall: a value >= 0 or -errno (SPEC §1). */
  ioctl(fd: number, request: number, arg?: number | bigint | string | Uint8Array): number {
    return dispatchIoctl(this, fd, request, arg);
  }

  /** Closes `fd`: 0 or -EBADF. A group detaches once its fd and its device fds are all closed. */
  close(fd: number): number {
    const e = this.fds.get(fd);
    if (!e) return -EBADF;
    this.fds.delete(fd);
    if (e.kind === 'container') {
      e.container.fds--;
      this.engine.forgetIfUnused(e.container);
    } else if (e.kind === 'group') {
      e.file.fdOpen = false;
      releaseIfUnused(e.file);
    } else {
      e.device.openCount--;
      e.file.deviceFds--;
      releaseIfUnused(e.file);
    }
    return 0;
  }
}

/** Releases a group file once nothing holds it: the group leaves its container (SPEC §8.1 item 3). */
function releaseIfUnused(file: GroupFile): void {
  if (file.fdOpen || file.deviceFds > 0) return;
  const g = file.group;
  if (g.container) g.container.removeGroup(g);
  g.file = null;
}
