// The core's sparse ID map against a plain-TS Set: lowest free / next member searches at word,
// leaf (4096), table (2^22) and space (0xFFFFFFFE) edges, and memory returned as IDs leave.
import { describe, expect, it } from 'vitest';
import { createEngine } from '../../src/index.js';
import { NO_ID } from '../../src/ioasid/id_table.js';
import { rng } from '../helpers/rng.js';

const EDGES = [0, 1, 62, 63, 64, 65, 127, 4094, 4095, 4096, 4097, 8191, (1 << 22) - 1, 1 << 22,
  (1 << 22) + 1, 0x7fff_ffff, 0x8000_0000, 0xffff_effe, 0xffff_efff, 0xffff_f000, 0xffff_fffd, 0xffff_fffe];

function modelFree(set: Set<number>, from: number, last: number): number {
  for (let id = from; id <= last; id++) if (!set.has(id)) return id;
  return NO_ID;
}
function modelNext(set: Set<number>, from: number, last: number): number {
  let best = NO_ID;
  for (const id of set) if (id >= from && id <= last && (best === NO_ID || id < best)) best = id;
  return best;
}

describe('ioasid id map', () => {
  it.each([1, 2, 3, 4])('random inserts and removes around the edges agree with a Set (seed %i)', async (seed) => {
    const e = await createEngine();
    const t = e.ioasid.ids;
    const s = t.newSetMap();
    const model = new Set<number>();
    const r = rng(seed);
    const pick = () => {
      const base = EDGES[r(EDGES.length)];
      return Math.min(0xffff_fffe, Math.max(0, base + r(130) - 65));
    };
    const used0 = e.memoryInUse();
    for (let step = 0; step < 3000; step++) {
      const from = pick();
      const last = Math.min(0xffff_fffe, from + r(300));
      const op = r(3);
      if (op < 2) {
        const want = modelFree(model, from, last);
        expect(t.lowestFree(from, last)).toBe(want);
        if (want !== NO_ID) {
          expect(t.insert(s, want, 7, 'api', null)).toBe(0);
          model.add(want);
        }
      } else {
        const want = modelNext(model, from, last);
        expect(t.nextMember(s, from, last)).toBe(want);
        if (want !== NO_ID) {
          t.remove(s, want);
          model.delete(want);
        }
      }
      expect(t.count(s)).toBe(model.size);
    }
    for (const id of [...model]) t.remove(s, id);
    expect(t.count(t.g)).toBe(0);
    t.freeSetMap(s);
    expect(e.memoryInUse()).toBeLessThan(used0);
  });

  it('a full leaf and a full table are skipped; the last id 0xFFFFFFFE is found', async () => {
    const e = await createEngine();
    const t = e.ioasid.ids;
    const s = t.newSetMap();
    let bad = 0;
    for (let id = 0; id < (1 << 22) + 5; id++) bad |= t.insert(s, id, 0, 'api', null);
    expect(bad).toBe(0);
    expect(t.lowestFree(0, 0xffff_fffe)).toBe((1 << 22) + 5);
    t.remove(s, 4096 * 7 + 63);
    expect(t.lowestFree(0, 0xffff_fffe)).toBe(4096 * 7 + 63);
    expect(t.lowestFree(4096 * 7 + 64, 0xffff_fffe)).toBe((1 << 22) + 5);
    expect(t.nextMember(s, (1 << 22) + 5, 0xffff_fffe)).toBe(NO_ID);
    expect(t.nextMember(s, 4096 * 7 + 63, 0xffff_fffe)).toBe(4096 * 7 + 64);
    expect(t.insert(s, 0xffff_fffe, 0, 'api', null)).toBe(0);
    expect(t.nextMember(s, (1 << 22) + 5, 0xffff_fffe)).toBe(0xffff_fffe);
    expect(t.lowestFree(0xffff_fffe, 0xffff_fffe)).toBe(NO_ID);
  });
});
