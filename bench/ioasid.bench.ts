// The IOASID allocator (engine.ioasid) beside a plain-TS model holding its IDs in a Set:
//   - alloc/free pairs in a nearly full 2^20 space (target: >= 5x faster than the model);
//   - freeSet of a 100,000-member set: its cost follows the set, not the capacity (targets: the
//     same set under a 2^31 capacity <= 1.5x, a set ten times smaller <= 0.25x).
import { createEngine, type Engine } from '../src/index.js';
import { rng } from '../test/helpers/rng.js';
import { ratioOf, relative, type BenchGroup } from './harness.js';

const SPACE = 1 << 20;
const INV = 0xffff_ffff;

/** The allocator as a plain-TS model would write it: a Set of IDs, searched upward from min. */
class SetModel {
  readonly ids = new Set<number>();
  alloc(min: number, max: number): number {
    for (let id = min; id <= max; id++) {
      if (!this.ids.has(id)) {
        this.ids.add(id);
        return id;
      }
    }
    return INV;
  }
  free(id: number): void {
    this.ids.delete(id);
  }
}

/** An engine whose one set fills the 2^20 space but for `holes` random IDs. */
async function nearlyFull(holes: number[]): Promise<{ e: Engine; sid: number }> {
  const e = await createEngine({ ioasidCapacity: SPACE, ioasidSystemQuota: 0 });
  const sid = e.ioasid.allocSet('bench', SPACE);
  for (let i = 0; i < SPACE; i++) e.ioasid.alloc(sid, 0, SPACE - 1);
  for (const h of holes) e.ioasid.free(h);
  return { e, sid };
}

export async function groups(quick: boolean): Promise<BenchGroup[]> {
  const r = rng(1010);
  const holes = [...new Set(Array.from({ length: 64 }, () => r(SPACE)))];
  const pairs = quick ? 10 : 1000;
  const { e, sid } = await nearlyFull(holes);
  const io = e.ioasid;
  const model = new SetModel();
  const hole = new Set(holes);
  for (let i = 0; i < SPACE; i++) if (!hole.has(i)) model.ids.add(i);
  const lowest = Math.min(...holes);
  if (io.alloc(sid, 0, SPACE - 1) !== lowest || model.alloc(0, SPACE - 1) !== lowest) {
    throw new Error('ioasid bench: the engine and the model disagree');
  }
  io.free(lowest);
  model.free(lowest);

  // freeSet: fill a set of n members, then free them all (the set stays, empty).
  const big = quick ? 10_000 : 100_000;
  const small = big / 10;
  const e20 = await createEngine({ ioasidCapacity: SPACE, ioasidSystemQuota: 0 });
  const e31 = await createEngine({ ioasidCapacity: 0x8000_0000, ioasidSystemQuota: 0 });
  const s20 = e20.ioasid.allocSet('s', big);
  const s31 = e31.ioasid.allocSet('s', big);
  const fillAndFree = (en: Engine, s: number, n: number) => () => {
    const a = en.ioasid;
    for (let i = 0; i < n; i++) a.alloc(s, 0, 0xffff_fffe);
    a.freeSet(s, false);
  };
  const fillOnly = (en: Engine, s: number, n: number) => () => {
    const a = en.ioasid;
    for (let i = 0; i < n; i++) a.alloc(s, 0, 0xffff_fffe);
    for (let i = n - 1; i >= 0; i--) a.free(i);
  };

  return [
    {
      name: `ioasid: alloc/free pairs in a 2^20 space with ${holes.length} free IDs (lowest at ${lowest})`,
      baseline: 'model (Set)',
      target: '>= 5x faster than the model',
      cases: [
        {
          name: 'model (Set)',
          fn: () => {
            for (let i = 0; i < pairs; i++) model.free(model.alloc(0, SPACE - 1));
          },
          units: pairs, unit: 'pairs',
        },
        {
          name: 'engine.ioasid',
          fn: () => {
            for (let i = 0; i < pairs; i++) io.free(io.alloc(sid, 0, SPACE - 1));
          },
          units: pairs, unit: 'pairs',
        },
      ],
      check: (res) => ratioOf(res, 'engine.ioasid') <= 0.2,
      notes: () => {
        const n = quick ? 10_000 : 1_000_000;
        const t0 = performance.now();
        for (let i = 0; i < n; i++) io.free(io.alloc(sid, 0, SPACE - 1));
        const ms = performance.now() - t0;
        return [`${n} alloc/free pairs through engine.ioasid in one go: ${ms.toFixed(0)} ms`];
      },
    },
    {
      name: `ioasid: fill a set, then freeSet: ${big} members, capacity 2^20 vs 2^31, and ${small} members`,
      baseline: `${big} members, capacity 2^20`,
      target: 'capacity 2^31 <= 1.5x; a tenth of the members <= 0.25x',
      cases: [
        { name: `${big} members, capacity 2^20`, fn: fillAndFree(e20, s20, big), units: big, unit: 'ids' },
        { name: `${big} members, capacity 2^31`, fn: fillAndFree(e31, s31, big), units: big, unit: 'ids' },
        { name: `${small} members, capacity 2^20`, fn: fillAndFree(e20, s20, small), units: small, unit: 'ids' },
        { name: `${big} members, free one by one`, fn: fillOnly(e20, s20, big), units: big, unit: 'ids' },
      ],
      check: (res) => relative(res, `${big} members, capacity 2^31`, `${big} members, capacity 2^20`) <= 1.5
        && relative(res, `${small} members, capacity 2^20`, `${big} members, capacity 2^20`) <= 0.25,
    },
  ];
}
