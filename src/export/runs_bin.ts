// The binary runs format (`.runs.bin`, docs/formats.md): a 56-byte little-endian header, then each
// run as two unsigned LEB128 varints, the gap from the end of the previous run and the run's
// length, both in pages. Varint deltas, not fixed u64 pairs: a run of the simulator's exports
// takes 2 to 4 bytes instead of 16, and readers consume runs in order (a sender streams them).
//
//   offset  size  field
//   0       8     magic "VFDRUNS\0"
//   8       4     u32 version (1)
//   12      4     u32 header bytes (56): where the runs start
//   16      8     u64 page size, bytes
//   24      8     u64 iova of page 0
//   32      8     u64 pages covered
//   40      8     u64 dirty pages (the sum of the run lengths)
//   48      8     u64 runs
//   56      ...   runs: varint gap, varint pages; gap = first page - end of the previous run
//                 (the first run's gap is its first page), pages >= 1
import type { DirtyReport } from './dirty_report.js';
import type { FileSink } from './file_sink.js';
import { forEachRunBatch } from './run_batches.js';

/** The format's magic bytes: "VFDRUNS" and a NUL. */
export const RUNS_BIN_MAGIC = new Uint8Array([0x56, 0x46, 0x44, 0x52, 0x55, 0x4e, 0x53, 0x00]);
/** The version this code writes and reads. */
export const RUNS_BIN_VERSION = 1;
/** Header bytes of version 1. */
export const RUNS_BIN_HEADER = 56;
/** Offset of the runs count, written last. */
const RUNS_AT = 48;
/** Most bytes one run takes: two varints of a u32 (5 bytes each). */
const RUN_MAX_BYTES = 10;

/** A decoded `.runs.bin` file. Values are exact (bigint for the u64 header fields). */
export interface RunsBin {
  pgsize: bigint;
  iova: bigint;
  pages: bigint;
  dirty: bigint;
  /** (first page, pages) pairs, ascending and maximal. */
  runs: [number, number][];
}

/** Writes `report` in the binary runs format; returns the number of runs written. */
export function writeRunsBin(sink: FileSink, report: DirtyReport): number {
  const start = sink.offset;
  const head = new DataView(new ArrayBuffer(RUNS_BIN_HEADER));
  new Uint8Array(head.buffer).set(RUNS_BIN_MAGIC, 0);
  head.setUint32(8, RUNS_BIN_VERSION, true);
  head.setUint32(12, RUNS_BIN_HEADER, true);
  head.setBigUint64(16, report.pgsize, true);
  head.setBigUint64(24, report.iova, true);
  head.setBigUint64(32, BigInt(report.pages), true);
  head.setBigUint64(40, BigInt(report.count), true);
  sink.write(new Uint8Array(head.buffer)); // the runs count is patched in at the end
  let runs = 0;
  let prevEnd = 0;
  forEachRunBatch(report.bitmap, (pairs) => {
    const out = new Uint8Array((pairs.length >>> 1) * RUN_MAX_BYTES);
    let o = 0;
    for (let i = 0; i < pairs.length; i += 2) {
      o = varint(out, o, pairs[i] - prevEnd);
      o = varint(out, o, pairs[i + 1]);
      prevEnd = pairs[i] + pairs[i + 1];
    }
    runs += pairs.length >>> 1;
    sink.write(out.subarray(0, o));
  });
  const count = new DataView(new ArrayBuffer(8));
  count.setBigUint64(0, BigInt(runs), true);
  sink.patch(start + RUNS_AT, new Uint8Array(count.buffer));
  return runs;
}

/** Unsigned LEB128 of `v` (< 2^32) at out[o]; returns the next offset. */
function varint(out: Uint8Array, o: number, v: number): number {
  while (v >= 0x80) {
    out[o++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  out[o++] = v;
  return o;
}

/**
 * Decodes a `.runs.bin` file, checking it whole: magic, version, that the runs are maximal,
 * inside the pages covered, as many as the header says, summing to its dirty count, and that
 * nothing follows them.
 * @throws RangeError naming what is wrong
 */
export function decodeRunsBin(bytes: Uint8Array): RunsBin {
  const bad = (why: string): never => {
    throw new RangeError(`not a valid runs file: ${why}`);
  };
  if (bytes.length < RUNS_BIN_HEADER) bad('shorter than a header');
  if (!RUNS_BIN_MAGIC.every((b, i) => bytes[i] === b)) bad('wrong magic');
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = v.getUint32(8, true);
  if (version !== RUNS_BIN_VERSION) bad(`version ${version}, this reader knows ${RUNS_BIN_VERSION}`);
  const headerBytes = v.getUint32(12, true);
  if (headerBytes < RUNS_BIN_HEADER || headerBytes > bytes.length) bad(`header of ${headerBytes} bytes`);
  const pgsize = v.getBigUint64(16, true);
  const iova = v.getBigUint64(24, true);
  const pages = v.getBigUint64(32, true);
  const dirty = v.getBigUint64(40, true);
  const count = v.getBigUint64(48, true);
  const runs: [number, number][] = [];
  let o = headerBytes;
  const next = (): number => {
    let value = 0;
    for (let scale = 1; ; scale *= 128) {
      if (o >= bytes.length) bad('truncated run');
      const b = bytes[o++];
      value += (b & 0x7f) * scale;
      if (!Number.isSafeInteger(value)) bad('a value past 2^53');
      if (b < 0x80) return value;
    }
  };
  let end = 0;
  let sum = 0;
  while (o < bytes.length) {
    const gap = next();
    const n = next();
    if (n === 0 || (runs.length > 0 && gap === 0)) bad(`run ${runs.length} is empty or touches the previous one`);
    runs.push([end + gap, n]);
    end += gap + n;
    sum += n;
  }
  if (BigInt(runs.length) !== count) bad(`${runs.length} runs, the header says ${count}`);
  if (BigInt(end) > pages) bad(`runs end at page ${end}, past the ${pages} pages covered`);
  if (BigInt(sum) !== dirty) bad(`${sum} dirty pages in the runs, the header says ${dirty}`);
  return { pgsize, iova, pages, dirty, runs };
}
