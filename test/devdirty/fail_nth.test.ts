// Fail-the-Nth-allocation sweeps over every allocating call of device logging and iommufd: each
// failure is -ENOMEM with nothing changed (no bit lost, no id or block leaked), and the call
// succeeds once the failure lands past its last allocation.
import { describe, expect, it } from 'vitest';
import { errno } from '../../src/index.js';
import { hex, P, rep, setupF, setupL, struct, userBuffer } from './helpers.js';

const { ENOMEM } = errno;

/** Runs `call` with the nth allocation failing, n = 1, 2, ... until it succeeds; checks each failure. */
function sweep(engine: import('../../src/index.js').Engine, call: () => number, check: () => void): number {
  for (let n = 1; n < 200; n++) {
    const live = engine.core.x.heap_live();
    engine.failNthAllocation(n);
    const r = call();
    const pending = engine.core.x.heap_fail_pending();
    engine.failNthAllocation(0);
    if (r === 0 || pending !== 0) {
      expect(r).toBe(0);
      return n;
    }
    expect(r).toBe(-ENOMEM);
    expect(engine.core.x.heap_live()).toBe(live);
    check();
  }
  throw new Error('the call never succeeded');
}

describe('fail-the-Nth sweeps', () => {
  it('DMA_LOGGING_START: logging stays off', async () => {
    const s = await setupL();
    const ptr = s.proc.mmap(48);
    s.proc.write(ptr, struct(48, [[0, 0n], [8, P(0x10)], [16, P(0x100)], [24, P(0x10)], [32, 0x800000n], [40, 0x800000n]]));
    const n = sweep(s.engine, () => s.START(0x1000n, [[0n, 0n], [0n, 0n], [0n, 0n]], { ptr }).ret, () => expect(s.REP().ret).toBe(-errno.EINVAL));
    expect(n).toBeGreaterThan(1);
    expect(s.W(P(1))).toBe(0);
    expect(s.REP().hex).toBe('02 00 00 00 00 00 00 00');
  });

  it('DMA_LOGGING_REPORT into an unwritten bitmap: the log is kept', async () => {
    const s = await setupL();
    expect(s.START().ret).toBe(0);
    expect(s.W(P(1))).toBe(0);
    const data = s.proc.mmap(0x3000);
    const n = sweep(s.engine, () => s.REP(0n, P(0x40), 0x1000n, 8, { data: data + 0xffcn }).ret, () => {});
    expect(n).toBeGreaterThan(1);
    expect(hex(s.proc.read(data + 0xffcn, 8))).toBe('02 00 00 00 00 00 00 00');
  });

  it('dmaWrite into unwritten memory: nothing written, nothing marked', async () => {
    const s = await setupL();
    expect(s.START().ret).toBe(0);
    sweep(s.engine, () => s.dev.dmaWrite(P(0x40) - 2n, Uint8Array.of(5, 6, 7, 8)), () => expect(s.REP(0n, P(0x80), 0x1000n, 16).hex).toBe(rep(0, 16)));
    expect(s.REP(0n, P(0x80), 0x1000n, 16).hex).toBe(`00 00 00 00 00 00 00 80 01 ${rep(0, 7)}`);
    expect(hex(s.dev.dmaRead(P(0x40) - 2n, 4) as Uint8Array)).toBe('05 06 07 08');
  });

  it('IOAS_MAP under a dirty HWPT: no area', async () => {
    const s = await setupF();
    const V = s.proc.mmap(0x10000);
    sweep(s.engine, () => s.fd.map(1, 0x400000n, 0x10000n, V).ret, () => expect(s.fd.unmap(1, 0x400000n, 0x10000n).ret).toBe(-errno.ENOENT));
    expect(s.fd.unmap(1, 0x400000n, 0x10000n).ret).toBe(0);
  });

  it('HWPT_ALLOC over several areas: no HWPT, its id unused', async () => {
    const s = await setupF();
    const V = s.proc.mmap(0x10000);
    expect(s.fd.map(1, 0x400000n, 0x10000n, V).ret).toBe(0);
    expect(s.fd.map(1, 0x800000n, 0x10000n, V).ret).toBe(0);
    const n = sweep(s.engine, () => (s.fd.hwptAlloc(2, 2, 1) === 4 ? 0 : -ENOMEM), () => expect(s.fd.destroy(4)).toBe(-errno.ENOENT));
    expect(n).toBeGreaterThan(2);
  });

  it('GET_DIRTY_BITMAP into an unwritten bitmap: the dirty bits are kept', async () => {
    const s = await setupF();
    expect(s.ENABLE()).toBe(0);
    expect(s.D(0x100000n)).toBe(0);
    const data = s.proc.mmap(0x2000);
    sweep(s.engine, () => s.GET(0x100000n, 0x80000n, 0x1000n, { data: data + 0xff8n }).ret, () => {});
    expect(hex(s.proc.read(data + 0xff8n, 16))).toBe(`01 ${rep(0, 15)}`);
    void userBuffer;
  });

  it('IOVA_RANGES and GET_HW_INFO writing unwritten user memory: nothing written back', async () => {
    const s = await setupF();
    const arr = s.proc.mmap(64);
    const b = struct(32, [[0, 32], [4, 1], [8, 4], [16, arr, 8]]);
    sweep(s.engine, () => s.fd.call(0x3b84, b), () => expect(hex(b.subarray(8, 12))).toBe('04 00 00 00'));
    expect(b[8]).toBeGreaterThan(0);
    const data = s.proc.mmap(64);
    const h = struct(40, [[0, 40], [8, 2], [12, 64], [16, data, 8]]);
    sweep(s.engine, () => s.fd.call(0x3b8a, h), () => expect(h[12]).toBe(64));
    expect(h[12]).toBe(0);
  });
});
