// The guard in the one place that writes user bitmaps (reportToUser), and its twin for Wasm
// bitmaps (reportToBitmap): a report whose words would pass the caller's buffer writes nothing,
// fails with EINVAL and leaves the dma's dirty bits for the next report. The ioctl checks make
// this unreachable today; the guard keeps it so if a later change breaks their assumptions.
import { describe, expect, it } from 'vitest';
import { DirtyBitmap, errno } from '../src/index.js';
import { reportToBitmap, reportToUser } from '../src/vfio/dirty.js';
import { setupE } from './helpers/typed_setup.js';

const P = (n: number): bigint => BigInt(n) * 0x1000n;
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

async function tracked() {
  const { engine, proc, m, c } = await setupE();
  c.map({ iova: P(0), vaddr: proc.mmap(P(128)), size: P(128) }); // 128 pages: two words
  c.dirty.start();
  expect(m.devices[0].dmaRw(P(0), new Uint8Array(128 * 4096).fill(1), true)).toBe(0);
  const t = c.iommu;
  return { engine, proc, t, d: t.all()[0] };
}

describe('no report writes past the caller\'s buffer', () => {
  it('reportToUser: a 16-byte report into an 8-byte bitmap is EINVAL, nothing written, bits kept', async () => {
    const { engine, proc, t, d } = await tracked();
    const data = proc.mmap(0x1000);
    proc.write(data, new Uint8Array(16).fill(0xaa));
    const before = JSON.stringify(engine.inspect(), (_k, v) => (typeof v === 'bigint' ? `${v}` : v));
    expect(reportToUser(t, proc, d, P(0), { pgsize: 0x1000n, size: 8n, data })).toBe(-errno.EINVAL);
    expect(hex(proc.read(data, 16))).toBe('aa'.repeat(16));
    expect(JSON.stringify(engine.inspect(), (_k, v) => (typeof v === 'bigint' ? `${v}` : v))).toBe(before);
    // Shifted by one bit the same dma needs three words: 16 bytes are not enough either.
    expect(reportToUser(t, proc, d, P(0) - P(1), { pgsize: 0x1000n, size: 16n, data })).toBe(-errno.EINVAL);
    // A base above the dma would index before bitmap.data.
    expect(reportToUser(t, proc, d, P(1), { pgsize: 0x1000n, size: 64n, data })).toBe(-errno.EINVAL);
    expect(hex(proc.read(data, 16))).toBe('aa'.repeat(16));
    // The exact size works and delivers every bit.
    expect(reportToUser(t, proc, d, P(0), { pgsize: 0x1000n, size: 16n, data })).toBe(0);
    expect(hex(proc.read(data, 16))).toBe('ff'.repeat(16));
  });

  it('reportToBitmap: a report past the end of the target bitmap is EINVAL, nothing written', async () => {
    const { engine, t, d } = await tracked();
    const out = DirtyBitmap.create(engine.core, 64);
    try {
      expect(reportToBitmap(t, d, P(0), out)).toBe(-errno.EINVAL);
      expect(out.count()).toBe(0);
      expect(d.bitmap!.count()).toBe(128);
    } finally {
      out.dispose();
    }
  });
});
