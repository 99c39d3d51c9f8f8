// proc.exit with KVM (docs/conformance.md §19.10, §13.3): it releases ring mappings, guest memory,
// then VM, vCPU and KVM device fds as close does; a VM kept by a node outlives its process.
import { describe, expect, it } from 'vitest';
import { createEngine, errno, type Kvm } from '../../src/index.js';
import { LOG, setupK, setupKV, slotA, withVcpu } from './setup.js';

describe('proc.exit and KVM', () => {
  it('destroys a VM with slots, a ring mapping, vCPUs and a KVM device, returning its memory', async () => {
    const engine = await createEngine();
    const before = engine.memoryInUse();
    const kk = await setupK({}, engine);
    expect(kk.CAP(192, 8192)).toBe(0);
    const r = withVcpu(kk);
    expect(kk.RGN(0, LOG, 0x100000, 0x10000, kk.U)).toBe(0);
    expect(kk.P.mmapFd(r.c0, 0x40000n, 8192)).toBeGreaterThan(0n);
    r.W(0x101000);
    expect(kk.kvm.writeTrackAddGfn(0x102n)).toBe(0);
    const cd = new Uint8Array([4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(kk.P.ioctl(kk.vm, 0xc00caee0, cd)).toBe(0);
    expect(kk.kvm.usersCount).toBe(3);
    expect(kk.P.exit()).toBe(0);
    expect(kk.kvm.usersCount).toBe(0);
    expect(kk.kvm.destroyed).toBe(true);
    expect(engine.memoryInUse()).toBe(before);
  });

  it('a VM held by a node survives; guest accesses fault, gfnToHva answers', async () => {
    const k = withVcpu(await setupK());
    slotA(k);
    const N = {};
    expect(k.kvm.pageTrackRegisterNotifier(N)).toBe(0);
    k.P.exit();
    expect(k.kvm.usersCount).toBe(1);
    expect(k.v0.write(0x100000n, Uint8Array.of(1))).toBe(-errno.EFAULT);
    expect(k.v0.writeGuest(0x100000n, Uint8Array.of(1))).toBe(-errno.EFAULT);
    expect(k.v0.read(0x100000n, 1)).toBe(-errno.EFAULT);
    expect(k.kvm.gfnToHva(0x101n)).toBe(k.U + 0x1000n);
    expect(k.kvm.writeTrackAddGfn(0x101n)).toBe(0);
    k.kvm.pageTrackUnregisterNotifier(N);
    expect(k.kvm.usersCount).toBe(0);
  });

  it('closes the KVM-VFIO device as close does: the unlink callback runs, the group detaches', async () => {
    const k = await setupKV();
    expect(k.ADD(k.gfd)).toBe(0);
    k.dfd();
    const seen: Kvm[] = [];
    k.D.registerKvmUnlink((v) => seen.push(v));
    expect(k.kvm.usersCount).toBe(3);
    k.P.exit();
    expect(seen).toEqual([k.kvm]);
    expect(k.D.kvm).toBe(null);
    expect(k.kvm.usersCount).toBe(0);
    expect(k.M.file).toBe(null);
    const P2 = k.engine.createProcess();
    expect(P2.open(`/dev/vfio/${k.M.id}`)).toBeGreaterThan(0);
  });
});
