import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { EEXIST, EINVAL, ENOENT, ENOMEM } from '../assembly/constants.js';
import { IovaTree, type IovaRange } from '../src/core/iova_tree.js';
import { ExistsError, InvalidArgumentError, NotFoundError } from '../src/errors.js';
import { Core } from '../src/wasm.js';
import { IovaTreeModel } from './model/iova_tree_model.js';
import { rng } from './helpers/rng.js';

const TOP = (1n << 64n) - 1n;
const P = (n: number | bigint) => BigInt(n) * 0x1000n;

/** A small deterministic PRNG (xorshift32) for long random sequences. */

let core: Core;
beforeAll(async () => {
  core = await Core.create({ flavour: 'debug' });
});

/** Every stored range, through the raw export in chunks of 7 (so resumption is exercised). */
function dump(t: number): IovaRange[] {
  const x = core.x;
  const buf = x.heap_alloc(7 * 24);
  const out: IovaRange[] = [];
  let a = 0n;
  for (;;) {
    const n = x.tree_collect(t, a, TOP, buf, 7);
    const v64 = core.u64();
    const v32 = core.u32();
    for (let i = 0; i < n; i++) {
      const at = buf + i * 24;
      out.push({ iova: v64[at / 8], last: v64[at / 8 + 1], value: v32[at / 4 + 4] });
      expect(v32[at / 4 + 5]).toBe(0); // pad
    }
    if (n < 7 || out[out.length - 1].last === TOP) break;
    const next = out[out.length - 1].last + 1n;
    expect(next > a).toBe(true); // a broken walk must fail, not loop
    a = next;
  }
  x.heap_free(buf);
  return out;
}

/** tree_find_batch through the raw export. */
function findBatch(t: number, addrs: BigUint64Array): Int32Array {
  const x = core.x;
  const n = addrs.length;
  const buf = x.heap_alloc(Math.max(1, n) * 12);
  core.u64().set(addrs, buf / 8);
  expect(x.tree_find_batch(t, buf, n, buf + n * 8)).toBe(0);
  const out = new Int32Array(core.memory.buffer, buf + n * 8, n).slice();
  x.heap_free(buf);
  return out;
}

describe('iova_tree: exact cases', () => {
  it('inserts, finds and removes with the exact errno', () => {
    const t = new IovaTree(core);
    t.insert(P(1), P(2) - 1n, 7);
    t.insert(P(2), P(4) - 1n, 8); // touching the first: allowed
    expect(t.count).toBe(2);
    expect(t.find(P(1))).toBe(7);
    expect(t.find(P(2) - 1n)).toBe(7);
    expect(t.find(P(2))).toBe(8);
    expect(t.find(P(4) - 1n)).toBe(8);
    expect(t.find(P(4))).toBeUndefined();
    expect(t.find(P(1) - 1n)).toBeUndefined();
    const x = core.x;
    const h = t.handle;
    expect(x.tree_insert(h, P(0), P(1), 9)).toBe(-EEXIST); // overlaps the first's start
    expect(x.tree_insert(h, P(4) - 1n, P(5), 9)).toBe(-EEXIST); // overlaps the second's end
    expect(x.tree_insert(h, P(3), P(3), 9)).toBe(-EEXIST); // inside
    expect(x.tree_insert(h, 0n, P(9), 9)).toBe(-EEXIST); // covering both
    expect(x.tree_insert(h, P(5), P(5) - 1n, 9)).toBe(-EINVAL); // last < iova
    expect(x.tree_insert(h, P(5), P(5), 0x80000000)).toBe(-EINVAL); // value would read as -errno
    expect(() => t.insert(P(3), P(3), 1)).toThrow(ExistsError);
    expect(() => t.insert(P(6), P(5), 1)).toThrow(InvalidArgumentError);
    expect(() => t.insert(-1n, P(5), 1)).toThrow(InvalidArgumentError);
    expect(x.tree_remove(h, P(3))).toBe(-ENOENT); // inside a range, not its start
    expect(x.tree_remove(h, P(9))).toBe(-ENOENT); // missing
    expect(() => t.remove(P(9))).toThrow(NotFoundError);
    expect(t.remove(P(1))).toBe(7);
    expect(t.find(P(1))).toBeUndefined();
    expect(t.collect()).toEqual([{ iova: P(2), last: P(4) - 1n, value: 8 }]);
    expect(t.remove(P(2))).toBe(8);
    expect(t.count).toBe(0);
    expect(x.tree_remove(h, P(2))).toBe(-ENOENT);
    t.dispose();
    t.dispose(); // idempotent
    expect(() => t.count).toThrow('after dispose');
  });

  it('holds a range that ends at 2^64-1 and compares unsigned', () => {
    const t = new IovaTree(core);
    const top = TOP - 0xfffn; // [2^64-2^12, 2^64-1]
    t.insert(top, TOP, 1);
    t.insert(1n << 63n, (1n << 63n) + 0xfffn, 2);
    t.insert(0n, 0xfffn, 3);
    t.insert((1n << 63n) - 0x1000n, (1n << 63n) - 1n, 4); // touches the 2^63 range from below
    expect(t.find(TOP)).toBe(1);
    expect(t.find(top)).toBe(1);
    expect(t.find(top - 1n)).toBeUndefined();
    expect(t.find(1n << 63n)).toBe(2);
    expect(t.find((1n << 63n) - 1n)).toBe(4);
    expect(t.first(0x1000n, TOP)).toBe(4);
    expect(t.first(TOP, TOP)).toBe(1);
    expect(t.first((1n << 63n) + 0x1000n, top - 1n)).toBeUndefined();
    expect(core.x.tree_insert(t.handle, TOP, TOP, 5)).toBe(-EEXIST);
    expect(t.collect().map((r) => r.value)).toEqual([3, 4, 2, 1]);
    expect(t.collect(TOP, TOP)).toEqual([{ iova: top, last: TOP, value: 1 }]);
    expect(t.remove(top)).toBe(1);
    t.insert(TOP, TOP, 6); // a one-byte range at the very top
    expect(t.find(TOP)).toBe(6);
    expect(t.find(TOP - 1n)).toBeUndefined();
    expect(t.findBatch(new BigUint64Array([TOP, 0n, 1n << 63n, TOP - 1n]))).toEqual(
      new Int32Array([6, 3, 2, -ENOENT]),
    );
    t.dispose();
  });

  it('first and collect cover gaps, partial overlaps and empty windows', () => {
    const t = new IovaTree(core);
    for (let i = 0; i < 100; i++) t.insert(P(10 * i), P(10 * i + 4) - 1n, i); // [10i, 10i+4) pages
    expect(t.first(P(5), P(9))).toBeUndefined(); // inside a gap
    expect(t.first(P(3), P(25))).toBe(0); // starts inside range 0
    expect(t.first(P(4), P(25))).toBe(1); // starts in the gap after it
    expect(t.first(P(4), P(10))).toBe(1); // touches range 1's first byte
    expect(t.first(P(4), P(10) - 1n)).toBeUndefined();
    expect(t.first(P(50), P(40))).toBeUndefined(); // a > b
    expect(t.collect(P(13), P(41)).map((r) => r.value)).toEqual([1, 2, 3, 4]);
    expect(core.x.tree_collect(t.handle, 0n, TOP, 0, 0)).toBe(0);
    expect(t.collect().length).toBe(100);
    t.dispose();
  });

  it('keeps every range across many node splits and merges (height >= 3)', () => {
    const t = new IovaTree(core);
    const m = new IovaTreeModel();
    const r = rng(7);
    const order = Array.from({ length: 20000 }, (_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = r(i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (const i of order) {
      expect(core.x.tree_insert(t.handle, P(2 * i), P(2 * i + 1) - 1n, i)).toBe(0);
      m.insert(P(2 * i), P(2 * i + 1) - 1n, i);
    }
    expect(dump(t.handle)).toEqual(m.ranges);
    expect(t.collect()).toEqual(m.ranges); // the class resumes across its 1,024-record chunks
    expect(t.collect(P(1000), P(5000))).toEqual(m.collect(P(1000), P(5000)));
    expect(core.u32()[(t.handle + 20) / 4]).toBe(3); // tree header @20: height
    const probe = BigUint64Array.from({ length: 5000 }, () => P(r(40002)) + BigInt(r(4096)));
    expect(t.findBatch(probe)).toEqual(m.findBatch(probe));
    for (const i of order.slice(0, 19000)) expect(t.remove(P(2 * i))).toBe(m.remove(P(2 * i)));
    expect(dump(t.handle)).toEqual(m.ranges);
    expect(t.findBatch(probe)).toEqual(m.findBatch(probe));
    for (const i of order.slice(19000)) expect(t.remove(P(2 * i))).toBe(i);
    expect(t.count).toBe(0);
    t.dispose();
  });

  it('finds a range in the previous leaf across a stale separator', () => {
    const t = core.x.tree_create();
    // Ascending appends: a full first leaf (ranges 0..23), then ranges 24..40 in a second leaf
    // whose separator is P(48), the iova of range 24.
    for (let i = 0; i <= 40; i++) core.x.tree_insert(t, P(2 * i), P(2 * i + 1) - 1n, i);
    expect(core.x.tree_remove(t, P(48))).toBe(24); // 16 left: no rebalance, the separator stays P(48)
    expect(core.x.tree_insert(t, P(47), P(49) - 1n, 999)).toBe(0); // goes left of P(48), ends past it
    const probe = new BigUint64Array([P(48) + 5n, P(47), P(49) - 1n, P(49), P(50)]);
    const want = new Int32Array([999, 999, 999, -ENOENT, 25]);
    expect(findBatch(t, probe)).toEqual(want);
    expect(Array.from(probe, (a) => core.x.tree_find(t, a))).toEqual(Array.from(want));
    expect(core.x.tree_first(t, P(48), P(60))).toBe(999);
    core.x.tree_free(t);
  });

  it('stays exact after ascending appends (full leaves) and removals from both ends', () => {
    const t = core.x.tree_create();
    const m = new IovaTreeModel();
    for (let i = 0; i < 5000; i++) {
      expect(core.x.tree_insert(t, P(i), P(i + 1) - 1n, i)).toBe(m.insert(P(i), P(i + 1) - 1n, i));
    }
    const probe = BigUint64Array.from({ length: 999 }, (_, i) => P(i * 5 + 1) + 7n);
    expect(findBatch(t, probe)).toEqual(m.findBatch(probe));
    for (let i = 4999; i >= 4000; i--) expect(core.x.tree_remove(t, P(i))).toBe(m.remove(P(i)));
    for (let i = 0; i < 4000; i += 3) expect(core.x.tree_remove(t, P(i))).toBe(m.remove(P(i)));
    for (let i = 1; i < 4000; i += 3) expect(core.x.tree_insert(t, P(i) + 1n, P(i) + 2n, i)).toBe(m.insert(P(i) + 1n, P(i) + 2n, i));
    expect(dump(t)).toEqual(m.ranges);
    expect(findBatch(t, probe)).toEqual(m.findBatch(probe));
    core.x.tree_free(t);
  });

  it('returns to the same heap use after the tree empties, and frees everything on dispose', () => {
    const before = core.heapUsed();
    const t = new IovaTree(core);
    const afterCreate = core.heapUsed();
    for (let i = 0; i < 1000; i++) t.insert(P(i), P(i + 1) - 1n, i);
    expect(core.heapUsed()).toBeGreaterThan(afterCreate);
    for (let i = 0; i < 1000; i++) t.remove(P(i));
    expect(core.heapUsed()).toBe(afterCreate);
    t.dispose();
    expect(core.heapUsed()).toBe(before);
  });
});

describe('iova_tree: differential against the model', () => {
  type Op =
    | { k: 'ins'; a: bigint; len: bigint; v: number }
    | { k: 'rm'; a: bigint }
    | { k: 'find'; a: bigint }
    | { k: 'first'; a: bigint; b: bigint }
    | { k: 'coll'; a: bigint; b: bigint; max: number };
  // Addresses from a small grid (so ranges collide) near 0, near 2^63 and near 2^64.
  const addr = fc
    .tuple(fc.constantFrom(0n, 1n << 63n, TOP + 1n - P(201)), fc.integer({ min: 0, max: 200 }), fc.constantFrom(0n, 1n, 0xfffn))
    .map(([base, page, off]) => base + P(page) + off);
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 5, arbitrary: fc.record({ k: fc.constant('ins' as const), a: addr, len: fc.bigInt({ min: 0n, max: P(6) }), v: fc.nat(0x7fffffff) }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('rm' as const), a: addr }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('find' as const), a: addr }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('first' as const), a: addr, b: addr }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('coll' as const), a: addr, b: addr, max: fc.integer({ min: 1, max: 5 }) }) },
  );

  it('matches every result and the final state', () => {
    const buf = core.x.heap_alloc(5 * 24);
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const t = core.x.tree_create();
        const m = new IovaTreeModel();
        const x = core.x;
        for (const o of ops) {
          if (o.k === 'ins') {
            const last = o.a + o.len > TOP ? TOP : o.a + o.len;
            expect(x.tree_insert(t, o.a, last, o.v)).toBe(m.insert(o.a, last, o.v));
          } else if (o.k === 'rm') {
            // Half the removals target a stored start, so they succeed.
            const a = m.count && o.a & 1n ? m.ranges[Number(o.a % BigInt(m.count))].iova : o.a;
            expect(x.tree_remove(t, a)).toBe(m.remove(a));
          } else if (o.k === 'find') {
            expect(x.tree_find(t, o.a)).toBe(m.find(o.a));
          } else if (o.k === 'first') {
            expect(x.tree_first(t, o.a, o.b)).toBe(m.first(o.a, o.b));
          } else {
            const n = x.tree_collect(t, o.a, o.b, buf, o.max);
            const v64 = core.u64();
            const v32 = core.u32();
            const got = Array.from({ length: n }, (_, i) => ({
              iova: v64[(buf + i * 24) / 8],
              last: v64[(buf + i * 24) / 8 + 1],
              value: v32[(buf + i * 24) / 4 + 4],
            }));
            expect(got).toEqual(m.collect(o.a, o.b, o.max));
          }
          expect(x.tree_count(t)).toBe(m.count);
        }
        expect(dump(t)).toEqual(m.ranges);
        const probe = BigUint64Array.from(ops.flatMap((o) => ('b' in o ? [o.a, o.b] : [o.a])));
        expect(findBatch(t, probe)).toEqual(m.findBatch(probe));
        x.tree_free(t);
      }),
      { numRuns: 200 },
    );
    core.x.heap_free(buf);
  });

  it('matches a long random sequence with deep trees', () => {
    const r = rng(12345);
    const t = core.x.tree_create();
    const m = new IovaTreeModel();
    const x = core.x;
    // 2,003 addresses: not a multiple of the core's lookup group, so a partial group is checked.
    const probe = BigUint64Array.from({ length: 2003 }, () => P(r(30000)) + BigInt(r(2)) * (1n << 63n) + BigInt(r(4096)));
    for (let step = 0; step < 60000; step++) {
      const phase = Math.floor(step / 15000) % 2; // grow, then shrink, then grow again...
      const k = r(10);
      if (k < (phase === 0 ? 6 : 2)) {
        const a = P(r(30000)) + BigInt(r(2)) * (1n << 63n);
        const last = a + P(r(3) + 1) - 1n;
        expect(x.tree_insert(t, a, last, step)).toBe(m.insert(a, last, step));
      } else if (k < 8 && m.count) {
        const a = m.ranges[r(m.count)].iova;
        expect(x.tree_remove(t, a)).toBe(m.remove(a));
      } else {
        const a = P(r(30000)) + BigInt(r(2)) * (1n << 63n) + BigInt(r(4096));
        expect(x.tree_find(t, a)).toBe(m.find(a));
      }
      if (step % 5000 === 4999) {
        expect(dump(t)).toEqual(m.ranges);
        expect(findBatch(t, probe)).toEqual(m.findBatch(probe));
      }
    }
    expect(dump(t)).toEqual(m.ranges);
    x.tree_free(t);
  });
});

describe('iova_tree: allocation failure', () => {
  it('tree_create answers -ENOMEM on a failed allocation and leaks nothing', () => {
    const used = core.heapUsed();
    core.x.heap_fail_nth(1);
    expect(core.x.tree_create()).toBe(-ENOMEM);
    expect(core.heapUsed()).toBe(used);
    const t = core.x.tree_create();
    expect(t).toBeGreaterThan(0);
    core.x.tree_free(t);
  });

  it('fail-the-Nth sweep over every insert of a growing tree', () => {
    const x = core.x;
    const t = x.tree_create();
    const m = new IovaTreeModel();
    const r = rng(99);
    let failures = 0;
    for (let i = 0; i < 3000; i++) {
      const a = P(r(1 << 20)) * 2n;
      const want = m.insert(a, a + 0xfffn, i);
      for (let nth = 1; ; nth++) {
        expect(nth).toBeLessThan(4); // an insert allocates at most once
        const used = core.heapUsed();
        x.heap_fail_nth(nth);
        const got = x.tree_insert(t, a, a + 0xfffn, i);
        if (got === -ENOMEM) {
          failures++;
          expect(core.heapUsed()).toBe(used);
          expect(x.tree_count(t)).toBe(m.count - (want === 0 ? 1 : 0));
          expect(x.tree_find(t, a)).toBe(want === 0 ? -ENOENT : m.find(a));
          continue;
        }
        x.heap_fail_nth(0);
        expect(got).toBe(want);
        break;
      }
    }
    expect(failures).toBeGreaterThan(10); // the pool grew (and was refused once) many times
    expect(dump(t)).toEqual(m.ranges);
    x.tree_free(t);
  });

  it('answers -ENOMEM when linear memory cannot grow, unchanged, and keeps working', async () => {
    const small = await Core.create({ memoryLimit: 2 << 20 });
    const x = small.x;
    const t = x.tree_create();
    const m = new IovaTreeModel();
    let i = 0;
    let r = 0;
    for (; i < 1_000_000; i++) {
      r = x.tree_insert(t, P(2 * i), P(2 * i + 1) - 1n, i);
      if (r !== 0) break;
      m.insert(P(2 * i), P(2 * i + 1) - 1n, i);
    }
    expect(r).toBe(-ENOMEM);
    expect(x.tree_count(t)).toBe(m.count);
    expect(x.tree_find(t, P(2 * i))).toBe(-ENOENT);
    expect(x.tree_find(t, P(2 * i - 2))).toBe(i - 1);
    expect(x.tree_remove(t, P(0))).toBe(0);
    expect(x.tree_insert(t, P(0), P(1) - 1n, 0)).toBe(0);
    x.tree_free(t);
  });
});
