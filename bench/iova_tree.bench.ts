// IOVA range tree: the Wasm B+tree beside the plain-TS sorted-array model (bigint ranges).
//   - 1,000,000 lookups among 65,535 ranges in one batch (target: >= 4x faster than the model);
//   - insert then remove 65,535 one-page ranges, in random order;
//   - the first and the last thousand of them separately: time per op must not grow as the
//     tree fills (target: the last thousand <= 2x the first, for the Wasm tree).
import { Core } from '../src/wasm.js';
import { IovaTree } from '../src/core/iova_tree.js';
import { IovaTreeModel } from '../test/model/iova_tree_model.js';
import { ratioOf, relative, type BenchGroup } from './harness.js';
import { rng } from '../test/helpers/rng.js';

const PAGE = 0x1000n;

/** xorshift32: a fixed sequence, so every run measures the same work. */

function shuffled(n: number, r: (n: number) => number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = r(i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

export async function groups(quick: boolean): Promise<BenchGroup[]> {
  const core = await Core.create();
  const x = core.x;
  const nRanges = quick ? 655 : 65_535;
  const nLookups = quick ? 10_000 : 1_000_000;
  const slice = quick ? 10 : 1000;
  const r = rng(2024);

  // ---- lookups: ranges of 1..16 pages with gaps of 0..15 pages, above 2^63 for half of them ----
  const tree = new IovaTree(core);
  const model = new IovaTreeModel();
  let at = 0n;
  const starts: bigint[] = [];
  for (let i = 0; i < nRanges; i++) {
    at += BigInt(r(16)) * PAGE;
    const len = BigInt(1 + r(16)) * PAGE;
    const iova = i === nRanges >> 1 ? (at = 1n << 63n) : at;
    tree.insert(iova, iova + len - 1n, i);
    model.insert(iova, iova + len - 1n, i);
    starts.push(iova);
    at = iova + len;
  }
  const treeBytes = core.heapUsed();
  const addrs = BigUint64Array.from({ length: nLookups }, () => starts[r(nRanges)] + BigInt(r(20 * 4096)));
  const addrBuf = x.heap_alloc(nLookups * 8);
  const outBuf = x.heap_alloc(nLookups * 4);
  core.u64().set(addrs, addrBuf / 8);
  const check = tree.findBatch(addrs);
  const expect = model.findBatch(addrs);
  if (check.some((v, i) => v !== expect[i])) throw new Error('iova_tree bench: tree and model disagree');
  const hits = check.filter((v) => v >= 0).length;
  console.log(
    `iova_tree: ${nRanges} ranges use ${(treeBytes / nRanges).toFixed(1)} bytes each ` +
      `of Wasm memory; ${hits} of ${nLookups} lookups hit a range`,
  );

  // ---- insert/remove: one-page ranges at random slots of a 2 * nRanges page grid -------------
  const order = shuffled(nRanges, r).map((i) => BigInt(2 * i) * PAGE);
  const firstOps = order.slice(0, slice);
  const lastOps = order.slice(nRanges - slice);
  const emptyT = x.tree_create();
  const fullT = x.tree_create();
  const emptyM = new IovaTreeModel();
  const fullM = new IovaTreeModel();
  for (const a of order.slice(0, nRanges - slice)) {
    x.tree_insert(fullT, a, a + PAGE - 1n, 1);
    fullM.insert(a, a + PAGE - 1n, 1);
  }
  const wasmCycle = (t: number, ops: bigint[]) => () => {
    for (const a of ops) x.tree_insert(t, a, a + PAGE - 1n, 1);
    for (const a of ops) x.tree_remove(t, a);
  };
  const modelCycle = (m: IovaTreeModel, ops: bigint[]) => () => {
    for (const a of ops) m.insert(a, a + PAGE - 1n, 1);
    for (const a of ops) m.remove(a);
  };

  return [
    {
      name: `iova_tree: ${nLookups} lookups among ${nRanges} ranges, one batch`,
      baseline: 'model findBatch (sorted array)',
      target: '>= 4x faster than the model (tree_find_batch)',
      cases: [
        { name: 'model findBatch (sorted array)', fn: () => model.findBatch(addrs), units: nLookups, unit: 'lookups' },
        { name: 'wasm tree_find_batch', fn: () => x.tree_find_batch(tree.handle, addrBuf, nLookups, outBuf), units: nLookups, unit: 'lookups' },
        { name: 'IovaTree.findBatch (copy in/out)', fn: () => tree.findBatch(addrs), units: nLookups, unit: 'lookups' },
      ],
      check: (res) => ratioOf(res, 'wasm tree_find_batch') <= 0.25,
    },
    {
      name: `iova_tree: insert then remove ${nRanges} one-page ranges, random order`,
      baseline: 'model',
      cases: [
        { name: 'model', fn: modelCycle(emptyM, order), units: 2 * nRanges, unit: 'ops' },
        { name: 'wasm', fn: wasmCycle(emptyT, order), units: 2 * nRanges, unit: 'ops' },
      ],
    },
    {
      name: `iova_tree: insert then remove ${slice} ranges, first (empty tree) vs last (${nRanges - slice} present)`,
      baseline: 'wasm first',
      target: 'wasm last <= 2x wasm first',
      cases: [
        { name: 'wasm first', fn: wasmCycle(emptyT, firstOps), units: 2 * slice, unit: 'ops' },
        { name: 'wasm last', fn: wasmCycle(fullT, lastOps), units: 2 * slice, unit: 'ops' },
        { name: 'model first', fn: modelCycle(emptyM, firstOps), units: 2 * slice, unit: 'ops' },
        { name: 'model last', fn: modelCycle(fullM, lastOps), units: 2 * slice, unit: 'ops' },
      ],
      check: (res) => relative(res, 'wasm last', 'wasm first') <= 2,
    },
  ];
}
