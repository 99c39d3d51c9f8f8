// The files of KVM: /dev/kvm, a VM fd, a vCPU fd (mappable: its dirty ring), and the subsystem's
// answer to `proc.open`. What each ioctl does is in ioctl.ts.
import { EBADF, EEXIST, EINVAL } from '../../assembly/constants.js';
import type { FileMapping, IoctlArg, OpenFile, Subsystem } from '../file.js';
import type { Process } from '../process.js';
import { PAGE_SIZE } from '../u64.js';
import { ringMapping } from './dirty_ring.js';
import { u64Arg } from './args.js';
import { devIoctl, KVM_CREATE_VCPU, KVM_CREATE_VM, vmIoctl } from './ioctl.js';
import { Kvm } from './kvm.js';
import { Vcpu } from './vcpu.js';

/** An fd of /dev/kvm. */
export class KvmDevFile implements OpenFile {
  readonly kind = 'kvm';

  ioctl(proc: Process, request: number, arg: IoctlArg): number {
    if (request === KVM_CREATE_VM) return createVm(proc, u64Arg(arg, 'KVM_CREATE_VM'));
    return devIoctl(proc, request, arg);
  }

  close(): void {}
}

/** A VM fd: holds the VM's first reference. */
export class VmFile implements OpenFile {
  readonly kind = 'kvm-vm';
  readonly kvm: Kvm;

  constructor(kvm: Kvm) {
    this.kvm = kvm;
  }

  ioctl(proc: Process, request: number, arg: IoctlArg): number {
    if (request === KVM_CREATE_VCPU) return createVcpu(proc, this.kvm, u64Arg(arg, 'KVM_CREATE_VCPU'));
    return vmIoctl(proc, this.kvm, request, arg);
  }

  close(): void {
    this.kvm.put();
  }
}

/** A vCPU fd: lives while the fd is open or a ring mapping exists; holds a VM reference. */
export class VcpuFile implements OpenFile {
  readonly kind = 'kvm-vcpu';
  readonly vcpu: Vcpu;
  private refs = 1;

  constructor(vcpu: Vcpu) {
    this.vcpu = vcpu;
  }

  /** No vCPU ioctl is modelled (KVM_RUN included): EINVAL. */
  ioctl(proc: Process): number {
    return -EINVAL;
  }

  close(): void {
    this.put();
  }

  private put(): void {
    if (--this.refs === 0) this.vcpu.kvm.put();
  }

  /** The ring is mapped at pages [64, 64 + size/4096) of the vCPU fd; no other page maps. */
  mmap(proc: Process, offset: bigint, pages: number): FileMapping | number {
    const first = offset / PAGE_SIZE;
    if (first > BigInt(Number.MAX_SAFE_INTEGER)) return -EINVAL;
    const m = ringMapping(this.vcpu, Number(first), pages, () => this.put());
    if (typeof m !== 'number') this.refs++;
    return m;
  }
}

/** KVM_CREATE_VM: type 0 only; a new VM owned by `proc` and its fd. */
function createVm(proc: Process, type: bigint): number {
  if (type !== 0n) return -EINVAL;
  const vm = proc.engine.core.x.kvm_vm_create(proc.engine.kvmUserMemSlots);
  if (vm < 0) return vm;
  return proc.allocFd(new VmFile(new Kvm(proc.engine, proc, vm)));
}

/**
 * KVM_CREATE_VCPU, first failure wins: id ≥ 4 × kvmMaxVcpus → EINVAL, the vCPU limit reached →
 * EINVAL, a duplicate id → EEXIST; a ring when the VM has one.
 */
function createVcpu(proc: Process, kvm: Kvm, id: bigint): number {
  const max = proc.engine.kvmMaxVcpus;
  if (id >= BigInt(4 * max)) return -EINVAL;
  if (kvm.vcpus.length >= max) return -EINVAL;
  const n = Number(id);
  if (kvm.vcpus.some((v) => v.id === n)) return -EEXIST;
  let ring = 0;
  if (kvm.ringSize) {
    ring = proc.engine.core.x.kvm_ring_create(kvm.ringSize);
    if (ring < 0) return ring;
  }
  const v = new Vcpu(kvm, n, ring);
  kvm.vcpus.push(v);
  kvm.get();
  return proc.allocFd(new VcpuFile(v));
}

/** `proc.open('/dev/kvm')`: a new fd each time. */
export const kvmFiles: Subsystem = {
  open(proc: Process, path: string): number | undefined {
    if (path !== '/dev/kvm') return undefined;
    return proc.allocFd(new KvmDevFile());
  },
};

/** P.kvmFromFd: the VM of a VM fd, -EBADF (not open) or -EINVAL (another kind of file). */
export function kvmFromFd(proc: Process, fd: number): Kvm | number {
  const f = proc.fds.get(fd);
  if (!f) return -EBADF;
  return f instanceof VmFile ? f.kvm : -EINVAL;
}

/** P.vcpuFromFd: the vCPU of a vCPU fd, -EBADF or -EINVAL. */
export function vcpuFromFd(proc: Process, fd: number): Vcpu | number {
  const f = proc.fds.get(fd);
  if (!f) return -EBADF;
  return f instanceof VcpuFile ? f.vcpu : -EINVAL;
}
