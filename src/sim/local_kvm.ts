// The in-process Process as the VMM uses it (KvmProcess): the same calls, with a vCPU's stores
// made through the engine's Vcpu of the fd, and process memory copied to and from the core by
// the core itself (its anonymous memory lives in the engine's core, which is the simulator's).
import { check, vfioError } from '../errors.js';
import type { Process } from '../process.js';
import type { Vcpu } from '../kvm/vcpu.js';
import type { KvmProcess, SimProcess } from './sim_engine.js';

/** The VMM's calls on `proc`: its own `kvm` member where it has one, else the in-process Process's. */
export function vmmProcess(proc: SimProcess): KvmProcess {
  return proc.kvm ?? localKvmProcess(proc as unknown as Process);
}

/** `proc` as a KvmProcess: every call is the Process's own. */
export function localKvmProcess(proc: Process): KvmProcess {
  const core = proc.engine.core;
  const vcpus = new Map<number, Vcpu>();
  const vcpuOf = (fd: number): Vcpu => {
    let v = vcpus.get(fd);
    if (!v) {
      const r = proc.vcpuFromFd(fd);
      if (typeof r === 'number') throw vfioError(r, 'vcpuFromFd');
      vcpus.set(fd, (v = r));
    }
    return v;
  };
  return {
    open: (path) => proc.open(path),
    ioctl: (fd, request, arg) => proc.ioctl(fd, request, arg),
    close: (fd) => {
      vcpus.delete(fd);
      return proc.close(fd);
    },
    mmap: (length) => proc.mmap(length),
    munmap: (addr, length) => proc.munmap(addr, length),
    mmapFd: (fd, offset, length) => proc.mmapFd(fd, offset, length),
    read: (addr, length) => proc.read(addr, length),
    write: (addr, bytes) => proc.write(addr, bytes),
    readInto: (addr, dst, length, op) => named(op, () => {
      // anonymous memory core to core; a file mapping (a vCPU's ring) through the file
      if (!proc.isMapped(addr, BigInt(length))) core.u8().set(proc.read(addr, length), dst);
      else check(core.x.um_read(proc.um.handle, Number(addr), dst, length), 'um_read');
    }),
    writeFrom: (addr, src, length, op) => named(op, () => {
      if (!proc.isMapped(addr, BigInt(length))) return proc.write(addr, core.u8().slice(src, src + length));
      check(core.x.um_write(proc.um.handle, Number(addr), src, length), 'um_write');
      proc.markSoftDirty(addr, length); // what write() records of a CPU-side store
    }),
    vcpuWriteMany(fd, gpas, data, bytesEach) {
      const v = vcpuOf(fd);
      const r = v.writeMany(gpas, data, bytesEach);
      if (r >= 0 && r < gpas.length && !v.dirtyRingSoftFull) throw new Error(`vcpu.writeMany stopped after ${r} of ${gpas.length} stores without a full ring`);
      return r;
    },
  };
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
