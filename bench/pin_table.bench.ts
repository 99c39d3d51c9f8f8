// Pin table: the Wasm hash table beside the plain-TS Map<bigint, number> model.
//   - pin then unpin 1,000,000 pages drawn at random from 830,000 (so about 580,000 distinct
//     pages, refcounted), as one batch each way (target: >= 5x faster than the Map model);
//   - the same in vfio_pin_pages-sized batches of 512 pages;
//   - memory per pinned page at 1,000,000 pins, printed (heap bytes / pins; target <= 16).
import { Core } from '../src/wasm.js';
import { PinTable } from '../src/core/pin_table.js';
import { PinTableModel } from '../test/model/pin_table_model.js';
import { ratioOf, type BenchGroup } from './harness.js';
import { rng } from '../test/helpers/rng.js';

/** xorshift32: a fixed sequence, so every run measures the same work. */

/** Heap bytes per pinned page after `fill` pins `pins` distinct pages into a fresh table. */
function bytesPerPin(core: Core, pins: number, fill: (t: PinTable) => void): number {
  const before = core.heapUsed();
  const t = new PinTable(core);
  fill(t);
  if (t.size !== pins) throw new Error(`pin_table bench: ${t.size} pins, expected ${pins}`);
  const per = (core.heapUsed() - before) / pins;
  t.dispose();
  return per;
}

export async function groups(quick: boolean): Promise<BenchGroup[]> {
  const core = await Core.create();
  const x = core.x;
  const n = quick ? 10_000 : 1_000_000;
  const space = Math.round(n * 0.83);
  const r = rng(4242);
  const pages = BigUint64Array.from({ length: n }, () => BigInt(r(space)));
  const distinct = new Set(pages).size;

  // Memory at 1,000,000 pins, three ways of getting there.
  const pins = quick ? 10_000 : 1_000_000;
  const perSeq = bytesPerPin(core, pins, (t) => {
    for (let i = 0; i < pins; i += 512) t.pinRange(BigInt(i), Math.min(512, pins - i));
  });
  const spread = BigUint64Array.from({ length: pins }, (_, i) => BigInt(i) * 4099n + BigInt(i % 7)); // distinct, scattered, < 2^32
  const perRandom512 = bytesPerPin(core, pins, (t) => {
    for (let i = 0; i < pins; i += 512) t.pinBatch(spread.subarray(i, i + 512));
  });
  const perOneBatch = bytesPerPin(core, pins, (t) => t.pinBatch(spread));
  console.log(
    `pin_table: ${pins} pins use ${perSeq.toFixed(2)} bytes/page (ranges of 512), ` +
      `${perRandom512.toFixed(2)} (scattered, batches of 512), ${perOneBatch.toFixed(2)} (one batch); ` +
      `workload: ${n} pins of ${distinct} distinct pages`,
  );

  const buf = x.heap_alloc(n * 8);
  core.u64().set(pages, buf / 8);
  const table = new PinTable(core);
  const model = new PinTableModel();
  const p = table.handle;
  const check = () => {
    const created = x.pins_pin_batch(p, buf, n, -1, 0, 0);
    const released = x.pins_unpin_batch(p, buf, n);
    if (created !== distinct || released !== distinct) throw new Error('pin_table bench: wrong counts');
  };
  check();

  return [
    {
      name: `pin_table: pin then unpin ${n} pages (${distinct} distinct), one batch each`,
      baseline: 'model Map<bigint, number>',
      target: '>= 5x faster than the Map model',
      cases: [
        {
          name: 'model Map<bigint, number>',
          fn: () => {
            model.pinBatch(pages);
            model.unpinBatch(pages);
          },
          units: 2 * n,
          unit: 'pages',
        },
        {
          name: 'wasm pins_pin_batch + unpin_batch',
          fn: () => {
            x.pins_pin_batch(p, buf, n, -1, 0, 0);
            x.pins_unpin_batch(p, buf, n);
          },
          units: 2 * n,
          unit: 'pages',
        },
        {
          name: 'PinTable.pinBatch + unpinBatch (copy in)',
          fn: () => {
            table.pinBatch(pages);
            table.unpinBatch(pages);
          },
          units: 2 * n,
          unit: 'pages',
        },
      ],
      check: (res) => ratioOf(res, 'wasm pins_pin_batch + unpin_batch') <= 0.2,
    },
    {
      name: `pin_table: pin then unpin ${n} pages (${distinct} distinct), batches of 512`,
      baseline: 'model Map<bigint, number>',
      cases: [
        {
          name: 'model Map<bigint, number>',
          fn: () => {
            for (let i = 0; i < n; i += 512) model.pinBatch(pages.subarray(i, i + 512));
            for (let i = 0; i < n; i += 512) model.unpinBatch(pages.subarray(i, i + 512));
          },
          units: 2 * n,
          unit: 'pages',
        },
        {
          name: 'wasm pins_pin_batch + unpin_batch',
          fn: () => {
            for (let i = 0; i < n; i += 512) x.pins_pin_batch(p, buf + i * 8, Math.min(512, n - i), -1, 0, 0);
            for (let i = 0; i < n; i += 512) x.pins_unpin_batch(p, buf + i * 8, Math.min(512, n - i));
          },
          units: 2 * n,
          unit: 'pages',
        },
      ],
    },
  ];
}
