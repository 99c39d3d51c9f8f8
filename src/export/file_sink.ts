// A file written in pieces: text and bytes go through a bounded buffer to a temporary name in the
// same directory, which commit() renames into place. Memory stays at one buffer however large the
// file, and a failed or abandoned write leaves nothing under the final name.
import { closeSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Text buffered before one write: 1 MiB of characters. */
const FLUSH_CHARS = 1 << 20;

/** An output file being written; commit() or abort() ends it. */
export class FileSink {
  /** The final path. */
  readonly path: string;
  private readonly tmp: string;
  private fd: number | null;
  private pending: string[] = [];
  private pendingChars = 0;
  /** Bytes written so far (flushed or pending). */
  private written = 0;
  /** Committed or aborted: nothing left to clean up. */
  private done = false;

  private constructor(path: string, tmp: string, fd: number) {
    this.path = path;
    this.tmp = tmp;
    this.fd = fd;
  }

  /**
   * Opens a temporary file beside `path` (its directory must exist).
   * @throws the system error of open (ENOENT, EACCES, EISDIR, ...)
   */
  static open(path: string): FileSink {
    const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
    return new FileSink(path, tmp, openSync(tmp, 'w'));
  }

  /** Bytes written so far: the offset of the next write. */
  get offset(): number {
    return this.written;
  }

  /** Appends text (UTF-8) or bytes. */
  write(data: string | Uint8Array): void {
    if (typeof data === 'string') {
      this.pending.push(data);
      this.pendingChars += data.length;
      this.written += Buffer.byteLength(data);
      if (this.pendingChars >= FLUSH_CHARS) this.flush();
      return;
    }
    this.flush();
    this.writeAll(data);
    this.written += data.length;
  }

  /** Overwrites bytes already written, at `position` (a header completed at the end). */
  patch(position: number, bytes: Uint8Array): void {
    this.flush();
    let done = 0;
    while (done < bytes.length) done += writeSync(this.fdOrThrow(), bytes, done, bytes.length - done, position + done);
  }

  /** Writes what is buffered, closes the file and renames it to its final path. */
  commit(): void {
    this.flush();
    closeSync(this.fdOrThrow());
    this.fd = null;
    renameSync(this.tmp, this.path);
    this.done = true;
  }

  /** Closes and removes the temporary file. Idempotent; does nothing after a commit(). */
  abort(): void {
    if (this.done) return;
    this.done = true;
    try {
      if (this.fd !== null) closeSync(this.fd);
    } finally {
      this.fd = null;
      rmSync(this.tmp, { force: true });
    }
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    const text = this.pending.join('');
    this.pending = [];
    this.pendingChars = 0;
    this.writeAll(Buffer.from(text));
  }

  private writeAll(bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length) done += writeSync(this.fdOrThrow(), bytes, done, bytes.length - done);
  }

  private fdOrThrow(): number {
    if (this.fd === null) throw new Error(`${this.path}: written after commit() or abort()`);
    return this.fd;
  }
}

/**
 * Writes one file through `fill(sink)`: committed when fill returns, removed when it throws.
 * @throws what open, fill or the writes throw; no file is left under `path` then
 */
export function writeFileStreamed(path: string, fill: (sink: FileSink) => void): void {
  const sink = FileSink.open(path);
  try {
    fill(sink);
    sink.commit();
  } catch (e) {
    sink.abort();
    throw e;
  }
}
