// Acceptance vectors group D (docs/conformance.md §17): what SVA device writes do to dirty
// tracking, and the soft-dirty record.
import { describe, expect, it } from 'vitest';
import { errno, type Engine, type Process, type VfioDevice as RealDevice } from '../../src/index.js';
import { P, setup } from '../helpers/setups.js';
import { b, hex, setupA } from './setup.js';
import { setupP } from '../ioasid/setup_p.js';
import type { IoasidNbArgs } from '../../src/ioasid/ioasid.js';

const { EFAULT } = errno;

describe('accelerator vectors D', () => {
  it.each(['E', 'I'] as const)('V40. An SVA write is invisible to type1 (setup %s)', async (kind) => {
    const s = await setup(kind);
    const P1 = s.proc as unknown as Process;
    const V = P1.mmap(0x10000);
    expect(s.MAP(0n, 0x10000n, undefined, V)).toBe(0);
    expect(s.START()).toBe(0);
    const { D1 } = await setupA(s.engine as unknown as Engine);
    expect(P1.open('/dev/zip-0')).toBeGreaterThanOrEqual(3);
    P1.clearSoftDirty();
    const before = s.GET(0n, P(16), 8).hex;
    expect(D1.dmaWrite(1, V + 0x1000n, b(0x5a))).toBe(0);
    if (kind === 'E') {
      expect(before).toBe('00 00 00 00 00 00 00 00');
      expect(s.GET(0n, P(16), 8).hex).toBe('00 00 00 00 00 00 00 00');
      const rw = s.RW('M', 0x1000n, 1, false);
      expect([rw.ret, [...rw.data]]).toEqual([0, [0x5a]]);
      expect(hex(P1.softDirty(V, 0x10000))).toBe('0200');
      expect(s.GET(0n, P(16), 8).hex).toBe('00 00 00 00 00 00 00 00');
    } else {
      expect(before).toBe('ff ff 00 00 00 00 00 00');
      expect(s.GET(0n, P(16), 8).hex).toBe('ff ff 00 00 00 00 00 00');
    }
  });

  it('V41. The soft-dirty record', async () => {
    const { D1, P1, V1 } = await setupA();
    const fd = P1.open('/dev/zip-0');
    const sd = (a = V1, n: number | bigint = 0x4000) => hex(P1.softDirty(a, n));
    expect(sd()).toBe('0f');
    P1.clearSoftDirty();
    expect(sd()).toBe('00');
    P1.write(V1 + 0x2fffn, b(1, 2));
    expect(sd()).toBe('0c');
    P1.clearSoftDirty();
    expect(D1.dmaRead(1, V1, 16)).toHaveLength(16);
    expect(sd()).toBe('00');
    expect(D1.dmaWrite(1, V1 + 0x3fffn, b(1, 2))).toBe(-EFAULT);
    expect(sd()).toBe('00');
    expect(D1.dmaWrite(1, V1, b(1))).toBe(0);
    expect(sd()).toBe('01');
    expect(sd(V1 + 0x800n, 0x1000)).toBe('01');
    const W = P1.mmap(0x2000);
    expect(sd(W, 0x2000)).toBe('03');
    P1.clearSoftDirty();
    expect(sd(W, 0x2000)).toBe('00');
    const A1 = P1.mmapFd(fd, 0n, 4096);
    P1.write(A1, b(1));
    expect(sd(A1, 4096)).toBe('00');
  });

  it('softDirty: length <= 0 throws RangeError; holes read 0; bits past the range are 0', async () => {
    const { P1, V1 } = await setupA();
    expect(() => P1.softDirty(V1, 0)).toThrow(RangeError);
    expect(() => P1.softDirty(V1, -1n)).toThrow(RangeError);
    expect(hex(P1.softDirty(V1 - 0x2000n, 0x8000))).toBe('3c');
    expect(hex(P1.softDirty(V1 + 0x1000n, 0x2001))).toBe('07');
    expect(() => P1.softDirty(-1n, 1)).toThrow(TypeError);
    expect(hex(P1.softDirty(0xffff_ffff_ffff_0000n, 0x10000))).toBe('0000');
  });

  it('V42. CPU copies versus passthrough DMA', async () => {
    const e = await setup('E');
    const P1 = e.proc as unknown as Process;
    const V = P1.mmap(0x4000);
    expect(e.MAP(0n, 0x4000n, undefined, V)).toBe(0);
    P1.clearSoftDirty();
    expect(e.RW('M', 0x2000n, 8, true).ret).toBe(0);
    expect(hex(P1.softDirty(V, 0x4000))).toBe('04');
    expect(e.RW('M', 0x1000n, 8, false).ret).toBe(0);
    expect(hex(P1.softDirty(V, 0x4000))).toBe('04');
    const i = await setup('I');
    const P2 = i.proc as unknown as Process;
    const W = P2.mmap(0x4000);
    expect(i.MAP(0n, 0x4000n, undefined, W)).toBe(0);
    P2.clearSoftDirty();
    const g = i.groups.G.devices[0] as unknown as RealDevice;
    expect(g.dmaWrite(0x1000n, b(1))).toBe(0);
    expect([...P2.read(W + 0x1000n, 1)]).toEqual([1]);
    expect(hex(P2.softDirty(W, 0x4000))).toBe('00');
  });

  it('V43. Exit order: VM PASIDs, then the process\'s PASID', async () => {
    const { engine, P1, ALLOC } = await setupP();
    await setupA(engine);
    expect(ALLOC()).toBe(1);
    P1.open('/dev/zip-0');
    expect(engine.sva.pasidOf(P1)).toBe(2);
    const G: [number, IoasidNbArgs][] = [];
    engine.ioasid.addNotifier((e, a) => {
      G.push([e, a]);
    });
    expect(P1.exit()).toBe(0);
    expect(G).toEqual([
      [2, { id: 1, sid: 1, token: P1, pdata: null }],
      [2, { id: 2, sid: 0, token: engine.ioasid.systemToken, pdata: P1 }],
    ]);
    expect(engine.ioasid.setInfo(1)).toBe(null);
    expect(engine.ioasid.getAvailable()).toBe(1015808);
    expect(engine.ioasid.idInfo(1)).toBe(null);
    expect(engine.ioasid.idInfo(2)).toBe(null);
  });
});
