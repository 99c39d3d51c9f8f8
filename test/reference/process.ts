// A user process of the reference model (docs/conformance.md §13.1): its memory, its fd table
// (lowest free number from 3, as Linux), open/close/ioctl, and locked_vm with RLIMIT_MEMLOCK.
import { RefContainer } from './container.js';
import type { RefEngine } from './engine.js';
import { groupIoctl, type RefDevice, type RefGroup } from './group.js';
import { RefMemory } from './memory.js';
import { EBADF, EBUSY, EFAULT, ENOENT, ENOMEM, ENOTTY, PAGE_SIZE } from './uapi.js';

export type FdEntry =
  | { kind: 'container'; container: RefContainer }
  | { kind: 'group'; group: RefGroup }
  | { kind: 'device'; device: RefDevice };

export interface RefProcessOptions {
  memlockLimit?: bigint;
  capIpcLock?: boolean;
}

export class RefProcess {
  readonly engine: RefEngine;
  /** RLIMIT_MEMLOCK in bytes; null = unlimited. */
  readonly memlockLimit: bigint | null;
  readonly capIpcLock: boolean;
  readonly memory = new RefMemory();
  readonly fds = new Map<number, FdEntry>();
  /** Pages charged to RLIMIT_MEMLOCK. */
  lockedVm = 0n;

  constructor(engine: RefEngine, o: RefProcessOptions) {
    this.engine = engine;
    this.memlockLimit = o.memlockLimit ?? null;
    this.capIpcLock = o.capIpcLock ?? false;
  }

  /** RLIMIT_MEMLOCK in pages, or null when unlimited. */
  get limitPages(): bigint | null {
    return this.memlockLimit === null ? null : this.memlockLimit / PAGE_SIZE;
  }

  mmap(length: bigint | number): bigint {
    return this.memory.mmap(length);
  }

  read(addr: bigint, length: number): Uint8Array {
    return this.memory.read(addr, length);
  }

  write(addr: bigint, bytes: Uint8Array): void {
    this.memory.write(addr, bytes);
  }

  /** The lowest free fd number from 3. */
  allocFd(e: FdEntry): number {
    let fd = 3;
    while (this.fds.has(fd)) fd++;
    this.fds.set(fd, e);
    return fd;
  }

  open(path: string): number {
    if (path === '/dev/vfio/vfio') {
      const fd = this.allocFd({ kind: 'container', container: null as unknown as RefContainer });
      const c = new RefContainer(this.engine, this, fd, this.engine.nextSeq());
      this.fds.set(fd, { kind: 'container', container: c });
      this.engine.containers.push(c);
      return fd;
    }
    const m = /^\/dev\/vfio\/(\d+)$/.exec(path);
    const g = m ? this.engine.groups.find((x) => x.id === Number(m[1])) : undefined;
    if (!g) return -ENOENT;
    if (g.fileOpen) return -EBUSY;
    g.fdOpen = true;
    return this.allocFd({ kind: 'group', group: g });
  }

  close(fd: number): number {
    const e = this.fds.get(fd);
    if (!e) return -EBADF;
    this.fds.delete(fd);
    if (e.kind === 'container') {
      e.container.fdOpen = false;
    } else if (e.kind === 'group') {
      e.group.fdOpen = false;
      if (!e.group.fileOpen) e.group.releaseFile();
    } else {
      const g = e.device.group;
      e.device.openCount--;
      g.deviceFds--;
      if (!g.fileOpen) g.releaseFile();
    }
    return 0;
  }

  ioctl(fd: number, request: number, arg?: number | bigint | string | Uint8Array): number {
    const e = this.fds.get(fd);
    if (!e) return -EBADF;
    if (e.kind === 'container') return e.container.ioctl(request, arg);
    if (e.kind === 'group') return groupIoctl(this, e.group, request, arg);
    return -ENOTTY;
  }
}

/**
 * Pinning `npages` pages of `owner`'s memory from `vaddr` in order, charging every page except
 * the `skipped` ones (ascending page indices: pages that already carry an external pin), as MAP
 * and replay do (docs/conformance.md §4.3): page i faults (EFAULT) when unmapped, and is refused (ENOMEM) when
 * charging it would pass RLIMIT_MEMLOCK without CAP_IPC_LOCK; the lowest such page decides, a
 * fault first on the same page. Returns the error, or 0 and the number of pages to charge.
 */
export function chargeCheck(
  owner: RefProcess, vaddr: bigint, npages: bigint, lockCap: boolean, skipped: number[] = [],
): { err: number; charge: bigint } {
  const hole = owner.memory.firstUnmapped(vaddr, npages * PAGE_SIZE);
  const fault = hole === null ? null : (hole - vaddr) / PAGE_SIZE;
  const inRange = skipped.filter((p) => BigInt(p) < npages);
  let mem: bigint | null = null;
  const limit = owner.limitPages;
  if (limit !== null && !lockCap) {
    let budget = limit - owner.lockedVm;
    if (budget < 0n) budget = 0n;
    // the page that would be charged as number budget + 1 is the one refused
    let idx = budget;
    for (const p of inRange) {
      if (BigInt(p) <= idx) idx++;
      else break;
    }
    if (idx < npages) mem = idx;
  }
  if (fault !== null && (mem === null || fault <= mem)) return { err: -EFAULT, charge: 0n };
  if (mem !== null) return { err: -ENOMEM, charge: 0n };
  return { err: 0, charge: npages - BigInt(inRange.length) };
}
