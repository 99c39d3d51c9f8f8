// The files a dirty report is exported to, one writer per format, shared by `simulate --export`
// and `replay --export` (docs/formats.md describes each byte):
//
//   NAME.bitmap      the kernel layout: little-endian u64 words, bit i = page iova + i * pgsize
//   NAME.runs.json   the runs as a JSON document (runs_json.ts)
//   NAME.runs.bin    the runs as varint deltas after a 56-byte header (runs_bin.ts)
//
// Every file is streamed (the bitmap straight from Wasm memory, the runs in batches from the
// core's run kernel) to a temporary name and renamed into place when complete.
import { join } from 'node:path';
import type { DirtyReport } from './dirty_report.js';
import { writeFileStreamed, type FileSink } from './file_sink.js';
import { writeRunsBin } from './runs_bin.js';
import { writeRunsJson, type RunsMeta } from './runs_json.js';

/** A file format of an export. */
export type ExportFormat = 'bitmap' | 'runs' | 'runs-bin';

/** Each format and the suffix of its file name, in the order they are written. */
export const EXPORT_SUFFIXES: ReadonlyMap<ExportFormat, string> = new Map([
  ['bitmap', '.bitmap'],
  ['runs', '.runs.json'],
  ['runs-bin', '.runs.bin'],
]);

/** Bitmap bytes handed to one write: 1 MiB. */
const BITMAP_CHUNK = 1 << 20;

/** Writes the kernel-layout bitmap of `report`, 1 MiB at a time from Wasm memory (no copy). */
export function writeBitmap(sink: FileSink, report: DirtyReport): void {
  const words = report.bitmap.asTypedArray();
  const bytes = new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
  for (let at = 0; at < bytes.length; at += BITMAP_CHUNK) sink.write(bytes.subarray(at, at + BITMAP_CHUNK));
}

/**
 * Writes `dir/name<suffix>` for each of `formats`; `meta` heads the JSON document.
 * @returns the paths written
 * @throws Error "cannot write PATH: CODE (...)" when a file cannot be written; that file is
 *   removed, earlier ones stay
 */
export function writeReportFiles(dir: string, name: string, report: DirtyReport, formats: ReadonlySet<ExportFormat>, meta: RunsMeta): string[] {
  const paths: string[] = [];
  for (const [format, suffix] of EXPORT_SUFFIXES) {
    if (!formats.has(format)) continue;
    const path = join(dir, `${name}${suffix}`);
    try {
      writeFileStreamed(path, (sink) => {
        if (format === 'bitmap') writeBitmap(sink, report);
        else if (format === 'runs') {
          writeRunsJson((s) => sink.write(s), report, meta);
          sink.write('\n');
        } else writeRunsBin(sink, report);
      });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new Error(`cannot write ${path}: ${code ? `${code} ` : ''}(${(e as Error).message})`, { cause: e });
    }
    paths.push(path);
  }
  return paths;
}
