// UserMemory.reserveRanges (the core's um_reserve_ranges): several byte ranges framed in one
// all-or-nothing walk. Ranges may share a table, an edge page or overlap, come in any order, and
// cross table boundaries; every page gets exactly one frame, and a failed reservation adds none.
import { describe, expect, it } from 'vitest';
import { Core } from '../src/wasm.js';
import { UserMemory } from '../src/core/user_memory.js';
import { ENOMEM } from '../assembly/constants.js';

const L3 = 0x20_0000n; // one L3 table spans 2 MiB
const L2 = 0x4_0000_0000n; // one L2 table spans 16 GiB

/** Ranges that share tables and edge pages, overlap, and cross both table boundaries; unsorted. */
const RANGES: [bigint, bigint][] = [
  [L2 - 8n, 16n], // crosses an L2 (and L3) boundary: 2 pages
  [0x1000n + 4000n, 200n], // pages 1 and 2
  [0x3000n, 8n], // page 3, same L3 as the two above
  [0x2000n + 100n, 8n], // page 2 again
  [L3 - 4096n, 8192n], // the last page of the first L3 table and the first of the next
  [0x1000n, 0x1000n], // page 1 again
  [5n * L2 + 12n, 3n * 4096n], // a third L2 table: 4 pages (starts mid-page)
];
const PAGES = 2 + 3 + 2 + 4; // distinct pages of RANGES

describe('reserveRanges', () => {
  it('frames each distinct page once; later writes there allocate nothing', async () => {
    const core = await Core.create();
    const um = new UserMemory(core);
    expect(um.reserveRanges(RANGES)).toBe(0);
    expect(um.frames).toBe(PAGES);
    expect(um.reserveRanges(RANGES)).toBe(0); // already framed: nothing added, nothing allocated
    expect(um.frames).toBe(PAGES);
    const calls = core.x.heap_alloc_calls();
    for (const [a, len] of RANGES) expect(um.write(a, new Uint8Array(Number(len)).fill(7))).toBe(0);
    expect(um.frames).toBe(PAGES);
    expect(core.x.heap_alloc_calls() - calls).toBe(RANGES.length); // each write's staging block only
    for (const [a, len] of RANGES) expect(um.read(a, Number(len))).toEqual(new Uint8Array(Number(len)).fill(7));
    um.dispose();
  });

  it('a failed reservation adds nothing (fail-the-Nth sweep)', async () => {
    const core = await Core.create();
    const um = new UserMemory(core);
    let n = 1;
    for (; n < 200; n++) {
      const used = core.heapUsed();
      core.x.heap_fail_nth(n);
      const r = um.reserveRanges(RANGES);
      core.x.heap_fail_nth(0);
      if (r === 0) break;
      expect(r).toBe(-ENOMEM);
      expect(um.frames).toBe(0);
      expect(core.heapUsed()).toBe(used);
    }
    expect(n).toBeGreaterThan(8);
    expect(um.frames).toBe(PAGES);
    um.dispose();
  });
});
