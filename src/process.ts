// A user process: sparse anonymous memory from mmap, file mappings from mmapFd, an fd table,
// RLIMIT_MEMLOCK / CAP_IPC_LOCK and locked_vm, and its end (exit). Its open/ioctl/close/mmapFd/
// munmap are the syscall surface; what a file does is its subsystem's (src/file.ts).
import { EBADF, EDEADLK, EINVAL, ENODEV, ENOENT, ENOMEM } from '../assembly/constants.js';
import { UserMemory } from './core/user_memory.js';
import type { Engine } from './engine.js';
import type { FileMapping, IoctlArg, OpenFile } from './file.js';
import { PAGE_SHIFT, PAGE_SIZE, USER_TOP } from './u64.js';
import { SoftDirty } from './accel/soft_dirty.js';
import { kvmFromFd, vcpuFromFd } from './kvm/files.js';
import { callbackScope } from './kvm/callbacks.js';
import type { Kvm } from './kvm/kvm.js';
import type { Vcpu } from './kvm/vcpu.js';

export interface ProcessOptions {
  /** RLIMIT_MEMLOCK in bytes; default unlimited. */
  memlockLimit?: bigint | number;
  /** CAP_IPC_LOCK: locked memory is charged but never limited; default false. */
  capIpcLock?: boolean;
}

/** A mapped range [start, end) of the address space: anonymous memory, or a file's bytes. */
interface Region {
  readonly start: bigint;
  readonly end: bigint;
  /** The file mapping behind it (mmapFd), or undefined for anonymous memory (mmap). */
  readonly file?: FileMapping;
  /** VM_SOFTDIRTY: made since the last clear of the soft-dirty record, so every page reads dirty. */
  softDirty?: boolean;
}

// mmap hands out addresses upward from here, leaving a guard page between mappings.
const MMAP_BASE = 0x10_0000_0000n;
const MAX_PAGES = BigInt(Number.MAX_SAFE_INTEGER);

export class Process {
  readonly engine: Engine;
  /** Sparse anonymous memory in the Wasm core; disposed at exit. */
  readonly um: UserMemory;
  /** RLIMIT_MEMLOCK in pages, or null for unlimited. */
  readonly memlockPages: bigint | null;
  readonly capIpcLock: boolean;
  /** Pages charged to RLIMIT_MEMLOCK (the mm's locked_vm). */
  lockedVm = 0n;
  /** Open file descriptors. */
  readonly fds = new Map<number, OpenFile>();
  /** Mapped regions, ascending and disjoint. */
  private readonly regions: Region[] = [];
  private nextAddr = MMAP_BASE;
  private lastRegion: Region | undefined;
  private exitedFlag = false;
  /** Exit step 1 has run: the address space no longer translates for devices. */
  private mmReleased = false;
  /** The soft-dirty record (docs/conformance.md §17). */
  private readonly sd: SoftDirty;

  constructor(engine: Engine, o: ProcessOptions) {
    this.engine = engine;
    const lim = o.memlockLimit;
    if (lim !== undefined && ((typeof lim !== 'bigint' && !Number.isInteger(lim)) || BigInt(lim) < 0n)) {
      throw new RangeError('memlockLimit must be a non-negative integer number of bytes');
    }
    this.memlockPages = lim === undefined ? null : BigInt(lim) / PAGE_SIZE;
    this.capIpcLock = o.capIpcLock ?? false;
    this.um = new UserMemory(engine.core);
    try {
      this.sd = new SoftDirty(engine.core);
    } catch (e) {
      this.um.dispose();
      throw e;
    }
  }

  /** True once `exit()` has begun; every other method then throws. */
  get exited(): boolean {
    return this.exitedFlag;
  }

  /** The same as `exited`: the process's Wasm memory is returned (or being returned). */
  get isDisposed(): boolean {
    return this.exitedFlag;
  }

  /** Throws if the process has exited (every method but `exit` and `exited` calls it). */
  private live(what: string): void {
    if (this.exitedFlag) throw new Error(`${what}: the process has exited`);
  }

  /**
   * Throws inside a KVM callback, where only reads, writes and the vendor-driver API are allowed
   * (docs/conformance.md §19.8).
   */
  private notInCallback(what: string): void {
    callbackScope(this.engine).forbid(`proc.${what}`);
  }

  /** A page-aligned address of `length` bytes of zeroed memory (rounded up to whole pages). */
  mmap(length: bigint | number): bigint {
    this.live('mmap');
    this.notInCallback('mmap');
    if ((typeof length !== 'bigint' && !Number.isInteger(length)) || BigInt(length) <= 0n) {
      throw new RangeError('mmap length must be a positive integer');
    }
    const start = this.place(pagesOf(BigInt(length)));
    if (start < 0n) throw new RangeError('mmap: no room left below the user-space top');
    this.regions[this.regions.length - 1].softDirty = true;
    return start;
  }

  /**
   * Maps `length` bytes of the file behind `fd` from `offset`: the address, or -errno as a bigint.
   * Checks in order, as mmap(2): offset not page-aligned -> EINVAL; fd not open -> EBADF;
   * length <= 0 -> EINVAL; a file that cannot be mapped -> ENODEV; then the file's own checks.
   */
  mmapFd(fd: number, offset: bigint, length: bigint | number): bigint {
    this.live('mmapFd');
    this.notInCallback('mmapFd');
    if (!Number.isInteger(fd) || typeof offset !== 'bigint' || offset < 0n || offset >= 1n << 64n
        || (typeof length !== 'bigint' && !Number.isInteger(length))) {
      throw new TypeError('mmapFd(fd: integer, offset: bigint in [0, 2^64), length: bigint | integer)');
    }
    const c = this.engine.calls;
    if (c.inCallback) return -BigInt(EDEADLK);
    c.enter();
    try {
      return this.mmapFile(fd, offset, length);
    } finally {
      c.leave();
    }
  }

  private mmapFile(fd: number, offset: bigint, length: bigint | number): bigint {
    if (offset % PAGE_SIZE !== 0n) return -BigInt(EINVAL);
    const f = this.fds.get(fd);
    if (!f) return -BigInt(EBADF);
    const len = BigInt(length);
    if (len <= 0n) return -BigInt(EINVAL);
    if (!f.mmap) return -BigInt(ENODEV);
    const pages = pagesOf(len) / PAGE_SIZE;
    // The file's own checks come first (a region's size rule answers EINVAL for any length past
    // it); a count past 2^53 reaches them clamped, exact enough for every size a file has.
    const m = f.mmap(this, offset, pages > MAX_PAGES ? Number.MAX_SAFE_INTEGER : Number(pages));
    if (typeof m === 'number') return -BigInt(-m);
    const start = this.place(pages * PAGE_SIZE, m);
    if (start < 0n) {
      m.release();
      return -BigInt(ENOMEM);
    }
    return start;
  }

  /**
   * Unmaps exactly one file mapping made by `mmapFd`: [addr, addr + length rounded up to pages).
   * 0, or -EINVAL (no such mapping, or a kind of mapping that is not unmapped).
   *
   * Anonymous memory from `mmap` is never unmapped (-EINVAL, nothing changed): it lasts until the
   * process exits. Linux would unmap it while pinned pages live on for the device; the engine
   * keeps one page per address (type1 pins, dmaRw, KVM slots and accelerator DMA all reach memory
   * through it), so freeing it would lose what a device still writes (docs/conformance.md §13.2).
   */
  munmap(addr: bigint, length: bigint | number): number {
    this.live('munmap');
    this.notInCallback('munmap');
    if (typeof addr !== 'bigint' || (typeof length !== 'bigint' && !Number.isInteger(length))) {
      throw new TypeError('munmap(addr: bigint, length: bigint | integer)');
    }
    const c = this.engine.calls;
    if (c.inCallback) return -EDEADLK;
    c.enter();
    try {
      return this.unmapFile(addr, length);
    } finally {
      c.leave();
    }
  }

  private unmapFile(addr: bigint, length: bigint | number): number {
    const len = BigInt(length);
    if (len <= 0n) return -EINVAL;
    const i = this.regions.findIndex((r) => r.start === addr);
    const r = this.regions[i];
    if (!r || !r.file || r.end - r.start !== pagesOf(len)) return -EINVAL;
    const ret = r.file.unmap();
    if (ret < 0) return ret;
    this.removeRegion(i);
    return 0;
  }

  /** Reserves `bytes` (whole pages) of address space: the start, or -1n when there is no room. */
  private place(bytes: bigint, file?: FileMapping): bigint {
    const start = this.nextAddr;
    if (start + bytes > USER_TOP) return -1n;
    this.regions.push({ start, end: start + bytes, file });
    this.nextAddr = start + bytes + PAGE_SIZE;
    return start;
  }

  private removeRegion(i: number): void {
    if (this.lastRegion === this.regions[i]) this.lastRegion = undefined;
    this.regions.splice(i, 1);
  }

  /** The region containing `addr`, or undefined. */
  private regionOf(addr: bigint): Region | undefined {
    const hot = this.lastRegion; // tools touch the same buffers call after call
    if (hot && addr >= hot.start && addr < hot.end) return hot;
    const r = this.regions;
    let lo = 0;
    let hi = r.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (addr < r[mid].start) hi = mid - 1;
      else if (addr >= r[mid].end) lo = mid + 1;
      else return (this.lastRegion = r[mid]);
    }
    return undefined;
  }

  /**
   * Whether every byte of [addr, addr+len) is anonymous memory (len 0: true). A device-side query
   * (type1 MAP and replay, pinning): once exit has released the address space nothing is mapped.
   */
  isMapped(addr: bigint, len: bigint): boolean {
    if (len <= 0n) return true;
    if (this.mmReleased) return false;
    const r = this.regionOf(addr);
    return r !== undefined && !r.file && addr + len <= r.end;
  }

  /**
   * Index of the first page of n pages from `addr` that is not anonymous memory, or -1 if all are.
   * A device-side query like `isMapped`: 0 (n > 0) once exit has released the address space.
   */
  firstUnmappedPage(addr: bigint, n: number): number {
    if (this.mmReleased) return n > 0 ? 0 : -1;
    const r = this.regionOf(addr);
    if (!r || r.file) return n > 0 ? 0 : -1;
    const mapped = (r.end - addr) / PAGE_SIZE;
    return mapped >= BigInt(n) ? -1 : Number(mapped);
  }

  /** The region holding all of [addr, addr+length), or a RangeError naming the call. */
  private accessible(what: string, addr: bigint, length: number): Region {
    const r = this.regionOf(addr);
    if (!r || addr + BigInt(length) > r.end || r.file?.zapped) {
      throw new RangeError(`${what}: 0x${addr.toString(16)} +${length} is not mapped`);
    }
    return r;
  }

  /** Bytes at `addr`; throws RangeError if any byte is not mapped. */
  read(addr: bigint, length: number): Uint8Array {
    this.live('read');
    if (typeof addr !== 'bigint' || !Number.isInteger(length) || length < 0) {
      throw new TypeError('read(addr: bigint, length: non-negative integer)');
    }
    if (length === 0) return new Uint8Array(0);
    const reg = this.accessible('read', addr, length);
    if (reg.file) return reg.file.read(Number(addr - reg.start), length);
    const r = this.um.read(addr, length);
    if (typeof r === 'number') throw new RangeError(`read failed: errno ${-r}`);
    return r;
  }

  /** Writes `bytes` at `addr`; throws RangeError if any byte is not mapped. */
  write(addr: bigint, bytes: Uint8Array): void {
    this.live('write');
    if (typeof addr !== 'bigint' || !(bytes instanceof Uint8Array)) {
      throw new TypeError('write(addr: bigint, bytes: Uint8Array)');
    }
    if (bytes.length === 0) return;
    const reg = this.accessible('write', addr, bytes.length);
    if (reg.file) {
      reg.file.write(Number(addr - reg.start), bytes);
      return;
    }
    const r = this.um.write(addr, bytes);
    if (r < 0) throw new RangeError(`write failed: out of host memory (errno ${-r})`);
    this.markSoftDirty(addr, bytes.length);
  }

  /**
   * Records a CPU-side store of `length` bytes at `addr` in the process's soft-dirty record (the
   * PTE soft-dirty bit): `proc.write`, type1 `dmaRw` writes, vCPU stores and SVA device writes
   * call it after storing, with the range they stored into (anonymous memory only). Never fails.
   */
  markSoftDirty(addr: bigint, length: number): void {
    this.live('markSoftDirty');
    this.sd.mark(addr, length);
  }

  /**
   * markSoftDirty for a batch of `n` stores of `bytes` bytes whose host addresses are f64 values
   * at core address `addrs` (the vCPU batch form). @internal
   */
  markSoftDirtyMany(addrs: number, n: number, bytes: number): void {
    this.live('markSoftDirty');
    this.sd.markMany(addrs, n, bytes);
  }

  /** Clears the soft-dirty record of every page (writing "4" to clear_refs). */
  clearSoftDirty(): void {
    this.live('clearSoftDirty');
    this.sd.clear();
    for (const r of this.regions) if (!r.file) r.softDirty = false;
  }

  /**
   * The soft-dirty bitmap of the pages from addr's to the one holding addr + length - 1: bit i
   * (byte i >> 3, bit i & 7) is page i of that range; holes and file mappings read 0.
   */
  softDirty(addr: bigint, length: bigint | number): Uint8Array {
    this.live('softDirty');
    if (typeof addr !== 'bigint' || addr < 0n || addr >= 1n << 64n
        || (typeof length !== 'bigint' && !Number.isInteger(length))) {
      throw new TypeError('softDirty(addr: bigint in [0, 2^64), length: bigint | integer)');
    }
    const len = BigInt(length);
    if (len <= 0n) throw new RangeError('softDirty: length must be positive');
    const first = addr >> PAGE_SHIFT;
    const last = (addr + len - 1n) >> PAGE_SHIFT;
    if (last - first >= 1n << 31n) throw new RangeError('softDirty: at most 2^31 pages per call');
    const n = Number(last - first + 1n);
    return this.sd.read(first, n, (fill) => {
      for (const r of this.regions) {
        if (r.file || !(r.softDirty || this.sd.all)) continue;
        const a = r.start >> PAGE_SHIFT;
        const b = (r.end >> PAGE_SHIFT) - 1n;
        if (b < first || a > last) continue;
        const lo = a > first ? a : first;
        const hi = b < last ? b : last;
        fill(Number(lo - first), Number(hi - lo + 1n));
      }
    });
  }

  /** The lowest free fd number (from 3, as stdio holds 0 to 2). */
  lowestFreeFd(): number {
    this.live('lowestFreeFd');
    let fd = 3;
    while (this.fds.has(fd)) fd++;
    return fd;
  }

  /** Installs `file` at the lowest free fd and returns that fd. */
  allocFd(file: OpenFile): number {
    this.live('allocFd');
    const fd = this.lowestFreeFd();
    this.fds.set(fd, file);
    return fd;
  }

  /** Opens a device path: a new fd, or -errno (-ENOENT for a path no subsystem has). */
  open(path: string): number {
    this.live('open');
    this.notInCallback('open');
    if (typeof path !== 'string') throw new TypeError('open(path: string)');
    const c = this.engine.calls;
    if (c.inCallback) return -EDEADLK;
    c.enter();
    try {
      for (const s of this.engine.subsystems) {
        const r = s.open?.(this, path);
        if (r !== undefined) return r;
      }
      return -ENOENT;
    } finally {
      c.leave();
    }
  }

  /** The ioctl syscall: a value >= 0 or -errno; -EBADF for an fd that is not open. */
  ioctl(fd: number, request: number, arg?: IoctlArg): number {
    this.live('ioctl');
    this.notInCallback('ioctl');
    const c = this.engine.calls;
    if (c.inCallback) return -EDEADLK;
    const f = this.fds.get(fd);
    if (!f) return -EBADF;
    c.enter();
    try {
      return f.ioctl(this, request, arg);
    } finally {
      c.leave();
    }
  }

  /**
   * The VM of a VM fd (docs/conformance.md §19.1): -EBADF when not open, -EINVAL for another kind
   * of fd.
   */
  kvmFromFd(vmFd: number): Kvm | number {
    this.live('kvmFromFd');
    return kvmFromFd(this, vmFd);
  }

  /**
   * The vCPU of a vCPU fd (docs/conformance.md §19.1): -EBADF when not open, -EINVAL for another
   * kind of fd.
   */
  vcpuFromFd(vcpuFd: number): Vcpu | number {
    this.live('vcpuFromFd');
    return vcpuFromFd(this, vcpuFd);
  }

  /**
   * Closes `fd`: 0 or -EBADF. The file's release runs once nothing else refers to it. -EDEADLK,
   * with nothing closed, when that release would pull state from under a call in progress (a
   * close in a dma_unmap op that would detach a group from the container running the UNMAP: the
   * kernel defers the release to the end of that syscall; the engine has no such point).
   */
  close(fd: number): number {
    this.live('close');
    this.notInCallback('close');
    const c = this.engine.calls;
    if (c.inCallback) return -EDEADLK;
    const f = this.fds.get(fd);
    if (!f) return -EBADF;
    if (f.releaseBlocked?.(false)) return -EDEADLK;
    c.enter();
    try {
      this.fds.delete(fd);
      f.close(this);
      return 0;
    } finally {
      c.leave();
    }
  }

  /**
   * Ends the process as the kernel's do_exit does: (1) the address space is released, devices stop
   * translating it; (2) file mappings are removed in ascending address order; (3) anonymous memory
   * is freed; (4) fds are closed in ascending order, each as `close`; (5) the mm is freed, and its
   * locked_vm with it. Returns 0; 0 again if it has already exited; -EDEADLK, with nothing done,
   * when closing its files would pull state from under a call in progress (inside a dma_unmap op
   * of one of its containers). From its start every other method throws, in callbacks the exit
   * runs too.
   *
   * Exit allocates nothing and cannot fail half-way: every step only frees. (A detach that changes
   * the page size under dirty tracking may try to re-grain the bitmaps; when that allocation fails
   * the container keeps its page size, as any detach does, and the last detach frees it all.)
   */
  exit(): number {
    this.notInCallback('exit');
    const c = this.engine.calls;
    if (c.inCallback) return -EDEADLK;
    if (this.exitedFlag) return 0;
    for (const f of this.fds.values()) if (f.releaseBlocked?.(true)) return -EDEADLK;
    c.enter();
    try {
      this.exitSteps();
    } finally {
      c.leave();
    }
    return 0;
  }

  private exitSteps(): void {
    this.exitedFlag = true;
    this.mmReleased = true;
    for (const s of this.engine.subsystems) s.mmRelease?.(this);
    for (const r of this.regions) r.file?.release();
    this.regions.length = 0;
    this.lastRegion = undefined;
    this.um.dispose();
    this.sd.dispose();
    let err: unknown;
    for (const fd of [...this.fds.keys()].sort((a, b) => a - b)) {
      const f = this.fds.get(fd);
      if (!f) continue; // closed by an earlier release
      this.fds.delete(fd);
      try {
        f.close(this);
      } catch (e) {
        // A callback run by a release threw (docs/conformance.md §19.8): finish the exit, then
        // rethrow.
        if (err === undefined) err = e;
      }
    }
    // Every container of the process was torn down with its last group; what is left charged is
    // pins a driver never released, which the kernel leaves on the mm it now frees.
    this.lockedVm = 0n;
    for (const s of this.engine.subsystems) s.exitDone?.(this);
    this.engine.forgetProcess(this);
    if (err !== undefined) throw err;
  }
}

/** `bytes` rounded up to whole pages. */
function pagesOf(bytes: bigint): bigint {
  return (bytes + PAGE_SIZE - 1n) & ~(PAGE_SIZE - 1n);
}
