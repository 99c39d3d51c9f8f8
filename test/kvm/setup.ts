// The setups and shorthands of the KVM acceptance vectors: K, KR, KV, RGN, GET, CLR, CAP, W,
// ATTR/ADD/DEL.
import { expect } from 'vitest';
import { createEngine, uapi, type Engine, type EngineOptions, type Kvm, type Process, type Vcpu } from '../../src/index.js';
import type { Group, VfioDevice } from '../../src/vfio/group.js';
import { hex, setU32, setU64, u32 } from '../helpers/uapi_structs.js';

export { hex };
export const LOG = uapi.KVM_MEM_LOG_DIRTY_PAGES;
export const RO = uapi.KVM_MEM_READONLY;

/** Setup K (plus KR's ring and KV's group when asked). */
export interface K {
  engine: Engine;
  P: Process;
  kfd: number;
  vm: number;
  kvm: Kvm;
  U: bigint;
  /** RGN(slot, flags, gpa, size, uaddr). */
  RGN(slot: number, flags: number, gpa: bigint | number, size: bigint | number, uaddr: bigint): number;
  /** KVM_GET_DIRTY_LOG of slot into a zero-filled buffer: its hex, or the errno. */
  GET(slot: number, ptr?: bigint): string | number;
  /** KVM_CLEAR_DIRTY_LOG with the bitmap bytes at a fresh buffer (or an explicit pointer). */
  CLR(slot: number, first: bigint | number, num: number, bytes?: Uint8Array | bigint): number;
  CAP(cap: number, a0: bigint | number, flags?: number): number;
  vcpu(id: number): [number, Vcpu];
  /** The buffer used by GET (reused). */
  buf: bigint;
}

export interface KRSetup extends K {
  c0: number;
  v0: Vcpu;
  W(gpa: bigint | number): void;
}

/** Setup K: engine defaults (or options), a process, /dev/kvm, a VM, U = mmap(0x200000). */
export async function setupK(o: EngineOptions = {}, engine?: Engine): Promise<K> {
  const e = engine ?? (await createEngine(o));
  const P = e.createProcess();
  const kfd = P.open('/dev/kvm');
  const vm = P.ioctl(kfd, uapi.KVM_CREATE_VM, 0);
  expect(vm).toBeGreaterThan(0);
  const kvm = P.kvmFromFd(vm) as Kvm;
  const U = P.mmap(0x200000);
  const buf = P.mmap(0x100000);
  return kit(e, P, kfd, vm, kvm, U, buf);
}

/** The shorthands over one VM fd. */
export function kit(engine: Engine, P: Process, kfd: number, vm: number, kvm: Kvm, U: bigint, buf: bigint): K {
  const k: K = {
    engine, P, kfd, vm, kvm, U, buf,
    RGN: (slot, flags, gpa, size, uaddr) => P.ioctl(vm, uapi.KVM_SET_USER_MEMORY_REGION, region(slot, flags, BigInt(gpa), BigInt(size), uaddr)),
    GET(slot, ptr) {
      const s = kvm.slots.get(slot);
      const n = s ? Math.ceil(s.npages / 64) * 8 : 8;
      const p = ptr ?? buf;
      if (ptr === undefined) P.write(buf, new Uint8Array(n));
      const r = P.ioctl(vm, uapi.KVM_GET_DIRTY_LOG, dirtyLog(slot, p));
      if (r !== 0) return r;
      return hex(P.read(p, n));
    },
    CLR(slot, first, num, bytes) {
      let p: bigint;
      if (typeof bytes === 'bigint') p = bytes;
      else {
        p = buf + 0x80000n;
        if (bytes && bytes.length) P.write(p, bytes);
      }
      return P.ioctl(vm, uapi.KVM_CLEAR_DIRTY_LOG, clearLog(slot, num, BigInt(first), p));
    },
    CAP: (cap, a0, flags = 0) => P.ioctl(vm, uapi.KVM_ENABLE_CAP, enableCap(cap, flags, BigInt(a0))),
    vcpu(id) {
      const fd = P.ioctl(vm, uapi.KVM_CREATE_VCPU, id);
      expect(fd).toBeGreaterThan(0);
      return [fd, P.vcpuFromFd(fd) as Vcpu];
    },
  };
  return k;
}

/** Adds c0/v0 and W. */
export function withVcpu(k: K): KRSetup {
  const [c0, v0] = k.vcpu(0);
  return { ...k, c0, v0, W: (gpa) => expect(v0.write(BigInt(gpa), Uint8Array.of(0xab))).toBe(1) };
}

/** Slot A = RGN(0, LOG, 0x100000, 0x10000, U). */
export function slotA(k: K): void {
  expect(k.RGN(0, LOG, 0x100000, 0x10000, k.U)).toBe(0);
}

/** Slot B = RGN(1, LOG, 0x200000, 0x64000, U+0x100000). */
export function slotB(k: K): void {
  expect(k.RGN(1, LOG, 0x200000, 0x64000, k.U + 0x100000n)).toBe(0);
}

/** Setup KR: CAP(192, 4096) after CREATE_VM; c0; R = mmapFd(c0, 0x40000, 4096). Slots are the caller's. */
export async function setupKR(o: EngineOptions = {}): Promise<KRSetup & { R: bigint }> {
  const k = await setupK(o);
  expect(k.CAP(192, 4096)).toBe(0);
  const kr = withVcpu(k);
  const R = k.P.mmapFd(kr.c0, 0x40000n, 4096);
  expect(R).toBeGreaterThan(0n);
  return { ...kr, R };
}

export interface KV extends K {
  M: Group;
  D: VfioDevice;
  gfd: number;
  cfd: number;
  kv: number;
  ATTR(flags: number, group: number, attr: bigint | number, fd: number): number;
  ADD(fd: number): number;
  DEL(fd: number): number;
  dfd(): number;
  MAP(iova: bigint, size: bigint): number;
}

/** Setup KV: K plus an emulated group M with device 'vgpu0', its container, and a KVM-VFIO device. */
export async function setupKV(o: EngineOptions = {}): Promise<KV> {
  const k = await setupK(o);
  const M = k.engine.createGroup({ kind: 'emulated', devices: ['vgpu0'] });
  const D = M.devices[0];
  const { P } = k;
  const cfd = P.open('/dev/vfio/vfio');
  const gfd = P.open(`/dev/vfio/${M.id}`);
  expect(P.ioctl(gfd, uapi.VFIO_GROUP_SET_CONTAINER, cfd)).toBe(0);
  expect(P.ioctl(cfd, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU)).toBe(0);
  const cd = createDevice(4, 0, 0);
  expect(P.ioctl(k.vm, uapi.KVM_CREATE_DEVICE, cd)).toBe(0);
  const kv = u32(cd, 4);
  const fdBuf = P.mmap(4096);
  const ATTR = (flags: number, group: number, attr: bigint | number, fd: number): number => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, fd, true);
    P.write(fdBuf, b);
    return P.ioctl(kvSetup.kv, uapi.KVM_SET_DEVICE_ATTR, deviceAttr(flags, group, BigInt(attr), fdBuf));
  };
  const kvSetup: KV = {
    ...k, M, D, gfd, cfd, kv, ATTR,
    ADD: (fd) => ATTR(0, 1, 1, fd),
    DEL: (fd) => ATTR(0, 1, 2, fd),
    dfd: () => P.ioctl(gfd, uapi.VFIO_GROUP_GET_DEVICE_FD, 'vgpu0'),
    MAP: (iova, size) => P.ioctl(cfd, uapi.VFIO_IOMMU_MAP_DMA, dmaMap(iova, size, P.mmap(Number(size)))),
  };
  return kvSetup;
}

function dmaMap(iova: bigint, size: bigint, vaddr: bigint): Uint8Array {
  return pack(32, [[0, 32, 32], [4, 32, 3], [8, 64, vaddr], [16, 64, iova], [24, 64, size]]);
}

/** A struct's bytes: u32 or u64 fields at their offsets, cut to `length` (short: EFAULT). */
function pack(size: number, fields: [number, 32 | 64, number | bigint][], length = size): Uint8Array {
  const b = new Uint8Array(size);
  for (const [off, bits, v] of fields) {
    if (bits === 32) setU32(b, off, Number(v));
    else setU64(b, off, BigInt(v));
  }
  return b.slice(0, length);
}

/** struct kvm_userspace_memory_region. */
export function region(slot: number, flags: number, gpa: bigint, size: bigint, uaddr: bigint, length = 32): Uint8Array {
  return pack(32, [[0, 32, slot], [4, 32, flags], [8, 64, gpa], [16, 64, size], [24, 64, uaddr]], length);
}

/** struct kvm_dirty_log. */
export function dirtyLog(slot: number, ptr: bigint, length = 16): Uint8Array {
  return pack(16, [[0, 32, slot], [8, 64, ptr]], length);
}

/** struct kvm_clear_dirty_log. */
export function clearLog(slot: number, num: number, first: bigint, ptr: bigint, length = 24): Uint8Array {
  return pack(24, [[0, 32, slot], [4, 32, num], [8, 64, first], [16, 64, ptr]], length);
}

/** struct kvm_enable_cap. */
export function enableCap(cap: number, flags: number, a0: bigint, a1 = 0n, length = 104): Uint8Array {
  return pack(104, [[0, 32, cap], [4, 32, flags], [8, 64, a0], [16, 64, a1]], length);
}

/** struct kvm_create_device. */
export function createDevice(type: number, fd: number, flags: number, length = 12): Uint8Array {
  return pack(12, [[0, 32, type], [4, 32, fd], [8, 32, flags]], length);
}

/** struct kvm_device_attr. */
export function deviceAttr(flags: number, group: number, attr: bigint, addr: bigint, length = 24): Uint8Array {
  return pack(24, [[0, 32, flags], [4, 32, group], [8, 64, attr], [16, 64, addr]], length);
}

/** The hex of n zero bytes. */
export const zeros = (n: number): string => hex(new Uint8Array(n));
/** Hex such as `08 …` (bytes in order, space separated) padded with zeros to n bytes. */
export function hx(s: string, n = 8): string {
  const parts = s.trim().split(/\s+/);
  while (parts.length < n) parts.push('00');
  return parts.join(' ').toLowerCase();
}
/** Bytes from hex. */
export function hb(s: string, n = 8): Uint8Array {
  return Uint8Array.from(hx(s, n).split(' '), (x) => parseInt(x, 16));
}
