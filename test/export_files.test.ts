// The export files, one writer per format (src/export/report_files.ts): exact bytes of the
// bitmap, the JSON runs document and the binary runs format at bitmap word edges and across run
// batches; a 1 TiB report streamed in bounded pieces; a failed write leaves no file.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DirtyBitmap } from '../src/core/dirty_bitmap.js';
import { DirtyReport } from '../src/export/dirty_report.js';
import { writeReportFiles, type ExportFormat } from '../src/export/report_files.js';
import { countRuns, forEachRunBatch } from '../src/export/run_batches.js';
import { decodeRunsBin, RUNS_BIN_HEADER } from '../src/export/runs_bin.js';
import { writeRunsJson } from '../src/export/runs_json.js';
import { Prng } from '../src/sim/prng.js';
import { Core } from '../src/wasm.js';

let core: Core;
beforeAll(async () => {
  core = await Core.create();
});

const ALL: ReadonlySet<ExportFormat> = new Set(['bitmap', 'runs', 'runs-bin']);
const tmp = () => mkdtempSync(join(tmpdir(), 'vfio-dirty-files-'));

function report(nbits: number, pages: number[], iova = 0n, pgsize = 4096n): DirtyReport {
  const bm = DirtyBitmap.create(core, nbits);
  if (pages.length) bm.setBatch(Uint32Array.from(pages));
  return new DirtyReport(bm, iova, pgsize);
}

/** The runs of a page set as (first, pages) pairs: the model. */
function modelRuns(nbits: number, pages: number[]): [number, number][] {
  const set = new Uint8Array(nbits);
  for (const p of pages) set[p] = 1;
  const out: [number, number][] = [];
  for (let i = 0; i < nbits; ) {
    if (!set[i]) { i++; continue; }
    let j = i;
    while (j < nbits && set[j]) j++;
    out.push([i, j - i]);
    i = j;
  }
  return out;
}

function seeded(nbits: number, seed: number): number[] {
  const p = new Prng(seed);
  const out = [];
  for (let i = 0; i < nbits; i++) if (p.float() < 0.4) out.push(i);
  for (const e of [0, 63, 64, 127, 128, nbits - 1]) if (e < nbits) out.push(e);
  return out;
}

describe('the three export files of a small report', () => {
  // Pages 3, 4, 64..127 and 199 of 200 at IOVA 0x100000000: three runs.
  const pages = [3, 4, ...Array.from({ length: 64 }, (_, i) => 64 + i), 199];

  it('writes exactly the documented bytes', () => {
    const dir = tmp();
    const r = report(200, pages, 0x1_0000_0000n);
    const paths = writeReportFiles(dir, 'round-001', r, ALL, { round: 1 });
    expect(paths).toEqual(['round-001.bitmap', 'round-001.runs.json', 'round-001.runs.bin'].map((f) => join(dir, f)));
    expect(readdirSync(dir).sort()).toEqual(['round-001.bitmap', 'round-001.runs.bin', 'round-001.runs.json']);

    const bitmap = readFileSync(join(dir, 'round-001.bitmap'));
    expect(bitmap.length).toBe(32); // 4 u64 words for 200 bits
    expect([...bitmap]).toEqual([0x18, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0]);

    expect(readFileSync(join(dir, 'round-001.runs.json'), 'utf8')).toBe(
      '{"format":"vfio-dirty/runs/v1","round":1,"iova":"0x100000000","size":"0xc8000","pgsize":4096,"pages":200,"dirty":67,' +
      '"runs":[{"iova":"0x100003000","length":"0x2000"},{"iova":"0x100040000","length":"0x40000"},{"iova":"0x1000c7000","length":"0x1000"}]}\n',
    );

    const bin = readFileSync(join(dir, 'round-001.runs.bin'));
    const u64 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff, 0, 0, 0, 0];
    expect([...bin]).toEqual([
      0x56, 0x46, 0x44, 0x52, 0x55, 0x4e, 0x53, 0x00, // "VFDRUNS\0"
      1, 0, 0, 0, 56, 0, 0, 0, // version 1, 56 header bytes
      ...u64(4096), 0, 0, 0, 0, 1, 0, 0, 0, ...u64(200), ...u64(67), ...u64(3), // pgsize, iova 2^32, pages, dirty, runs
      3, 2, // gap 3 from page 0, 2 pages: pages 3..4
      59, 64, // gap 59 from page 5, 64 pages: 64..127
      71, 1, // gap 71 from page 128, 1 page: 199
    ]);
    expect(decodeRunsBin(bin)).toEqual({ pgsize: 4096n, iova: 0x1_0000_0000n, pages: 200n, dirty: 67n, runs: [[3, 2], [64, 64], [199, 1]] });
    r.dispose();
  });

  it('writes only the formats asked for', () => {
    const dir = tmp();
    const r = report(200, pages);
    writeReportFiles(dir, 'read-007', r, new Set(['runs-bin']), {});
    expect(readdirSync(dir)).toEqual(['read-007.runs.bin']);
    r.dispose();
  });

  it('writes an empty report as no runs', () => {
    const dir = tmp();
    const r = report(1, []);
    writeReportFiles(dir, 'x', r, ALL, { read: 1, line: 2, label: 'a "quoted"\nlabel' });
    expect([...readFileSync(join(dir, 'x.bitmap'))]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(readFileSync(join(dir, 'x.runs.json'), 'utf8')).toBe(
      '{"format":"vfio-dirty/runs/v1","read":1,"line":2,"label":"a \\"quoted\\"\\nlabel","iova":"0x0","size":"0x1000","pgsize":4096,"pages":1,"dirty":0,"runs":[]}\n',
    );
    expect(readFileSync(join(dir, 'x.runs.bin')).length).toBe(RUNS_BIN_HEADER);
    r.dispose();
  });

  it('leaves no file, not even a temporary one, when a write fails', () => {
    const dir = tmp();
    mkdirSync(join(dir, 'x.runs.json')); // a directory where the JSON file goes: rename fails
    const r = report(200, pages);
    expect(() => writeReportFiles(dir, 'x', r, ALL, {})).toThrow(/^cannot write .*x\.runs\.json: (EISDIR|ENOTEMPTY|EEXIST|EPERM) /);
    expect(readdirSync(dir).sort()).toEqual(['x.bitmap', 'x.runs.json']); // the bitmap before it stays
    expect(statSync(join(dir, 'x.runs.json')).isDirectory()).toBe(true);
    r.dispose();
  });
});

describe.each([1, 63, 64, 65, 129, 64 * 37 + 5])('runs of %i pages', (n) => {
  it('match the model through every format, in batches of any size', () => {
    const pages = seeded(n, n);
    const r = report(n, pages, 0x2000n);
    const model = modelRuns(n, pages);
    for (const batch of [1, 2, 3, 1 << 16]) {
      const got: [number, number][] = [];
      forEachRunBatch(r.bitmap, (pairs) => {
        expect(pairs.length).toBeLessThanOrEqual(2 * batch);
        for (let i = 0; i < pairs.length; i += 2) got.push([pairs[i], pairs[i + 1]]);
      }, batch);
      expect(got).toEqual(model);
    }
    expect(countRuns(r.bitmap)).toBe(model.length);
    const dir = tmp();
    writeReportFiles(dir, 'r', r, ALL, {});
    expect(decodeRunsBin(readFileSync(join(dir, 'r.runs.bin'))).runs).toEqual(model);
    const doc = JSON.parse(readFileSync(join(dir, 'r.runs.json'), 'utf8'));
    expect(doc.runs).toEqual(model.map(([f, k]) => ({ iova: `0x${(0x2000 + f * 4096).toString(16)}`, length: `0x${(k * 4096).toString(16)}` })));
    expect(new Uint8Array(readFileSync(join(dir, 'r.bitmap')))).toEqual(r.bytes());
    r.dispose();
  });
});

describe('a 1 TiB report (2^28 pages)', () => {
  it('is written in pieces of bounded size, whatever the number of runs', () => {
    // Every 256th page dirty: 2^20 runs. The JSON document is 44 MB; no piece handed to the file
    // is more than one batch of runs (65,536 runs, 2.7 MB of text).
    const nbits = 2 ** 28;
    const bm = DirtyBitmap.create(core, nbits);
    const pages = new Uint32Array(nbits / 256);
    for (let i = 0; i < pages.length; i++) pages[i] = i * 256;
    bm.setBatch(pages);
    const r = new DirtyReport(bm, 0n, 4096n);
    let largest = 0;
    let pieces = 0;
    let total = 0;
    const runs = writeRunsJson((s) => {
      largest = Math.max(largest, s.length);
      pieces++;
      total += s.length;
    }, r, { round: 1 });
    expect(runs).toBe(2 ** 20);
    expect(pieces).toBe(2 ** 20 / 2 ** 16 + 3); // head, one per batch, "]", "}"
    expect(largest).toBeLessThan(3 << 20);
    expect(total).toBeGreaterThan(43e6);
    r.dispose();
  });

  it('exports a sparse 1 TiB report to files of the exact sizes', () => {
    const nbits = 2 ** 28;
    const pages = [0, 1, 2, 1000, 2 ** 27, nbits - 1];
    const r = report(nbits, pages);
    const dir = tmp();
    writeReportFiles(dir, 'big', r, ALL, { round: 1 });
    expect(statSync(join(dir, 'big.bitmap')).size).toBe(2 ** 25); // 32 MiB
    const bitmap = readFileSync(join(dir, 'big.bitmap'));
    expect([bitmap[0], bitmap[125], bitmap[2 ** 24], bitmap[2 ** 25 - 1]]).toEqual([0x07, 0x01, 0x01, 0x80]);
    const bin = readFileSync(join(dir, 'big.runs.bin'));
    // 4 runs: (0,3) (1000,1) (2^27,1) (2^28-1,1): gaps 0, 997, 2^27-1001, 2^27-2 take 1, 2, 4, 4 bytes.
    expect(bin.length).toBe(RUNS_BIN_HEADER + (1 + 1) + (2 + 1) + (4 + 1) + (4 + 1));
    expect(decodeRunsBin(bin).runs).toEqual([[0, 3], [1000, 1], [2 ** 27, 1], [nbits - 1, 1]]);
    expect(JSON.parse(readFileSync(join(dir, 'big.runs.json'), 'utf8')).runs).toEqual([
      { iova: '0x0', length: '0x3000' }, { iova: '0x3e8000', length: '0x1000' },
      { iova: '0x8000000000', length: '0x1000' }, { iova: '0xfffffff000', length: '0x1000' },
    ]);
    r.dispose();
  });
});

describe('decodeRunsBin', () => {
  const good = () => {
    const dir = tmp();
    const r = report(200, [3, 4, 199]);
    writeReportFiles(dir, 'x', r, new Set(['runs-bin']), {});
    r.dispose();
    return new Uint8Array(readFileSync(join(dir, 'x.runs.bin')));
  };
  it.each([
    ['wrong magic', (b: Uint8Array) => { b[0] = 0x57; }, /wrong magic/],
    ['another version', (b: Uint8Array) => { b[8] = 2; }, /version 2, this reader knows 1/],
    ['a runs count that disagrees', (b: Uint8Array) => { b[48] = 3; }, /2 runs, the header says 3/],
    ['a dirty count that disagrees', (b: Uint8Array) => { b[40] = 4; }, /3 dirty pages in the runs, the header says 4/],
    ['an empty run', (b: Uint8Array) => { b[57] = 0; }, /run 0 is empty/],
  ])('rejects %s', (_, spoil, re) => {
    const b = good();
    spoil(b);
    expect(() => decodeRunsBin(b)).toThrow(re);
  });
  it('rejects a truncated file', () => {
    expect(() => decodeRunsBin(good().subarray(0, 59))).toThrow(/truncated run/);
    expect(() => decodeRunsBin(good().subarray(0, 20))).toThrow(/shorter than a header/);
  });
});
