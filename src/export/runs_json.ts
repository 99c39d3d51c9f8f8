// The JSON runs document (`.runs.json`, docs/formats.md), written in pieces so that millions of
// runs never make one string: one object, u64 values as "0x..." hex strings.
//
//   {"format":"vfio-dirty/runs/v1", <meta>, "iova":"0x0", "size":"0x...", "pgsize":4096,
//    "pages":N, "dirty":N, "runs":[{"iova":"0x...","length":"0x..."}, ...] [, "bitmap":"hex"]}
import type { DirtyReport } from './dirty_report.js';
import { forEachRunBatch } from './run_batches.js';

/** The `format` field of the document: its name and version. */
export const RUNS_JSON_FORMAT = 'vfio-dirty/runs/v1';

/** Fields that say where a report came from (`round`, or `read`, `line`, `label`), written first. */
export type RunsMeta = Readonly<Record<string, string | number>>;

/** Bitmap bytes turned into hex per piece: 1 MiB. */
const HEX_CHUNK = 1 << 20;

const hex = (v: bigint) => `0x${v.toString(16)}`;

/**
 * Writes the runs document of `report` to `write` in pieces of bounded size, without a trailing
 * newline. With `bitmap` the kernel-layout bitmap follows as hex (replay's JSON lines).
 * @returns the number of runs written
 */
export function writeRunsJson(write: (s: string) => void, report: DirtyReport, meta: RunsMeta, opts: { bitmap?: boolean } = {}): number {
  const head: Record<string, unknown> = { format: RUNS_JSON_FORMAT, ...meta };
  Object.assign(head, {
    iova: hex(report.iova), size: hex(report.size), pgsize: Number(report.pgsize), pages: report.pages, dirty: report.count,
  });
  write(`${JSON.stringify(head).slice(0, -1)},"runs":[`);
  const runToText = runFormatter(report);
  let runs = 0;
  forEachRunBatch(report.bitmap, (pairs) => {
    // One string a batch by concatenation: 10x faster here than joining an array of 65,536 parts.
    let text = runs > 0 ? ',' : '';
    for (let i = 0; i < pairs.length; i += 2) text += `${i > 0 ? ',' : ''}${runToText(pairs[i], pairs[i + 1])}`;
    write(text);
    runs += pairs.length >>> 1;
  });
  write(']');
  if (opts.bitmap) {
    write(',"bitmap":"');
    const words = report.bitmap.asTypedArray();
    for (let at = 0; at < words.byteLength; at += HEX_CHUNK) {
      const n = Math.min(HEX_CHUNK, words.byteLength - at);
      write(Buffer.from(words.buffer, words.byteOffset + at, n).toString('hex'));
    }
    write('"');
  }
  write('}');
  return runs;
}

/**
 * `{"iova":"0x...","length":"0x..."}` of a run given in pages. When every byte address of the
 * report is below 2^53, plain numbers: a page size 2^k is a multiplier 2^(k % 4) and k / 4 hex
 * zeros, so the number printed is a small integer (4M runs: 1.2 s -> 0.5 s here, bigints: 4 s).
 * Otherwise bigints.
 */
function runFormatter(report: DirtyReport): (first: number, pages: number) => string {
  const { iova, pgsize } = report;
  if (iova + report.size <= BigInt(Number.MAX_SAFE_INTEGER) && iova % pgsize === 0n) {
    const k = pgsize.toString(2).length - 1; // the page size is a power of two
    const zeros = '0'.repeat(k >> 2);
    const mul = 2 ** (k & 3);
    const basePage = Number(iova / pgsize);
    const at = (page: number) => (page === 0 ? '0' : `${(page * mul).toString(16)}${zeros}`);
    return (first, pages) => `{"iova":"0x${at(basePage + first)}","length":"0x${at(pages)}"}`;
  }
  return (first, pages) => `{"iova":"${hex(iova + BigInt(first) * pgsize)}","length":"${hex(BigInt(pages) * pgsize)}"}`;
}
