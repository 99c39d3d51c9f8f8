// Device-dirty acceptance vectors, group A: VFIO_DEVICE_FEATURE framing, probes and MIGRATION
// (setup L, not started; docs/conformance.md §20.3).
import { describe, expect, it } from 'vitest';
import { errno } from '../../src/index.js';
import { dv, hex, setupL } from './helpers.js';

const { EINVAL, ENOTTY, EFAULT } = errno;

describe('§5 A VFIO_DEVICE_FEATURE', () => {
  it('V1 probes answer 0 on a device with a tracker, ENOTTY on a device without', async () => {
    const s = await setupL();
    expect([0x00040006, 0x00040007, 0x00040008, 0x00040001].map((f) => s.FEAT(f, 8))).toEqual([0, 0, 0, 0]);
    const p = await setupL({ device: 'plain' });
    expect(p.FEAT(0x00040006, 8)).toBe(-ENOTTY);
    expect(p.FEAT(0x00040001, 8)).toBe(-ENOTTY);
    expect(p.FEAT(0x00040007, 8)).toBe(-ENOTTY);
    expect(p.FEAT(0x00040008, 8)).toBe(-ENOTTY);
  });

  it('V3 framing errors', async () => {
    const s = await setupL();
    expect(s.FEAT(0x00020007, 7)).toBe(-EINVAL);
    expect(s.FEAT(0x00080006, 32)).toBe(-EINVAL);
    expect(s.FEAT(0x00030006, 32)).toBe(-EINVAL);
    expect(s.FEAT(0x00000006, 32)).toBe(-EINVAL);
    expect(s.FEAT(0x00020000, 8)).toBe(-ENOTTY);
    expect(s.FEAT(0x000200ff, 8)).toBe(-ENOTTY);
    expect(s.FEAT(0x00010002, 16)).toBe(-ENOTTY);
    expect(s.FEAT(0x00020006, 32, 4)).toBe(-EFAULT);
    expect(s.REP().ret).toBe(-EINVAL); // nothing started
  });

  it('V3 every unmodelled index is ENOTTY, before its flags are looked at', async () => {
    const s = await setupL();
    for (const i of [0, 2, 3, 4, 5, 9, 10, 11]) {
      expect(s.FEAT(0x00040000 | i, 8)).toBe(-ENOTTY);
      expect(s.FEAT(0x00010000 | i, 64)).toBe(-ENOTTY);
    }
  });

  it('V4 minimum sizes and the MIGRATION flags', async () => {
    const s = await setupL();
    expect(s.START(0x1000n, [[0n, 0x1000000n]], { argsz: 31 }).ret).toBe(-EINVAL);
    expect(s.REP().ret).toBe(-EINVAL); // START did nothing
    const r = new Uint8Array(40);
    dv(r).setUint32(0, 39, true);
    dv(r).setUint32(4, 0x00010008, true);
    expect(s.proc.ioctl(s.D, 0x3b75, r)).toBe(-EINVAL);
    expect(s.FEAT(0x00020007, 8)).toBe(0);
    expect(s.FEAT(0x00010001, 15)).toBe(-EINVAL);
    const b = new Uint8Array(16);
    dv(b).setUint32(0, 16, true);
    dv(b).setUint32(4, 0x00010001, true);
    expect(s.proc.ioctl(s.D, 0x3b75, b)).toBe(0);
    expect(hex(b.subarray(8))).toBe('03 00 00 00 00 00 00 00');
    const m = await setupL({ device: { name: 'm', dmaLogging: true, migrationFlags: 7 } });
    dv(b).setBigUint64(8, 0n, true);
    expect(m.proc.ioctl(m.D, 0x3b75, b)).toBe(0);
    expect(hex(b.subarray(8))).toBe('07 00 00 00 00 00 00 00');
  });

  it('MIGRATION: SET is EINVAL (GET only), a 15-byte buffer with argsz 16 is EFAULT', async () => {
    const s = await setupL();
    expect(s.FEAT(0x00020001, 16)).toBe(-EINVAL);
    expect(s.FEAT(0x00010001, 16, 15)).toBe(-EFAULT);
  });

  it('a device with migrationFlags but no tracker answers MIGRATION and ENOTTY for logging', async () => {
    const s = await setupL({ device: { name: 'm', migrationFlags: 1 } });
    expect(s.FEAT(0x00040001, 8)).toBe(0);
    expect(s.FEAT(0x00040006, 8)).toBe(-ENOTTY);
  });

  it('VFIO_DEVICE_RESET is 0; unknown device ioctls are ENOTTY; BIND on a group-path fd is EINVAL', async () => {
    const s = await setupL();
    expect(s.proc.ioctl(s.D, 0x3b6f)).toBe(0);
    expect(s.proc.ioctl(s.D, 0x3b6b, new Uint8Array(64))).toBe(-ENOTTY);
    expect(s.proc.ioctl(s.D, 0x3b76, new Uint8Array(24))).toBe(-EINVAL);
    expect(s.proc.ioctl(s.D, 0x3b77, new Uint8Array(16))).toBe(-ENOTTY);
    expect(s.proc.ioctl(s.D, 0x3b78, new Uint8Array(16))).toBe(-ENOTTY);
  });
});
