// Progress of a simulated migration: a live bar redrawn in place on a terminal, one plain line
// per round elsewhere (pipes, CI logs), or nothing.
import type { RoundRecord } from '../sim/summary.js';
import { formatBytes } from './units.js';

/** Where progress is written: a stream that may be a terminal. */
export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** Receives the simulator's progress events. */
export interface ProgressSink {
  /** A round starts sending `pages` pages. */
  roundStart(r: RoundRecord): void;
  /** Share of the current round's virtual time done, in [0, 1]. */
  advance(fraction: number): void;
  /** The round has been sent (or the run ended with it). */
  roundEnd(r: RoundRecord): void;
  /** The run is over. */
  finish(): void;
}

/** A progress sink that shows nothing. */
export const silentProgress: ProgressSink = {
  roundStart() {},
  advance() {},
  roundEnd() {},
  finish() {},
};

/** One round as a plain line. */
export function roundLine(r: RoundRecord, limitS: number): string {
  const head = `round ${String(r.round).padStart(2)} ${r.phase.padEnd(11)}`;
  const sent = `sent ${formatBytes(r.bytesSent).padStart(9)} in ${fmtS(r.durationS).padStart(8)}`;
  if (r.phase === 'bulk') return `${head} ${sent}`;
  const dirty = `dirty ${formatBytes(r.dirtyPages * 4096).padStart(9)}${r.allDirty ? ' (all-dirty)' : ''}`;
  const rate = `rate ${(r.dirtyRate / 2 ** 20).toFixed(1).padStart(7)} MiB/s`;
  const dt = `expected downtime ${fmtS(r.expectedDowntimeS)} ${r.expectedDowntimeS <= limitS ? '<=' : '>'} ${fmtS(limitS)}`;
  const aid = r.throttlePct > 0 ? `  throttle ${r.throttlePct}%` : r.dirtyLimit > 0 ? `  dirty-limit ${(r.dirtyLimit / 2 ** 20).toFixed(0)} MiB/s` : '';
  const dev = r.devicePendingBytes > 0 ? `  device pending ${formatBytes(r.devicePendingBytes)}` : '';
  const acc = r.accelPages > 0 || r.accelUnseen > 0 ? `  accel wrote ${r.accelPages} pages, unseen ${r.accelUnseen}` : '';
  return `${head} ${dirty}  ${rate}  ${dt}${dev}${acc}  ${sent}${aid}  engine ${r.harvestMs.toFixed(2)} ms`;
}

/** Seconds, as ms below 10 s. */
export function fmtS(s: number): string {
  return s < 10 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`;
}

/** Plain lines: one per finished round. */
export class LineProgress implements ProgressSink {
  constructor(private readonly out: ProgressStream, private readonly limitS: number) {}
  roundStart(): void {}
  advance(): void {}
  roundEnd(r: RoundRecord): void {
    this.out.write(`${roundLine(r, this.limitS)}\n`);
  }
  finish(): void {}
}

/** A bar redrawn in place (carriage return), with the finished rounds scrolling above it. */
export class BarProgress implements ProgressSink {
  private current?: RoundRecord;
  private lastDraw = -1;

  constructor(private readonly out: ProgressStream, private readonly limitS: number) {}

  roundStart(r: RoundRecord): void {
    this.current = r;
    this.lastDraw = -1;
    this.draw(0);
  }

  advance(fraction: number): void {
    this.draw(fraction);
  }

  roundEnd(r: RoundRecord): void {
    this.out.write(`\r\x1b[2K${roundLine(r, this.limitS)}\n`);
    this.current = undefined;
  }

  finish(): void {
    if (this.current) this.out.write('\r\x1b[2K');
  }

  private draw(fraction: number): void {
    const r = this.current;
    if (!r) return;
    const width = 30;
    const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
    if (filled === this.lastDraw) return; // redraw only when the bar moves
    this.lastDraw = filled;
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
    const text = `round ${r.round} ${r.phase} ${bar} ${formatBytes(r.bytesSent)} at ${fmtS(r.startS)}`;
    const cols = this.out.columns ?? 100;
    this.out.write(`\r\x1b[2K${text.slice(0, cols - 1)}`);
  }
}

/** Whether a mode draws a bar on `out`: `bar`, or `auto` on a terminal (`lines` elsewhere). */
export function drawsBar(mode: 'auto' | 'bar' | 'lines' | 'none', out: ProgressStream): boolean {
  return mode === 'bar' || (mode === 'auto' && out.isTTY === true);
}

/** The sink for a mode: `auto` draws a bar on a terminal and plain lines elsewhere. */
export function progressFor(mode: 'auto' | 'bar' | 'lines' | 'none', out: ProgressStream, limitS: number): ProgressSink {
  if (mode === 'none') return silentProgress;
  if (drawsBar(mode, out)) return new BarProgress(out, limitS);
  return new LineProgress(out, limitS);
}
