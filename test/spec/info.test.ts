// docs/conformance.md §3.5 GET_INFO: copy-back sizes, argsz too small, the aligned capability chain
// at 24/56/72, zeroed padding, pgsize_bitmap, DMA_AVAIL and IOVA ranges; vectors V3, V4, V5, V6.
import { describe, expect, it } from 'vitest';
import { errno } from '../../src/errors.js';
import { uapi } from '../../src/uapi.js';
import { hex, setU32, setU64 } from '../helpers/uapi_structs.js';
import { failsCleanly, must, P, setup } from '../helpers/setups.js';

/** The 120 bytes V4 lists, built field by field. */
function v4Expected(): Uint8Array {
  const b = new Uint8Array(120);
  const w16 = (o: number, v: number) => { b[o] = v & 0xff; b[o + 1] = v >> 8; };
  setU32(b, 0, 120);
  setU32(b, 4, 3);
  setU64(b, 8, 0x40201000n);
  setU32(b, 16, 24);
  w16(24, 2); w16(26, 1); setU32(b, 28, 56); // MIGRATION
  setU64(b, 40, 0x1000n);
  setU64(b, 48, 0x10000000n);
  w16(56, 3); w16(58, 1); setU32(b, 60, 72); // DMA_AVAIL
  setU32(b, 64, 65535);
  w16(72, 1); w16(74, 1); setU32(b, 76, 0); // IOVA_RANGE
  setU32(b, 80, 2);
  setU64(b, 88, 0n); setU64(b, 96, 0xfedfffffn);
  setU64(b, 104, 0xfef00000n); setU64(b, 112, 0xffffffffffffn);
  return b;
}

describe('V3 GET_INFO too small', () => {
  it('V3 GET_INFO too small', async () => {
    const s = await setup('I');
    failsCleanly(s, errno.EINVAL, () => s.info(15, { length: 32, fill: 0xee }).ret);
    const r16 = s.info(16, { length: 32, fill: 0xee });
    expect(r16.ret).toBe(0);
    expect(r16.info.argsz).toBe(120);
    expect(r16.info.flags).toBe(3);
    expect(r16.info.iovaPgsizes).toBe(0x40201000n);
    expect(hex(r16.buf.subarray(16))).toBe(Array(16).fill('ee').join(' ')); // nothing at 16..23
    const r24 = s.info(24, { length: 32, fill: 0xee });
    expect(r24.ret).toBe(0);
    expect([r24.info.argsz, r24.info.flags, r24.info.iovaPgsizes, r24.info.capOffset]).toEqual([120, 3, 0x40201000n, 0]);
    expect(r24.info.pad).toBe(0);
    expect(hex(r24.buf.subarray(24))).toBe(Array(8).fill('ee').join(' '));
  });

  it('fewer than 16 readable bytes is EFAULT', async () => {
    const s = await setup('I');
    failsCleanly(s, errno.EFAULT, () => s.info(16, { length: 15 }).ret);
  });

  it('argsz 20 copies back exactly 20 bytes: min(argsz, 24) (§3.5)', async () => {
    const s = await setup('I');
    const r = s.info(20, { length: 32, fill: 0xee });
    expect(r.ret).toBe(0);
    expect(hex(r.buf.subarray(0, 24))).toBe('78 00 00 00 03 00 00 00 00 10 20 40 00 00 00 00 00 00 00 00 ee ee ee ee');
  });

  it('argsz one short of the chain sets argsz, cap_offset 0, and writes no capability', async () => {
    const s = await setup('I');
    const r = s.info(119, { length: 128, fill: 0xee });
    expect(r.ret).toBe(0);
    expect([r.info.argsz, r.info.flags, r.info.capOffset, r.info.pad]).toEqual([120, 3, 0, 0]);
    expect(r.buf.subarray(24).every((x) => x === 0xee)).toBe(true);
  });
});

describe('V4 GET_INFO full', () => {
  it('V4 GET_INFO full', async () => {
    const s = await setup('I');
    const r = s.info(120, { fill: 0xee });
    expect(r.ret).toBe(0);
    expect(hex(r.buf)).toBe(hex(v4Expected()));
  });

  it('a larger argsz is left as passed and bytes past the chain are not written', async () => {
    const s = await setup('I');
    const r = s.info(200, { fill: 0xee });
    expect(r.ret).toBe(0);
    const want = v4Expected();
    setU32(want, 0, 200);
    expect(hex(r.buf.subarray(0, 120))).toBe(hex(want));
    expect(r.buf.subarray(120).every((x) => x === 0xee)).toBe(true);
  });

  it('walks as a chain: MIGRATION -> DMA_AVAIL -> IOVA_RANGE, all version 1', async () => {
    const s = await setup('I');
    const { info } = s.info(256);
    expect(info.chain.map((c) => [c.offset, c.id, c.version, c.next])).toEqual([[24, 2, 1, 56], [56, 3, 1, 72], [72, 1, 1, 0]]);
    expect(info.migration).toMatchObject({ flags: 0, pad: 0, pgsizeBitmap: 0x1000n, maxDirtyBitmapSize: 0x10000000n });
    expect(info.iovaRange?.ranges).toEqual([[0n, 0xfedfffffn], [0xfef00000n, 0xffffffffffffn]]);
  });
});

describe('V5 GET_INFO in an emulated-only container', () => {
  it('V5 GET_INFO in an emulated-only container', async () => {
    const s = await setup('E');
    const r = s.info(72, { fill: 0xee });
    expect(r.ret).toBe(0);
    expect(hex(r.buf)).toBe(hex(Uint8Array.from([
      72, 0, 0, 0, 3, 0, 0, 0, 0x00, 0xf0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 24, 0, 0, 0, 0, 0, 0, 0,
      2, 0, 1, 0, 56, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0,
      3, 0, 1, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0,
    ])));
    expect(r.info.iovaRange).toBeUndefined();
    const small = s.info(24);
    expect([small.ret, small.info.argsz, small.info.capOffset]).toEqual([0, 72, 0]);
  });

  it('in X the pgsizes and ranges are G\'s (the emulated group has no domain)', async () => {
    const s = await setup('X');
    const { info } = s.info(256);
    expect(info.iovaPgsizes).toBe(0x40201000n);
    expect(info.iovaRange?.ranges).toEqual([[0n, 0xfedfffffn], [0xfef00000n, 0xffffffffffffn]]);
  });
});

describe('V6 DMA_AVAIL', () => {
  it('V6 DMA_AVAIL', async () => {
    const s = await setup('I');
    must(s.MAP(P(0x10), P(1)), 'MAP');
    must(s.MAP(P(0x20), P(1)), 'MAP');
    expect(s.info().info.dmaAvail?.avail).toBe(65533);
    expect(s.UNMAP(P(0x10), P(1)).size).toBe(P(1));
    expect(s.info().info.dmaAvail?.avail).toBe(65534);
  });

  it('starts at the dmaEntryLimit option', async () => {
    const s = await setup('E', { dmaEntryLimit: 3 });
    expect(s.info().info.dmaAvail?.avail).toBe(3);
    expect(s.container().dmaAvail).toBe(3);
  });
});

describe('pgsize_bitmap and IOVA ranges (docs/conformance.md §3.5)', () => {
  it('sizes below PAGE_SIZE are removed and PAGE_SIZE added', async () => {
    const s = await setup('I', { g: { pgsizeBitmap: 0x40200e00n } });
    const { info } = s.info();
    expect(info.iovaPgsizes).toBe(0x40201000n);
    expect(info.migration?.pgsizeBitmap).toBe(0x1000n);
  });

  it('a second group intersects page sizes and narrows ranges; detaching it restores them', async () => {
    const s = await setup('I');
    s.createGroup('G2', 'iommu', { devices: ['0000:66:00.0'], pgsizeBitmap: 0x201000n, reserved: [[0x1_0000_0000n, 0x1_ffff_ffffn]] });
    expect(s.attach('G2')).toBe(0);
    let { info } = s.info();
    expect(info.iovaPgsizes).toBe(0x201000n);
    expect(info.iovaRange?.ranges).toEqual([[0n, 0xfedfffffn], [0xfef00000n, 0xffff_ffffn], [0x2_0000_0000n, 0xffffffffffffn]]);
    expect(s.MAP(0x1_0000_0000n, 0x1000n)).toBe(-errno.EINVAL);
    expect(s.proc.ioctl(s.gfds.G2, uapi.VFIO_GROUP_UNSET_CONTAINER)).toBe(0);
    ({ info } = s.info());
    expect(info.iovaPgsizes).toBe(0x40201000n);
    expect(info.iovaRange?.ranges).toEqual([[0n, 0xfedfffffn], [0xfef00000n, 0xffffffffffffn]]);
    expect(s.MAP(0x1_0000_0000n, 0x1000n)).toBe(0);
  });

  it('a smaller aperture narrows the list', async () => {
    const s = await setup('I', { g: { aperture: [0n, 0xffff_ffffn] } });
    expect(s.info().info.iovaRange?.ranges).toEqual([[0n, 0xfedfffffn], [0xfef00000n, 0xffff_ffffn]]);
    expect(s.MAP(0x1_0000_0000n, 0x1000n)).toBe(-errno.EINVAL);
  });
});
