// Device-dirty acceptance vectors, groups B-E: DMA_LOGGING_START, lifecycle, REPORT, and type1
// beside device logging (docs/conformance.md §20.4, §20.5).
import { describe, expect, it } from 'vitest';
import { errno, uapi } from '../../src/index.js';
import { dv, hex, P, rep, setupL, struct, U64_MAX, userBuffer } from './helpers.js';

const { EINVAL, E2BIG, EFAULT, EOVERFLOW, EOPNOTSUPP } = errno;

describe('§5 B START', () => {
  it('V5 the exact buffer, bytes 8..31 unchanged', async () => {
    const s = await setupL();
    const { ret, buf } = s.START();
    expect(ret).toBe(0);
    expect(hex(buf.subarray(0, 24))).toBe('20 00 00 00 06 00 02 00 00 10 00 00 00 00 00 00 01 00 00 00 00 00 00 00');
  });

  it('V6 num_ranges 0, 257 and 256 with ranges 0; the log stays off', async () => {
    const s = await setupL();
    expect(s.START(0x1000n, [], { n: 0 }).ret).toBe(-EINVAL);
    expect(s.REP().ret).toBe(-EINVAL);
    expect(s.START(0x1000n, [], { n: 257, ptr: 0n }).ret).toBe(-E2BIG);
    expect(s.REP().ret).toBe(-EINVAL);
    expect(s.START(0x1000n, [], { n: 256, ptr: 0n }).ret).toBe(-EFAULT);
    expect(s.REP().ret).toBe(-EINVAL);
  });

  it('V9 range checks in array order; unsorted ranges accepted', async () => {
    const s = await setupL();
    expect(s.START(0x1000n, [[P(0x100), 0x800n], [0xfffffffffffff000n, 0x1000n]]).ret).toBe(-EINVAL);
    expect(s.START(0x1000n, [[0xfffffffffffff000n, 0x1000n], [P(0x100), 0x800n]]).ret).toBe(-EOVERFLOW);
    expect(s.START(0x1000n, [[P(0x10), P(0x10)], [P(0x18), P(1)]]).ret).toBe(-EINVAL);
    expect(s.START(0x1000n, [[P(0x20), P(1)], [P(0x10), P(0x10)]]).ret).toBe(0);
  });

  it('START range length 0 is EINVAL (§6 row 3)', async () => {
    const s = await setupL();
    expect(s.START(0x1000n, [[0n, 0n]]).ret).toBe(-EINVAL);
    expect(s.REP().ret).toBe(-EINVAL);
  });

  it('START page_size is not validated: 0 rejects every range by the mask test (§6 row 4)', async () => {
    const s = await setupL();
    expect(s.START(0n, [[0x1000n, 0x1000n]]).ret).toBe(-EINVAL);
    expect(s.START(0x3000n, [[0x2000n, 0x1000n]]).ret).toBe(-EINVAL); // odd mask 0x2fff
    expect(s.START(0x3000n, [[0x1000n, 0x1000n]]).ret).toBe(0); // 0x1000 passes that mask
    expect(s.FEAT(0x00020007, 8)).toBe(0);
    const { ret, buf } = s.START(0x1000n, [[0n, 0x1000n]]);
    dv(buf).setUint32(20, 0xffffffff, true); // __reserved ignored
    expect(ret).toBe(0);
  });

  it('V10 tracked page sizes written back', async () => {
    const cases: [bigint, [bigint, bigint][], string, bigint?][] = [
      [0x800n, [[0n, 0x1000000n]], '00 10 00 00 00 00 00 00'],
      [0x40000000n, [[0n, 0x40000000n]], '00 00 20 00 00 00 00 00'],
      [0x3000n, [[P(0x100), P(0x10)]], '00 20 00 00 00 00 00 00'],
      [0x200000n, [[0n, 0x1000000n]], '00 10 00 00 00 00 00 00', 0x1000n],
    ];
    for (const [p, ranges, out, pageSizes] of cases) {
      const s = await setupL({ device: { name: 'd', dmaLogging: pageSizes ? { pageSizes } : true } });
      const { ret, buf } = s.START(p, ranges);
      expect(ret).toBe(0);
      expect(hex(buf.subarray(8, 16))).toBe(out);
    }
  });

  it('V12 ranges combined to maxRanges; writes outside the tracked set are not recorded', async () => {
    const s = await setupL({ device: { name: 'd', dmaLogging: { maxRanges: 2 } } });
    expect(s.START(0x1000n, [[0n, P(1)], [P(0x10), P(1)], [P(0x12), P(1)], [P(0x100), P(1)]]).ret).toBe(0);
    expect(s.W(0x5000n)).toBe(0);
    expect(s.REP(0n, P(0x20), 0x1000n, 8).hex).toBe('20 00 00 00 00 00 00 00');
    expect(s.W(0x50000n)).toBe(0);
    expect(s.REP(0n, P(0x100), 0x1000n, 32).hex).toBe(rep(0, 32));
  });

  it('maxRanges 1 tracks one range from the first start to the last end', async () => {
    const s = await setupL({ device: { name: 'd', dmaLogging: { maxRanges: 1 } } });
    expect(s.START(0x1000n, [[P(0x20), P(1)], [0n, P(1)]]).ret).toBe(0);
    expect(s.W(P(0x10))).toBe(0);
    expect(s.W(P(0x21))).toBe(0);
    expect(s.REP(0n, P(0x40), 0x1000n, 8).hex).toBe('00 00 01 00 00 00 00 00');
  });

  it('combining takes the first pair with the strictly smallest gap', async () => {
    const s = await setupL({ device: { name: 'd', dmaLogging: { maxRanges: 2 } } });
    // gaps: [0..0]→[2] = 2 pages + 1, [2]→[4] same: the first pair merges.
    expect(s.START(0x1000n, [[0n, P(1)], [P(2), P(1)], [P(4), P(1)]]).ret).toBe(0);
    expect(s.W(P(1))).toBe(0);
    expect(s.W(P(3))).toBe(0);
    expect(s.REP(0n, P(8), 0x1000n, 8).hex).toBe('02 00 00 00 00 00 00 00');
  });

  it('V15 the tracker address space', async () => {
    const s = await setupL();
    expect(s.START(0x1000n, [[0n, 0x40000000000n], [0x80000000000n, P(1)]]).ret).toBe(-EOPNOTSUPP);
    expect(s.REP().ret).toBe(-EINVAL);
    const t = await setupL({ device: { name: 'd', dmaLogging: { addressSpaceBits: [20, 42] } } });
    expect(t.START(0x1000n, [[0n, P(1)]]).ret).toBe(-EOPNOTSUPP);
    expect(t.REP().ret).toBe(-EINVAL);
  });

  it('V15 a 4 TiB range is accepted (2^42 bytes)', async () => {
    const s = await setupL();
    expect(s.START(0x200000n, [[0n, 0x40000000000n]]).ret).toBe(0);
  });

  it('START while logging is EINVAL and the log is untouched', async () => {
    const s = await setupL();
    expect(s.START().ret).toBe(0);
    expect(s.W(P(3))).toBe(0);
    expect(s.START(0x1000n, [[P(0x100), P(1)]]).ret).toBe(-EINVAL);
    expect(s.REP().hex).toBe('08 00 00 00 00 00 00 00');
  });
});

describe('§5 C lifecycle', () => {
  it('V16 STOP when never started; START STOP STOP; a restart begins empty', async () => {
    const s = await setupL();
    expect(s.FEAT(0x00020007, 8)).toBe(0);
    expect(s.START().ret).toBe(0);
    expect(s.FEAT(0x00020007, 8)).toBe(0);
    expect(s.FEAT(0x00020007, 8)).toBe(0);
    expect(s.REP().ret).toBe(-EINVAL);
    expect(s.START().ret).toBe(0);
    expect(s.W(P(1))).toBe(0);
    expect(s.FEAT(0x00020007, 8)).toBe(0);
    expect(s.START().ret).toBe(0);
    expect(s.REP().hex).toBe(rep(0, 8));
  });

  it('V17 closing the last device fd stops logging and discards the log', async () => {
    const s = await setupL();
    expect(s.START().ret).toBe(0);
    expect(s.W(P(1))).toBe(0);
    expect(s.proc.close(s.D)).toBe(0);
    s.D = s.proc.ioctl(s.groupFd, uapi.VFIO_GROUP_GET_DEVICE_FD, 'd0');
    expect(s.REP().ret).toBe(-EINVAL);
    expect(s.START().ret).toBe(0);
    expect(s.REP().hex).toBe(rep(0, 8));
  });

  it('V17 logging survives while another device fd stays open', async () => {
    const s = await setupL();
    const D2 = s.proc.ioctl(s.groupFd, uapi.VFIO_GROUP_GET_DEVICE_FD, 'd0');
    expect(s.START().ret).toBe(0);
    expect(s.W(P(1))).toBe(0);
    expect(s.proc.close(s.D)).toBe(0);
    s.D = D2;
    expect(s.REP().hex).toBe('02 00 00 00 00 00 00 00');
  });

  it('V19 VFIO_DEVICE_RESET keeps the log (§6 row 26)', async () => {
    const s = await setupL();
    expect(s.START().ret).toBe(0);
    expect(s.W(P(1))).toBe(0);
    expect(s.proc.ioctl(s.D, 0x3b6f)).toBe(0);
    expect(s.W(P(2))).toBe(0);
    expect(s.REP().hex).toBe('06 00 00 00 00 00 00 00');
  });
});

describe('§5 D REPORT', () => {
  it('V20 argument errors', async () => {
    const s = await setupL();
    expect(s.START().ret).toBe(0);
    for (const p of [0x800n, 0x3000n, 0n]) expect(s.REP(0n, P(0x40), p).ret).toBe(-EINVAL);
    expect(s.REP(0xfffffffffffff000n, 0x1000n, 0x1000n).ret).toBe(-EOVERFLOW);
    expect(s.REP(0xfffffffffffff000n, 0x1000n, 0x800n).ret).toBe(-EINVAL);
    expect(s.REP(0n, 0n, 0x1000n).ret).toBe(-EINVAL);
  });

  it('V21 bits counted from the report iova, cleared after', async () => {
    const s = await setupL();
    expect(s.START().ret).toBe(0);
    for (const a of [0n, 0x3000n, 0x3fffn, 0x41000n]) expect(s.W(a)).toBe(0);
    expect(s.REP(0n, P(0x80), 0x1000n, 16).hex).toBe('09 00 00 00 00 00 00 00 02 00 00 00 00 00 00 00');
    expect(s.REP(0n, P(0x80), 0x1000n, 16).hex).toBe(rep(0, 16));
  });

  it('V23 bits are only ORed into the caller buffer', async () => {
    const s = await setupL();
    expect(s.START().ret).toBe(0);
    expect(s.W(P(1))).toBe(0);
    const data = userBuffer(s.proc, 8, 0xa5);
    expect(s.REP(0n, P(0x40), 0x1000n, 8, { data }).hex).toBe('a7 a5 a5 a5 a5 a5 a5 a5');
    expect(s.REP(0n, P(0x40), 0x1000n, 8, { data }).hex).toBe('a7 a5 a5 a5 a5 a5 a5 a5');
  });

  it('V25 an unaligned iova splits a unit over two bits', async () => {
    const s = await setupL();
    expect(s.START().ret).toBe(0);
    expect(s.W(P(1))).toBe(0);
    expect(s.REP(0x800n, P(4), 0x1000n, 8).hex).toBe('03 00 00 00 00 00 00 00');
    expect(s.REP(0x800n, P(4), 0x1000n, 8).hex).toBe(rep(0, 8));
  });

  it('V27 a 2 MiB unit reported at 4 KiB', async () => {
    const s = await setupL();
    const { ret, buf } = s.START(0x200000n, [[0n, 0x1000000n]]);
    expect(ret).toBe(0);
    expect(hex(buf.subarray(8, 16))).toBe('00 00 20 00 00 00 00 00');
    expect(s.W(0x201000n)).toBe(0);
    expect(s.REP(0n, 0x400000n, 0x1000n, 128).hex).toBe(`${rep(0, 64)} ${rep(0xff, 64)}`);
    expect(s.REP(0n, 0x400000n, 0x1000n, 128).hex).toBe(rep(0, 128));
  });

  it('V28 a unit straddling the report edge is reported and kept (§6 rows 6-7)', async () => {
    const s = await setupL();
    expect(s.START(0x200000n, [[0n, 0x1000000n]]).ret).toBe(0);
    expect(s.W(0x201000n)).toBe(0);
    expect(s.REP(0x300000n, 0x100000n, 0x1000n, 32).hex).toBe(rep(0xff, 32));
    expect(s.REP(0x300000n, 0x100000n, 0x1000n, 32).hex).toBe(rep(0xff, 32));
    expect(s.REP(0x200000n, 0x200000n, 0x1000n, 64).hex).toBe(rep(0xff, 64));
    expect(s.REP(0x200000n, 0x200000n, 0x1000n, 64).hex).toBe(rep(0, 64));
  });

  it('a report page larger than T folds units into one bit', async () => {
    const s = await setupL();
    expect(s.START().ret).toBe(0);
    expect(s.W(P(5))).toBe(0);
    expect(s.W(P(0x41))).toBe(0);
    expect(s.REP(0n, 0x100000n, 0x10000n, 8).hex).toBe('11 00 00 00 00 00 00 00');
    expect(s.REP(0n, 0x100000n, 0x10000n, 8).hex).toBe(rep(0, 8));
  });

  it('V30 an unusable bitmap is EFAULT before anything is read (§6 row 5)', async () => {
    const s = await setupL();
    expect(s.START().ret).toBe(0);
    expect(s.W(P(1))).toBe(0);
    expect(s.REP(0n, P(0x40), 0x1000n, 8, { data: 0n }).ret).toBe(-EFAULT);
    expect(s.REP(0n, P(0x40), 0x1000n, 8, { data: 0x7ffffffff000n }).ret).toBe(-EFAULT);
    expect(s.REP(0n, P(0x80), 0x1000n, 8, { data: 0x7fffffffeff8n }).ret).toBe(-EFAULT);
    // the extent: 16 bytes for 128 bits, the buffer holds 8 mapped bytes before an unmapped page
    const base = s.proc.mmap(0x1000);
    expect(s.REP(0n, P(0x80), 0x1000n, 8, { data: base + 0xff8n }).ret).toBe(-EFAULT);
    expect(s.REP().hex).toBe('02 00 00 00 00 00 00 00');
  });

  it('nothing is written past ⌈nbits/8⌉ bytes of the extent (§3.6, §6 row 6)', async () => {
    const s = await setupL();
    expect(s.START(0x1000n, [[0n, 0x1000000n]]).ret).toBe(0);
    expect(s.W(P(9))).toBe(0);
    expect(s.W(P(10))).toBe(0);
    const data = userBuffer(s.proc, 8, 0xa0);
    // 10 bits: units 0..9 from P(0); bit 9 set; bit 10 (P(10)) is outside the range
    expect(s.REP(0n, P(10), 0x1000n, 8, { data }).hex).toBe('a0 a2 a0 a0 a0 a0 a0 a0');
    expect(s.REP(P(10), P(1), 0x1000n, 8).hex).toBe('01 00 00 00 00 00 00 00');
  });

  it('a report ending at U64_MAX is accepted, one ending at 2^64 is EOVERFLOW', async () => {
    const s = await setupL();
    expect(s.START().ret).toBe(0);
    expect(s.W(P(1))).toBe(0);
    expect(s.REP(0x1000n, U64_MAX - 0x1000n + 1n, 1n << 62n, 8).ret).toBe(-EOVERFLOW);
    expect(s.REP(0x1000n, U64_MAX - 0x1000n, 1n << 62n, 8).hex).toBe('01 00 00 00 00 00 00 00');
  });
});

describe('§5 E type1 and device logging', () => {
  it('V32 type1 reports all-dirty while the device logs its own writes', async () => {
    const s = await setupL({ map: P(0x40) });
    expect(s.START(0x1000n, [[0n, P(0x40)]]).ret).toBe(0);
    expect(s.proc.ioctl(s.container, uapi.VFIO_IOMMU_DIRTY_PAGES, struct(8, [[0, 8], [4, 1]]))).toBe(0);
    expect(s.W(P(1))).toBe(0);
    const get = (): string => {
      const data = userBuffer(s.proc, 8);
      const b = struct(48, [[0, 48], [4, 4], [8, 0n, 8], [16, P(0x40), 8], [24, 0x1000n, 8], [32, 8n, 8], [40, data, 8]]);
      expect(s.proc.ioctl(s.container, uapi.VFIO_IOMMU_DIRTY_PAGES, b)).toBe(0);
      return hex(s.proc.read(data, 8));
    };
    expect(get()).toBe(rep(0xff, 8));
    expect(get()).toBe(rep(0xff, 8));
    expect(s.REP(0n, P(0x40), 0x1000n, 8).hex).toBe('02 00 00 00 00 00 00 00');
    expect(s.REP(0n, P(0x40), 0x1000n, 8).hex).toBe(rep(0, 8));
  });
});

describe('§5 I QEMU', () => {
  it('V68 the logging ranges QEMU builds from its sections start on a setup-L device', async () => {
    const s = await setupL();
    const { ret, buf } = s.START(0x1000n, [[0n, 0xfe000000n], [0x100000000n, 0x180000000n], [0x380000000000n, 0x40000000n]]);
    expect(hex(buf.subarray(0, 8))).toBe('20 00 00 00 06 00 02 00');
    expect(ret).toBe(0);
    expect(s.W(P(0x10))).toBe(0);
    expect(s.REP(0n, P(0x40), 0x1000n, 8).hex).toBe('00 00 01 00 00 00 00 00');
  });
});
