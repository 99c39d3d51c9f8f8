// docs/conformance.md §7.1-§7.4, §7.6 and §9-§10: START/STOP, GET_BITMAP validation (V59), the
// INT_MAX limit, what is cleared and re-set after a read, and faults while writing the user bitmap.
import { describe, expect, it } from 'vitest';
import { errno } from '../../src/errors.js';
import { uapi } from '../../src/uapi.js';
import { failsCleanly, lastWordBeforeHole, must, P, RW_FLAGS, setup, TWO64, unmappedAddr } from '../helpers/setups.js';

const ZERO8 = '00 00 00 00 00 00 00 00';

describe('V59 GET validation', () => {
  it('V59 GET validation', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(4)), 'MAP');
    must(s.START(), 'START');
    failsCleanly(s, errno.EINVAL, () => s.GET(0n, P(4), 8, { pgsize: 0x2000n }).ret);
    failsCleanly(s, errno.EINVAL, () => s.GET(0x800n, P(4), 8).ret);
    failsCleanly(s, errno.EINVAL, () => s.GET(0n, 0n, 8).ret);
    failsCleanly(s, errno.EINVAL, () => s.GET(0n, P(65), 8).ret);
    expect(s.GET(0n, P(64), 8).ret).toBe(0);
    failsCleanly(s, errno.EINVAL, () => s.GET(0n, P(4), 8, { bsize: 0x10000008n }).ret);
    expect(s.STOP()).toBe(0);
    failsCleanly(s, errno.EINVAL, () => s.GET(0n, P(4), 8).ret);
  });

  it('bitmap.size 0, pgsize 0 and an unaligned size are EINVAL', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(4)), 'MAP');
    must(s.START(), 'START');
    failsCleanly(s, errno.EINVAL, () => s.GET(0n, P(4), 8, { bsize: 0n }).ret);
    failsCleanly(s, errno.EINVAL, () => s.GET(0n, P(4), 8, { pgsize: 0n }).ret);
    failsCleanly(s, errno.EINVAL, () => s.GET(0n, 0x1800n, 8).ret);
  });

  it('the same bisection rule as v2 unmap', async () => {
    const s = await setup('E');
    must(s.MAP(P(4), P(4)), 'MAP');
    must(s.START(), 'START');
    failsCleanly(s, errno.EINVAL, () => s.GET(P(5), P(3), 8).ret);
    failsCleanly(s, errno.EINVAL, () => s.GET(P(4), P(2), 8).ret);
    failsCleanly(s, errno.EINVAL, () => s.GET(0n, P(6), 8).ret);
    expect(s.GET(0n, P(8), 8).ret).toBe(0);
  });

  it.each([['linux-6.18', errno.EOVERFLOW], ['linux-6.6', errno.EINVAL]] as const)('wrap, and a range ending at 2^64 (%s)', async (profile, wrapErr) => {
    const s = await setup('E', { profile });
    must(s.MAP(TWO64 - P(4), P(4)), 'MAP');
    must(s.START(), 'START');
    failsCleanly(s, wrapErr, () => s.GET(TWO64 - P(1), P(2), 8).ret);
    // 6.6 rejects iova + size = 2^64 itself (strict wrap of the exclusive end); 6.18 allows it.
    if (profile === 'linux-6.6') failsCleanly(s, errno.EINVAL, () => s.GET(TWO64 - P(4), P(4), 8).ret);
    else expect(s.GET(TWO64 - P(4), P(4), 8).ret).toBe(0);
  });

  it('a bitmap range past the user-space top is EINVAL; an unmapped one below it EFAULT', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(4)), 'MAP');
    must(s.START(), 'START');
    must(s.RW('M', P(1), 8, true).ret, 'RW');
    failsCleanly(s, errno.EINVAL, () => s.GET(0n, P(4), 8, { data: uapi.TASK_SIZE_MAX - 4n }).ret);
    failsCleanly(s, errno.EINVAL, () => s.GET(0n, P(4), 8, { data: 0xffff_8000_0000_0000n }).ret);
    failsCleanly(s, errno.EFAULT, () => s.GET(0n, P(4), 8, { data: unmappedAddr(s.proc) }).ret);
    expect(s.GET(0n, P(4), 8).hex).toBe('02 00 00 00 00 00 00 00'); // the dma kept its bitmap
  });
});

describe('§7.7 a range with no dmas touches no user memory', () => {
  it('GET and unmap-with-bitmap succeed even with an unmapped bitmap address', async () => {
    const s = await setup('E');
    must(s.MAP(P(0x100), P(1)), 'MAP');
    must(s.START(), 'START');
    const data = unmappedAddr(s.proc);
    expect(s.GET(0n, P(64), 8, { data }).ret).toBe(0);
    const r = s.UMB(0n, P(64), 8, { data });
    expect([r.ret, r.size]).toEqual([0, 0n]);
  });
});

describe('§7.2 START / §7.3 STOP', () => {
  it('an allocation failure in START is ENOMEM: everything allocated is freed, tracking stays off (docs/conformance.md §9-§10)', async (ctx) => {
    const s = await setup('E');
    const e = s.engine as unknown as { failNthAllocation?: (n: number) => void; memoryInUse?: () => number };
    if (typeof e.failNthAllocation !== 'function' || typeof e.memoryInUse !== 'function') ctx.skip();
    for (let i = 0; i < 4; i++) must(s.MAP(P(0x100 * i), P(100)), 'MAP');
    must(s.PIN('M', P(0x100), 1), 'PIN');
    const heap = e.memoryInUse!();
    let failures = 0;
    for (let n = 1; n < 64; n++) {
      e.failNthAllocation!(n);
      const ret = s.START();
      e.failNthAllocation!(0);
      if (ret === 0) break;
      failures++;
      expect(ret).toBe(-errno.ENOMEM);
      expect(s.container().tracking).toBe(false);
      expect(s.container().dmas.map((d) => d.bitmap)).toEqual([null, null, null, null]);
      expect(e.memoryInUse!()).toBe(heap);
    }
    expect(failures).toBeGreaterThanOrEqual(4); // one bitmap per dma at least
    expect(s.container().tracking).toBe(true);
    expect(s.GET(0n, P(0x400), 128).bytes[0x20]).toBe(1); // the pinned page P(0x100), bit 256
  });

  it('START is allowed with no dmas; START again does not reset the bitmaps', async () => {
    const s = await setup('E');
    expect(s.START()).toBe(0);
    must(s.MAP(0n, P(4)), 'MAP');
    must(s.RW('M', P(1), 8, true).ret, 'RW');
    expect(s.START()).toBe(0);
    expect(s.GET(0n, P(4), 8).hex).toBe('02 00 00 00 00 00 00 00');
  });

  it('STOP discards every bitmap; a later START begins from the pinned pages', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(4)), 'MAP');
    must(s.START(), 'START');
    must(s.PIN('M', P(3), 1), 'PIN');
    must(s.RW('M', P(1), 8, true).ret, 'RW');
    expect(s.STOP()).toBe(0);
    expect(s.container().tracking).toBe(false);
    expect(s.container().dmas[0].bitmap).toBe(null);
    expect(s.START()).toBe(0);
    expect(s.GET(0n, P(4), 8).hex).toBe('08 00 00 00 00 00 00 00');
  });

  it('a dma of more than INT_MAX pages makes START fail with EINVAL; tracking stays off', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(4)), 'small');
    must(s.MAP(P(0x10_0000), P(0x8000_0000n), RW_FLAGS, s.proc.mmap(0x1000)), 'huge');
    failsCleanly(s, errno.EINVAL, () => s.START());
    expect(s.container().tracking).toBe(false);
    expect(s.container().dmas.map((d) => d.bitmap)).toEqual([null, null]);
  });

  it('a MAP while tracking gets a zeroed bitmap (E)', async () => {
    const s = await setup('E');
    must(s.START(), 'START');
    must(s.MAP(0n, P(4)), 'MAP');
    expect(s.container().dmas[0].bitmap).not.toBe(null);
    expect(s.GET(0n, P(4), 8).hex).toBe(ZERO8);
  });

  it('a MAP while tracking is reported all dirty in I (iommu_mapped, non-pinned scope)', async () => {
    const s = await setup('I');
    must(s.START(), 'START');
    must(s.MAP(0n, P(4)), 'MAP');
    expect(s.GET(0n, P(4), 8).hex).toBe('0f 00 00 00 00 00 00 00');
  });
});

describe('§7.6 cleared and re-set after a read', () => {
  it('a page pinned in an interval is reported for it; dma_rw marks are reported once', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(8)), 'MAP');
    must(s.START(), 'START');
    must(s.PIN('M', P(2), 1), 'PIN');
    s.UNPIN('M', P(2), 1);
    must(s.RW('M', P(5), 1, true).ret, 'RW');
    expect(s.GET(0n, P(8), 8).hex).toBe('24 00 00 00 00 00 00 00');
    expect(s.GET(0n, P(8), 8).hex).toBe(ZERO8);
  });

  it('a pin of an already-pinned page sets no new bit; unpin clears none', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(4)), 'MAP');
    must(s.PIN('M', P(1), 1), 'PIN');
    must(s.START(), 'START');
    expect(s.GET(0n, P(4), 8).hex).toBe('02 00 00 00 00 00 00 00');
    must(s.PIN('M', P(1), 1), 'PIN again');
    s.UNPIN('M', P(1), 1);
    s.UNPIN('M', P(1), 1);
    expect(s.refs(0n)).toEqual({});
    expect(s.GET(0n, P(4), 8).hex).toBe('02 00 00 00 00 00 00 00');
    expect(s.GET(0n, P(4), 8).hex).toBe(ZERO8);
  });

  it('bits set by a failed pin call are kept (docs/conformance.md §9-§10)', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(4)), 'MAP');
    must(s.START(), 'START');
    expect(s.PIN('M', P(2), 4)).toBe(-errno.EINVAL);
    expect(s.refs(0n)).toEqual({});
    expect(s.GET(0n, P(4), 8).hex).toBe('0c 00 00 00 00 00 00 00');
    expect(s.GET(0n, P(4), 8).hex).toBe(ZERO8);
  });
});

describe('§7.4 step 5: faults while writing the user bitmap', () => {
  it('a write that would fault part-way writes nothing; the dma keeps its bitmap', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(128)), 'MAP');
    must(s.START(), 'START');
    must(s.RW('M', P(1), 8, true).ret, 'RW');
    must(s.RW('M', P(100), 8, true).ret, 'RW');
    const data = lastWordBeforeHole(s.proc);
    s.proc.write(data, new Uint8Array(8).fill(0x77));
    failsCleanly(s, errno.EFAULT, () => s.GET(0n, P(128), 16, { data }).ret);
    expect([...s.proc.read(data, 8)]).toEqual(Array(8).fill(0x77));
    expect(s.GET(0n, P(128), 16).hex).toBe('02 00 00 00 00 00 00 00 00 00 00 00 10 00 00 00');
  });

  it('GET: dmas before the fault are reported and reset; the faulting dma keeps its bits', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(64)), 'A');
    must(s.MAP(P(64), P(64)), 'B');
    must(s.START(), 'START');
    must(s.RW('M', P(1), 8, true).ret, 'RW A');
    must(s.RW('M', P(65), 8, true).ret, 'RW B');
    const data = lastWordBeforeHole(s.proc);
    expect(s.GET(0n, P(128), 16, { data }).ret).toBe(-errno.EFAULT);
    expect([...s.proc.read(data, 8)]).toEqual([2, 0, 0, 0, 0, 0, 0, 0]);
    expect(s.GET(0n, P(128), 16).hex).toBe('00 00 00 00 00 00 00 00 02 00 00 00 00 00 00 00');
  });

  it('unmap with bitmap: the loop stops at the fault; dmas removed before it stay removed', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(64)), 'A');
    must(s.MAP(P(64), P(64)), 'B');
    must(s.START(), 'START');
    must(s.RW('M', P(1), 8, true).ret, 'RW A');
    must(s.RW('M', P(65), 8, true).ret, 'RW B');
    const data = lastWordBeforeHole(s.proc);
    const r = s.UMB(0n, P(128), 16, { data });
    expect(r.ret).toBe(-errno.EFAULT);
    expect(r.size).toBe(P(128)); // nothing copied back
    expect([...s.proc.read(data, 8)]).toEqual([2, 0, 0, 0, 0, 0, 0, 0]);
    expect(s.dmas()).toEqual([[P(64), P(64)]]);
    expect(s.container().dmaAvail).toBe(65534);
    expect(s.GET(P(64), P(64), 8).hex).toBe('02 00 00 00 00 00 00 00');
  });
});
