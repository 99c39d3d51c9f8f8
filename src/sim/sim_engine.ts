// What the simulator and the replayer need of an engine: the typed API of src/index.ts, narrowed
// to the calls they make, so that tests can hand them any engine with these members.
import type { DirtyContainer } from '../export/dirty_report.js';
import type { AccelEngine } from './accel_workload.js';
import type { MdevDevice } from './vgpu.js';
import type { Core } from '../wasm.js';

/**
 * The engine: processes, groups, containers, and the shared accelerators with their SVA binds
 * (AccelEngine, the typed API's `createAccelerator` and `sva`).
 */
export interface SimEngine extends AccelEngine {
  createProcess(opts?: { memlockLimit?: bigint; capIpcLock?: boolean }): SimProcess;
  createGroup(opts: {
    kind: 'iommu' | 'emulated';
    devices?: (string | { name: string; dmaLogging?: { maxRanges?: number } })[];
    iommuDirtyTracking?: boolean;
  }): SimGroup;
  openContainer(proc: SimProcess): SimContainer;
  memoryInUse(): number;
}
export interface SimProcess {
  mmap(length: bigint | number): bigint;
  /**
   * The VMM's syscalls (KvmProcess), where the engine serves them itself; the in-process Process
   * has none and is wrapped by localKvmProcess (local_kvm.ts, `vmmProcess`).
   */
  readonly kvm?: KvmProcess;
}

/**
 * What the VMM needs of its process: the syscalls with the kernel's struct bytes or a value
 * (KVM, the VFIO device features, iommufd), guest stores through a vCPU fd, and process memory
 * read and written. A bitmap or ring the kernel wrote into process memory is copied straight
 * into the simulator's local Wasm core (readInto) and the per-bit work runs there, whichever
 * engine serves the process. Implemented over the in-process Process (local_kvm.ts) and over a
 * server connection (src/server/remote_engine.ts).
 */
export interface KvmProcess {
  /** open(2): an fd, or -errno. */
  open(path: string): number;
  /** ioctl(2) with no argument, a value, or struct bytes updated in place: the result or -errno. */
  ioctl(fd: number, request: number, arg?: number | bigint | Uint8Array): number;
  /** close(2): 0 or -errno. */
  close(fd: number): number;
  mmap(length: bigint | number): bigint;
  /** munmap(2): 0 or -errno. */
  munmap(addr: bigint, length: bigint | number): number;
  /** mmap(2) of an fd (a vCPU's dirty ring): the address, or -errno as a bigint. */
  mmapFd(fd: number, offset: bigint, length: number): bigint;
  /** `length` bytes of process memory from `addr`. @throws Error when refused */
  read(addr: bigint, length: number): Uint8Array;
  /** Stores `bytes` at `addr`. @throws Error when refused */
  write(addr: bigint, bytes: Uint8Array): void;
  /**
   * Copies `length` bytes of process memory from `addr` to byte address `dst` of the simulator's
   * local core (a bitmap's words, a staging buffer).
   * @throws VfioError named `op` when the memory is not mapped (nothing past `length` is written)
   */
  readInto(addr: bigint, dst: number, length: number, op: string): void;
  /**
   * Stores `length` bytes of the local core from byte address `src` at process address `addr`.
   * @throws VfioError named `op` when the memory is not mapped (then nothing is stored)
   */
  writeFrom(addr: bigint, src: number, length: number, op: string): void;
  /**
   * Guest stores through vCPU fd `vcpuFd` (store i: data[i·bytesEach ..] at gpas[i]): the stores
   * made, fewer only when the vCPU's dirty ring became soft-full; or -errno with none made.
   */
  vcpuWriteMany(vcpuFd: number, gpas: BigUint64Array, data: Uint8Array, bytesEach: number): number;
  /**
   * The core of the engine the process is in, where that is this thread's engine; absent on a
   * process in another engine (a server's).
   */
  readonly core?: Core;
  /**
   * The same stores from a batch at addresses of `core` (`n` u64 gpas at core address `gpas`,
   * their bytes at `data`): no copy out and back. Present with `core`.
   */
  vcpuWriteManyAt?(vcpuFd: number, gpas: number, data: number, n: number, bytesEach: number): number;
}
export interface SimGroup {
  readonly id: number;
  readonly devices: readonly MdevDevice[];
}
export interface SimContainer extends DirtyContainer {
  attach(group: SimGroup): void;
  setIommu(type: 'type1v2' | 'type1'): void;
  /** The fd of an attached group in the container's process, where attaching opened one (a group opens once). */
  attachedGroupFd?(group: SimGroup): number;
  openDevice(group: SimGroup, name?: string): number;
  /** VFIO_GROUP_UNSET_CONTAINER of an attached group. */
  detach(group: SimGroup): void;
  map(m: { iova: bigint; vaddr: bigint; size: bigint; read?: boolean; write?: boolean }): void;
  unmap(m: { iova: bigint; size: bigint }): bigint;
  unmapAll(): bigint;
  readonly dirty: DirtyContainer['dirty'] & { start(): void; stop(): void };
  close(): void;
}
