// The in-process Process as the VMM uses it (KvmProcess): the same calls, with a vCPU's stores
// made through the engine's Vcpu of the fd, and process memory copied to and from the core by
// the core itself (its anonymous memory lives in the engine's core, which is the simulator's).
import { check, vfioError } from '../errors.js';
import type { Process } from '../process.js';
import type { Vcpu } from '../kvm/vcpu.js';
import type { Core } from '../wasm.js';
import type { KvmProcess, SimProcess } from './sim_engine.js';

/** The VMM's calls on `proc`: its own `kvm` member where it has one, else the in-process Process's. */
export function vmmProcess(proc: SimProcess): KvmProcess {
  return proc.kvm ?? localKvmProcess(proc as unknown as Process);
}

/** `proc` as a KvmProcess: every call is the Process's own. */
export function localKvmProcess(proc: Process): KvmProcess {
  return new LocalKvmProcess(proc);
}

// A class rather than an object of closures: each simulation makes one, and methods shared by all
// of them keep the optimised code that calls them valid from one compare cell to the next.
class LocalKvmProcess implements KvmProcess {
  private readonly vcpus = new Map<number, Vcpu>();

  constructor(private readonly proc: Process) {}

  get core(): Core {
    return this.proc.engine.core;
  }

  private vcpuOf(fd: number): Vcpu {
    let v = this.vcpus.get(fd);
    if (!v) {
      const r = this.proc.vcpuFromFd(fd);
      if (typeof r === 'number') throw vfioError(r, 'vcpuFromFd');
      this.vcpus.set(fd, (v = r));
    }
    return v;
  }

  open(path: string): number {
    return this.proc.open(path);
  }

  ioctl(fd: number, request: number, arg?: number | bigint | Uint8Array): number {
    return this.proc.ioctl(fd, request, arg);
  }

  close(fd: number): number {
    this.vcpus.delete(fd);
    return this.proc.close(fd);
  }

  mmap(length: bigint | number): bigint {
    return this.proc.mmap(length);
  }

  munmap(addr: bigint, length: bigint | number): number {
    return this.proc.munmap(addr, length);
  }

  mmapFd(fd: number, offset: bigint, length: number): bigint {
    return this.proc.mmapFd(fd, offset, length);
  }

  read(addr: bigint, length: number): Uint8Array {
    return this.proc.read(addr, length);
  }

  write(addr: bigint, bytes: Uint8Array): void {
    this.proc.write(addr, bytes);
  }

  readInto(addr: bigint, dst: number, length: number, op: string): void {
    const proc = this.proc;
    const core = this.core;
    named(op, () => {
      // anonymous memory core to core; a file mapping (a vCPU's ring) through the file
      if (!proc.isMapped(addr, BigInt(length))) core.u8().set(proc.read(addr, length), dst);
      else check(core.x.um_read(proc.um.handle, Number(addr), dst, length), 'um_read');
    });
  }

  writeFrom(addr: bigint, src: number, length: number, op: string): void {
    const proc = this.proc;
    const core = this.core;
    named(op, () => {
      if (!proc.isMapped(addr, BigInt(length))) return proc.write(addr, core.u8().slice(src, src + length));
      check(core.x.um_write(proc.um.handle, Number(addr), src, length), 'um_write');
      proc.markSoftDirty(addr, length); // what write() records of a CPU-side store
    });
  }

  vcpuWriteMany(fd: number, gpas: BigUint64Array, data: Uint8Array, bytesEach: number): number {
    const v = this.vcpuOf(fd);
    return stoppedOnlyWhenFull(v, v.writeMany(gpas, data, bytesEach), gpas.length);
  }

  vcpuWriteManyAt(fd: number, gpas: number, data: number, n: number, bytesEach: number): number {
    const v = this.vcpuOf(fd);
    return stoppedOnlyWhenFull(v, v.writeManyAt(gpas, data, n, bytesEach), n);
  }
}

/** `r`, the stores a batch of `n` made, which stops short only at a soft-full ring. */
function stoppedOnlyWhenFull(v: Vcpu, r: number, n: number): number {
  if (r >= 0 && r < n && !v.dirtyRingSoftFull) throw new Error(`vcpu.writeMany stopped after ${r} of ${n} stores without a full ring`);
  return r;
}

/** Runs `f`, its error's message prefixed with `op`. */
function named(op: string, f: () => void): void {
  try {
    f();
  } catch (e) {
    if (e instanceof Error) e.message = `${op}: ${e.message}`;
    throw e;
  }
}
