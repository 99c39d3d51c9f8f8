// KVM and the soft-dirty record (docs/conformance.md §17.1, §19.10): the pieces stored by
// vcpu.write, writeMany and writeGuest mark their pages soft-dirty in the VM's process; reads and
// GET_DIRTY_LOG's copy-out mark none.
import { describe, expect, it } from 'vitest';
import { setupK, slotA, withVcpu } from './setup.js';

/** Indices of the set bits of a soft-dirty bitmap. */
function pages(b: Uint8Array): number[] {
  const out: number[] = [];
  b.forEach((v, i) => {
    for (let j = 0; j < 8; j++) if (v & (1 << j)) out.push(i * 8 + j);
  });
  return out;
}

describe('soft-dirty and the vCPU', () => {
  it('guest stores mark their pages; reads and the dirty-log copy-out do not', async () => {
    const k = withVcpu(await setupK());
    slotA(k);
    k.P.clearSoftDirty();
    expect(pages(k.P.softDirty(k.U, 0x10000))).toEqual([]);
    expect(k.v0.write(0x102ffen, Uint8Array.of(1, 2, 3, 4))).toBe(4); // pages 2 and 3
    expect(k.v0.writeGuest(0x105000n, Uint8Array.of(1))).toBe(0);
    expect(k.v0.writeMany(BigUint64Array.from([0x107000n, 0x108000n, 0x10a000n]), Uint8Array.of(1, 2, 3), 1)).toBe(3);
    expect(k.v0.read(0x10c000n, 16)).toEqual(new Uint8Array(16));
    expect(pages(k.P.softDirty(k.U, 0x10000))).toEqual([2, 3, 5, 7, 8, 10]);
    // GET writes its destination by the kernel's copy-out, which marks nothing (an explicit
    // pointer: the helper does not zero the buffer with proc.write first).
    k.P.clearSoftDirty();
    expect(k.GET(0, k.buf + 0x2000n)).toBe('ac 05 00 00 00 00 00 00');
    expect(pages(k.P.softDirty(k.buf, 0x10000))).toEqual([]);
  });
});
