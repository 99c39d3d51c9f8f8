// KVM callbacks (docs/conformance.md §19.7, §19.8): callbacks run inside the triggering call,
// newest node first; forbidden calls throw and change nothing; an exception is rethrown once the
// operation is complete.
import { describe, expect, it } from 'vitest';
import { uapi, type Kvm } from '../../src/index.js';
import { hx, LOG, setupK, setupKR, setupKV, slotA, withVcpu } from './setup.js';

describe('callbacks', () => {
  it('trackWrite: nodes run newest first, for every emulated piece, whoever tracks the page', async () => {
    const k = withVcpu(await setupK());
    slotA(k);
    const order: string[] = [];
    const a = { trackWrite: (g: bigint) => order.push(`a ${g.toString(16)}`) };
    const b = { trackWrite: (g: bigint) => order.push(`b ${g.toString(16)}`) };
    k.kvm.pageTrackRegisterNotifier(a);
    k.kvm.pageTrackRegisterNotifier(b);
    k.kvm.writeTrackAddGfn(0x101n);
    k.kvm.writeTrackAddGfn(0x103n);
    expect(k.v0.write(0x100ff8n, new Uint8Array(0x2010))).toBe(0x2010);
    expect(order).toEqual(['b 101000', 'a 101000', 'b 103000', 'a 103000']);
  });

  it('a callback changes what later pieces of the same store do', async () => {
    const k = withVcpu(await setupK());
    slotA(k);
    const seen: bigint[] = [];
    const n = {
      trackWrite: (g: bigint) => {
        seen.push(g);
        if (g === 0x101000n) k.kvm.writeTrackAddGfn(0x102n);
      },
    };
    k.kvm.pageTrackRegisterNotifier(n);
    k.kvm.writeTrackAddGfn(0x101n);
    expect(k.v0.write(0x101000n, new Uint8Array(0x2000))).toBe(0x2000);
    expect(seen).toEqual([0x101000n, 0x102000n]);
  });

  it('registering, vCPU calls and ioctls throw inside trackWrite; the store completes, then rethrows', async () => {
    const k = withVcpu(await setupK());
    slotA(k);
    let other = 0;
    const bad = {
      trackWrite: () => {
        expect(() => k.kvm.pageTrackUnregisterNotifier(bad)).toThrow(Error);
        expect(() => k.v0.read(0x100000n, 1)).toThrow(Error);
        expect(() => k.P.ioctl(k.vm, uapi.KVM_CHECK_EXTENSION, 3)).toThrow(Error);
        expect(k.P.read(k.U + 0x1000n, 1)).toEqual(Uint8Array.of(9));
        expect(k.kvm.gfnToHva(0x101n)).toBe(k.U + 0x1000n);
        k.kvm.pageTrackRegisterNotifier({}); // throws: rethrown by the store
      },
    };
    const good = { trackWrite: () => void other++ };
    k.kvm.pageTrackRegisterNotifier(good);
    k.kvm.pageTrackRegisterNotifier(bad);
    k.kvm.writeTrackAddGfn(0x101n);
    k.kvm.writeTrackAddGfn(0x102n);
    expect(() => k.v0.write(0x101000n, new Uint8Array(0x2000).fill(9))).toThrow(/not allowed inside a track callback/);
    expect(other).toBe(2); // both pieces ran and notified the other node
    expect(k.P.read(k.U + 0x2000n, 1)).toEqual(Uint8Array.of(9));
    expect(k.kvm.usersCount).toBe(4); // VM, vCPU and the two nodes: the refused one is not in
    expect(k.GET(0)).toBe(hx('06'));
  });

  it('an unlink callback may unregister nodes; a throw is rethrown after FILE_DEL completed', async () => {
    const k = await setupKV();
    const N = {};
    k.D.registerKvmUnlink((v: Kvm) => {
      v.pageTrackUnregisterNotifier(N);
      throw new Error('driver failed');
    });
    expect(k.ADD(k.gfd)).toBe(0);
    const d = k.dfd();
    k.D.kvm!.pageTrackRegisterNotifier(N);
    expect(k.kvm.usersCount).toBe(4);
    expect(() => k.DEL(k.gfd)).toThrow('driver failed');
    expect(k.kvm.usersCount).toBe(3);
    expect(k.M.kvm).toBe(null);
    expect(k.DEL(k.gfd)).toBe(-2);
    k.P.close(d);
  });

  it('proc.exit finishes when an unlink callback throws, then rethrows', async () => {
    const k = await setupKV();
    k.D.registerKvmUnlink(() => {
      throw new Error('boom');
    });
    expect(k.ADD(k.gfd)).toBe(0);
    k.dfd();
    expect(() => k.P.exit()).toThrow('boom');
    expect(k.P.exited).toBe(true);
    expect(k.kvm.usersCount).toBe(0);
    expect(k.M.file).toBe(null);
  });

  it('trackRemoveRegion runs for address-space-1 slots too, newest first', async () => {
    const k = await setupKR();
    expect(k.RGN(0x10002, LOG, 0x100000, 0x2000, k.U)).toBe(0);
    const seen: string[] = [];
    k.kvm.pageTrackRegisterNotifier({ trackRemoveRegion: (g, n) => seen.push(`a ${g} ${n}`) });
    k.kvm.pageTrackRegisterNotifier({ trackRemoveRegion: (g, n) => seen.push(`b ${g} ${n}`) });
    expect(k.RGN(0x10002, 0, 0, 0, 0n)).toBe(0);
    expect(seen).toEqual(['b 256 2', 'a 256 2']);
  });
});
