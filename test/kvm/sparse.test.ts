// Per-page state is sparse (docs/conformance.md §19.3). A slot of 2^31 - 1 pages costs a few bytes
// until pages are touched; each touched region adds a leaf (2048 pages) and, per 4 GiB, a mid
// table.
import { describe, expect, it } from 'vitest';
import { LOG, setupK, withVcpu } from './setup.js';

const MAX = 0x7fffffffn;

describe('sparse per-page state', () => {
  it('a 2^31-1 page slot costs under 16 KiB; tracking pages far apart costs one leaf each', async () => {
    const k = withVcpu(await setupK());
    const host = k.P.mmap(MAX * 4096n);
    const m0 = k.engine.memoryInUse();
    expect(k.RGN(0, 0, 0, MAX * 4096n, host)).toBe(0);
    const m1 = k.engine.memoryInUse();
    expect(m1 - m0).toBeLessThan(16 * 1024);
    for (const g of [0n, 0x10000000n, MAX - 1n]) expect(k.kvm.writeTrackAddGfn(g)).toBe(0);
    const m2 = k.engine.memoryInUse();
    // three leaves of 2048 u16 counts and three mid tables, plus the table's top
    expect(m2 - m1).toBeLessThan(3 * (4096 + 2048 + 64) + 8192 + 256);
    expect(k.kvm.writeTrackCount(MAX - 1n)).toBe(1);
    expect(k.kvm.writeTrackCount(MAX - 2n)).toBe(0);
    expect(k.kvm.gfnIsWriteTracked(0x10000000n)).toBe(true);
    // The same slot logged in bitmap mode has the kernel's dense bitmap: nbytes(npages).
    expect(k.RGN(0, LOG, 0, MAX * 4096n, host)).toBe(0);
    const m3 = k.engine.memoryInUse();
    expect(m3 - m2).toBeGreaterThanOrEqual(Number(MAX / 8n));
    expect(m3 - m2).toBeLessThan(Number(MAX / 8n) + 4096);
  });

  it('ring mode: unprotected pages cost one 256-byte leaf per 2048 pages touched', async () => {
    const base = await setupK();
    expect(base.CAP(192, 65536)).toBe(0);
    const k = withVcpu(base);
    const host = k.P.mmap(MAX * 4096n);
    expect(k.RGN(0, LOG, 0, MAX * 4096n, host)).toBe(0);
    k.P.write(host, new Uint8Array(0x10000)); // host frames for pages 0-15
    k.W(0x5000); // makes the writable table: top, one mid, one leaf
    const m0 = k.engine.memoryInUse();
    k.W(0x6000);
    expect(k.engine.memoryInUse()).toBe(m0); // same leaf
    k.P.write(host + 0x40000000000n, new Uint8Array(1));
    const m1 = k.engine.memoryInUse();
    k.W(0x40000000000);
    expect(k.engine.memoryInUse() - m1).toBe(2048 + 16 + 256 + 16); // a mid table and a leaf, with headers
    expect(k.v0.dirtyRingUsed).toBe(3);
  });
});
