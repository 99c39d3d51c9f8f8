// Text on its way to a terminal: control characters and escape sequences from user input (trace
// labels, names, paths) are shown escaped, never interpreted; and a closed stdout (`| head -1`)
// ends the output quietly instead of raising EPIPE.

/** C0 and C1 controls, DEL, and the bidirectional overrides that can reorder what is shown. */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** `s` with every control character as an escape: ESC as \x1b, newline as \n, U+202E as \u202e. */
export function printable(s: string): string {
  return s.replace(UNPRINTABLE, (ch) => {
    const code = ch.charCodeAt(0);
    if (ch === '\n') return '\\n';
    if (ch === '\r') return '\\r';
    if (ch === '\t') return '\\t';
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/** A stream the command writes to (stdout, stderr, or a test's collector). */
export interface OutStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
  on?(event: 'error', fn: (e: NodeJS.ErrnoException) => void): unknown;
}

/** Errors that mean the reader has gone: the rest of the output is dropped quietly. */
const READER_GONE = new Set(['EPIPE', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END']);

/**
 * A stream that drops its writes once its reader has gone (EPIPE), instead of letting the error
 * surface unhandled. Other stream errors are passed to `onError`.
 */
export function guardStream(out: OutStream, onError: (e: Error) => void): OutStream {
  let gone = false;
  out.on?.('error', (e) => {
    if (READER_GONE.has(e.code ?? '')) gone = true;
    else onError(e);
  });
  return {
    write: (s: string) => (gone ? false : out.write(s)),
    get isTTY() {
      return out.isTTY;
    },
    get columns() {
      return out.columns;
    },
  };
}
