// The engine side of the server, run in a worker thread (worker.ts): one session per connection,
// each a process of the model; replies and events queued per connection and posted to the main
// thread in order; driver callbacks delivered as events, blocking until the client answers.
import { closeSync, ftruncateSync, openSync, readdirSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { Engine } from '../engine.js';
import type { Process } from '../process.js';
import type { VfioDevice } from '../vfio/group.js';
import { frame, readHeader, Reader, splitFrames, writeReplyHead, Writer, HEADER_SIZE, Op, PErr } from './protocol.js';
import { opTable, type Reply } from './ops.js';

/** A connection's share of the engine. */
export interface Session {
  readonly id: number;
  /** The process of the model, from HELLO on. */
  proc: Process | null;
  /** The shared file (SHM_* requests), if HELLO asked for one. */
  shm: { fd: number; size: number; path: string } | null;
  /** The connection closed or died: events to it return at once. */
  dead: boolean;
  /** Devices whose dma_unmap op this connection registered (cleared when it ends). */
  readonly registered: Set<VfioDevice>;
  /**
   * What the connection's end undoes besides the process exit, keyed by what it undoes: page-track
   * nodes, unlink callbacks, SVA bonds, IOASID notifiers. Run before the exit, in insertion order.
   */
  readonly ends: Map<object, () => void>;
}

/** One pending callback: an event sent, its EVENT_DONE awaited. */
interface PendingEvent {
  id: number;
  conn: number;
  done: boolean;
  value: bigint;
}

/** Bytes above which a connection's output buffer is dropped for a small one once sent. */
const OUT_LARGE = 1 << 20;

/** A connection's outgoing frames, written in place: no allocation per reply. */
class OutBuffer extends Writer {
  /** Queues a frame. */
  frame(f: Uint8Array): void {
    const o = this.room(f.length); // before reading this.buf: room() may replace it
    this.buf.set(f, o);
  }

  /** Queues a reply: header, i64 result, data. */
  reply(op: number, id: number, ret: number | bigint, data?: Uint8Array): void {
    const n = HEADER_SIZE + 8 + (data ? data.length : 0);
    const o = this.room(n);
    writeReplyHead(this.v, o, n, op, id, ret);
    if (data) this.buf.set(data, o + HEADER_SIZE + 8);
  }

  /** The bytes written (a copy), the buffer emptied (and shrunk after a large reply). */
  take(): Uint8Array<ArrayBuffer> {
    const out = this.buf.slice(0, this.len);
    if (this.buf.length > OUT_LARGE) {
      this.buf = new Uint8Array(64);
      this.v = new DataView(this.buf.buffer);
    }
    this.len = 0;
    return out;
  }
}

/** What the main thread hands the worker. */
export interface HostConfig {
  shmDir: string;
  shmMax: number;
  callbackTimeoutMs: number;
}

/** Messages the worker posts to the main thread. */
export type ToMain =
  | { t: 'out'; conn: number; data: Uint8Array }
  | { t: 'log'; level: 'info' | 'warn' | 'error'; event: string; [k: string]: unknown }
  | { t: 'drained' }
  | { t: 'ready'; groups: { id: number; devices: string[] }[] }
  | { t: 'fatal'; message: string };

export class Host {
  readonly engine: Engine;
  readonly sessions = new Map<number, Session>();
  private readonly out = new Map<number, OutBuffer>();
  private readonly pending: PendingEvent[] = [];
  private nextEvent = 1;
  /** The ctx (event id) of the request running now; 0 at top level. */
  private ctx = 0;

  constructor(
    engine: Engine,
    readonly config: HostConfig,
    private readonly post: (m: ToMain, transfer?: ArrayBuffer[]) => void,
    private readonly nested: MessagePort,
    private readonly flag: Int32Array,
  ) {
    this.engine = engine;
  }

  log(level: 'info' | 'warn' | 'error', event: string, fields: Record<string, unknown> = {}): void {
    this.post({ t: 'log', level, event, ...fields });
  }

  open(conn: number): void {
    this.sessions.set(conn, { id: conn, proc: null, shm: null, dead: false, registered: new Set(), ends: new Map() });
  }

  /** The connection ended: the process exits (fds closed, pins released, memory returned). */
  close(conn: number): void {
    const s = this.sessions.get(conn);
    if (!s) return;
    s.dead = true;
    for (const undo of s.ends.values()) {
      try {
        undo();
      } catch (e) {
        this.log('error', 'exit-threw', { conn, error: String((e as Error)?.stack ?? e) });
      }
    }
    s.ends.clear();
    try {
      if (s.proc && !s.proc.exited) s.proc.exit();
    } catch (e) {
      this.log('error', 'exit-threw', { conn, error: String((e as Error)?.stack ?? e) });
    }
    for (const d of s.registered) d.dmaUnmap = null;
    if (s.shm) {
      closeSync(s.shm.fd);
      try {
        unlinkSync(s.shm.path);
      } catch {
        /* already gone */
      }
    }
    this.sessions.delete(conn);
    this.out.delete(conn);
  }

  private outOf(conn: number): OutBuffer {
    let q = this.out.get(conn);
    if (!q) this.out.set(conn, (q = new OutBuffer()));
    return q;
  }

  /** Queues a frame for `conn`. */
  emit(conn: number, f: Uint8Array): void {
    this.outOf(conn).frame(f);
  }

  /** Queues a reply for `conn`, written in place: header, i64 result, data. */
  emitReply(conn: number, op: number, id: number, ret: number | bigint, data?: Uint8Array): void {
    this.outOf(conn).reply(op, id, ret, data);
  }

  /** Posts every queued frame to the main thread, one message per connection. */
  flush(): void {
    for (const [conn, q] of this.out) {
      if (q.len === 0) continue;
      const data = q.take();
      this.post({ t: 'out', conn, data }, [data.buffer]);
    }
  }

  /** Runs top-level frames of `conn` (ctx 0), concatenated in `data`. */
  frames(conn: number, data: Uint8Array): void {
    const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
    for (let o = 0; o + HEADER_SIZE <= data.length;) {
      const n = v.getUint32(o, true);
      this.request(conn, data.subarray(o, o + n));
      o += n;
    }
  }

  /** Frames that name a callback (ctx != 0), and deaths; called from the nested port. */
  nestedMessage(m: { t: 'frames'; conn: number; data: Uint8Array } | { t: 'dead'; conn: number }): void {
    if (m.t === 'dead') {
      const s = this.sessions.get(m.conn);
      if (s) s.dead = true;
      return;
    }
    for (const f of splitFrames(m.data)) {
      const h = readHeader(f);
      const ev = this.pending.find((e) => e.id === h.ctx && e.conn === m.conn);
      if (!ev) {
        this.emitReply(m.conn, h.op, h.id, -PErr.ESRCH);
        continue;
      }
      if (h.op === Op.EVENT_DONE) {
        const r = new Reader(f.subarray(HEADER_SIZE));
        const v = r.i64();
        ev.done = true;
        ev.value = r.ok ? v : 0n;
        this.emitReply(m.conn, h.op, h.id, 0);
        continue;
      }
      const outer = this.ctx;
      this.ctx = h.ctx;
      try {
        this.request(m.conn, f);
      } finally {
        this.ctx = outer;
      }
    }
  }

  /** One request frame: its reply is queued. */
  private request(conn: number, f: Uint8Array): void {
    const s = this.sessions.get(conn);
    if (!s) return;
    // the header's op, flags and id, read without allocating (this runs for every request)
    const op = f[4] | (f[5] << 8);
    const flags = f[6] | (f[7] << 8);
    const id = (f[8] | (f[9] << 8) | (f[10] << 16) | (f[11] << 24)) >>> 0;
    let reply: Reply;
    const handler = opTable[op];
    if (flags !== 0) reply = [-PErr.EINVAL];
    else if (!handler) reply = [-PErr.ENOSYS];
    else if (op === Op.EVENT_DONE) reply = [-PErr.ESRCH]; // top level: no callback is waiting
    else if (!s.proc && op !== Op.HELLO) reply = [-PErr.EPROTO];
    else if (s.proc && op === Op.HELLO) reply = [-PErr.EPROTO];
    else {
      const r = new Reader(f.subarray(HEADER_SIZE));
      try {
        reply = handler(this, s, r);
        if (!r.ok) reply = [-PErr.EBADMSG];
      } catch (e) {
        reply = [-PErr.EINVAL];
        // a call the engine refuses inside a callback (it throws): the kernel would deadlock
        if (e instanceof Error && / is not allowed inside a/.test(e.message)) reply = [-PErr.EDEADLK];
        else this.log('error', 'request-threw', { conn, op, error: String((e as Error)?.message ?? e) });
      }
    }
    this.emitReply(conn, op, id, reply[0], reply[1]);
  }

  /**
   * Delivers a callback to `target` as an event frame and blocks until its EVENT_DONE, running the
   * requests it makes inside the callback meanwhile; returns the value of EVENT_DONE (0 when the
   * connection is dead, ends, or stays silent past the timeout).
   */
  deliver(target: Session, op: number, payload: Uint8Array): bigint {
    if (target.dead) return 0n;
    const ev: PendingEvent = { id: this.nextEvent++, conn: target.id, done: false, value: 0n };
    if (this.nextEvent > 0xffff_fff0) this.nextEvent = 1;
    this.pending.push(ev);
    this.emit(target.id, frame(op, ev.id, this.ctx, payload));
    this.flush();
    const deadline = Date.now() + this.config.callbackTimeoutMs;
    try {
      for (;;) {
        Atomics.store(this.flag, 0, 0);
        for (let m = receiveMessageOnPort(this.nested); m; m = receiveMessageOnPort(this.nested)) {
          this.nestedMessage(m.message);
        }
        this.flush();
        if (ev.done || target.dead) break;
        const left = deadline - Date.now();
        if (left <= 0) {
          this.log('warn', 'callback-timeout', { conn: target.id, eventId: ev.id, op });
          break;
        }
        Atomics.wait(this.flag, 0, 0, left);
      }
    } finally {
      this.pending.splice(this.pending.indexOf(ev), 1);
    }
    return ev.value;
  }

  /** Creates the shared file of a session: 0600 in the server's private directory. */
  createShm(s: Session, size: number): string {
    const path = join(this.config.shmDir, `conn-${s.id}`);
    const fd = openSync(path, 'w+', 0o600);
    ftruncateSync(fd, size);
    s.shm = { fd, size, path };
    return path;
  }

  shmRead(s: Session, offset: number, length: number): Uint8Array {
    const b = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(s.shm!.fd, b, done, length - done, offset + done);
      if (n <= 0) break;
      done += n;
    }
    return b;
  }

  shmWrite(s: Session, offset: number, data: Uint8Array): void {
    let done = 0;
    while (done < data.length) done += writeSync(s.shm!.fd, data, done, data.length - done, offset + done);
  }

  /**
   * The server process's footprint (for STATS): resident bytes, this thread's JS heap (with
   * `collect`, after a full collection when node runs with --expose-gc), open fds, and files in
   * the shared-file directory. What a leak check watches besides the engine's heap.
   */
  footprint(collect: boolean): { rss: number; jsHeapUsed: number; fds: number; shmFiles: number } {
    if (collect) (globalThis as { gc?: () => void }).gc?.();
    const m = process.memoryUsage();
    let fds = -1;
    try {
      fds = readdirSync('/proc/self/fd').length - 1; // less the one this listing opened
    } catch {
      /* not Linux: unknown */
    }
    return { rss: m.rss, jsHeapUsed: m.heapUsed, fds, shmFiles: readdirSync(this.config.shmDir).length };
  }

  /** Pending callbacks (for STATS). */
  get pendingEvents(): number {
    return this.pending.length;
  }
}
