// docs/conformance.md §6.6 vfio_dma_rw: EPERM without READ even for writes, chunks spanning
// adjacent dmas, EINVAL in gaps, partial success keeps earlier chunks and their dirty bits; V41.
import { describe, expect, it } from 'vitest';
import { errno } from '../../src/errors.js';
import { uapi } from '../../src/uapi.js';
import { hex } from '../helpers/uapi_structs.js';
import { failsCleanly, must, P, setup, unmappedAddr } from '../helpers/setups.js';

const R = uapi.VFIO_DMA_MAP_FLAG_READ;
const W = uapi.VFIO_DMA_MAP_FLAG_WRITE;
const ZERO8 = '00 00 00 00 00 00 00 00';

describe('V41 dma_rw marking', () => {
  it('V41 dma_rw marking', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(8)), 'MAP');
    must(s.START(), 'START');
    expect(s.RW('M', 0x1ff0n, 0x20, true).ret).toBe(0);
    expect(s.RW('M', 0x5000n, 0x10, false).ret).toBe(0);
    expect(s.GET(0n, P(8), 8).hex).toBe('06 00 00 00 00 00 00 00');
    expect(s.GET(0n, P(8), 8).hex).toBe(ZERO8);
  });
});

describe('§6.6 copies', () => {
  it('a write lands at vaddr + offset; a read returns user memory', async () => {
    const s = await setup('E');
    const va = s.proc.mmap(P(4));
    must(s.MAP(P(0x10), P(4), R | W, va), 'MAP');
    const data = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
    expect(s.RW('M', P(0x11) - 8n, 16, true, data).ret).toBe(0);
    expect(hex(s.proc.read(va + 0x1000n - 8n, 16))).toBe(hex(data));
    s.proc.write(va + 0x3000n, Uint8Array.of(9, 8, 7));
    const r = s.RW('M', P(0x13), 3, false);
    expect([r.ret, ...r.data]).toEqual([0, 9, 8, 7]);
  });

  it('one call spans adjacent dmas, each at its own vaddr; all touched pages are marked', async () => {
    const s = await setup('E');
    const a = s.proc.mmap(P(1));
    const b = s.proc.mmap(P(1));
    must(s.MAP(0n, P(1), R | W, a), 'A');
    must(s.MAP(P(1), P(1), R | W, b), 'B');
    must(s.START(), 'START');
    const data = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
    expect(s.RW('M', 0xff8n, 16, true, data).ret).toBe(0);
    expect(hex(s.proc.read(a + 0xff8n, 8))).toBe(hex(data.subarray(0, 8)));
    expect(hex(s.proc.read(b, 8))).toBe(hex(data.subarray(8)));
    expect(s.GET(0n, P(2), 8).hex).toBe('03 00 00 00 00 00 00 00');
  });

  it('reads never mark', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(4)), 'MAP');
    must(s.START(), 'START');
    expect(s.RW('M', 0n, 0x4000, false).ret).toBe(0);
    expect(s.GET(0n, P(4), 8).hex).toBe(ZERO8);
  });
});

describe('§6.6 errors', () => {
  it('EPERM: a write to a READ-only dma, and any access to a dma without READ', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(1), R), 'R');
    must(s.MAP(P(1), P(1), W), 'W');
    must(s.START(), 'START');
    failsCleanly(s, errno.EPERM, () => s.RW('M', 0n, 8, true).ret);
    expect(s.RW('M', 0n, 8, false).ret).toBe(0);
    failsCleanly(s, errno.EPERM, () => s.RW('M', P(1), 8, true).ret); // WRITE alone is not enough
    failsCleanly(s, errno.EPERM, () => s.RW('M', P(1), 8, false).ret);
  });

  it('EINVAL in a gap; EINVAL for length 0', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(1)), 'MAP');
    failsCleanly(s, errno.EINVAL, () => s.RW('M', P(1), 8, false).ret);
    failsCleanly(s, errno.EINVAL, () => s.RW('M', 0n, 0, true).ret);
  });

  it('a chunk that fails after one that was copied keeps the first chunk and its dirty bit (EINVAL gap)', async () => {
    const s = await setup('E');
    const a = s.proc.mmap(P(1));
    must(s.MAP(0n, P(1), R | W, a), 'A');
    must(s.MAP(P(2), P(1)), 'C');
    must(s.START(), 'START');
    const data = Uint8Array.from({ length: 16 }, (_, i) => 0x50 + i);
    expect(s.RW('M', 0xff8n, 16, true, data).ret).toBe(-errno.EINVAL);
    expect(hex(s.proc.read(a + 0xff8n, 8))).toBe(hex(data.subarray(0, 8)));
    expect(s.GET(0n, P(3), 8).hex).toBe('01 00 00 00 00 00 00 00');
  });

  it('a chunk that fails with EPERM keeps the earlier chunk', async () => {
    const s = await setup('E');
    const a = s.proc.mmap(P(1));
    must(s.MAP(0n, P(1), R | W, a), 'A');
    must(s.MAP(P(1), P(1), R), 'B read-only');
    must(s.START(), 'START');
    const data = new Uint8Array(16).fill(0x77);
    expect(s.RW('M', 0xff8n, 16, true, data).ret).toBe(-errno.EPERM);
    expect(hex(s.proc.read(a + 0xff8n, 8))).toBe('77 77 77 77 77 77 77 77');
    expect(s.GET(0n, P(2), 8).hex).toBe('01 00 00 00 00 00 00 00');
  });

  it('a copy from unmapped user memory is EFAULT (E does not pin at MAP)', async () => {
    const s = await setup('E');
    must(s.MAP(0n, P(1), R | W, unmappedAddr(s.proc)), 'MAP');
    must(s.START(), 'START');
    failsCleanly(s, errno.EFAULT, () => s.RW('M', 0n, 8, true).ret);
    failsCleanly(s, errno.EFAULT, () => s.RW('M', 0n, 8, false).ret);
  });

  it('a device that is not open is EINVAL (vfio_dma_rw entry)', async () => {
    const s = await setup('E', { openDevices: false });
    must(s.MAP(0n, P(1)), 'MAP');
    failsCleanly(s, errno.EINVAL, () => s.RW('M', 0n, 8, false).ret);
  });

  it('works for an IOMMU-backed device in I', async () => {
    const s = await setup('I');
    const va = s.proc.mmap(P(1));
    must(s.MAP(P(0x10), P(1), R | W, va), 'MAP');
    expect(s.RW('G', P(0x10), 4, true, Uint8Array.of(1, 2, 3, 4)).ret).toBe(0);
    expect([...s.proc.read(va, 4)]).toEqual([1, 2, 3, 4]);
  });
});
