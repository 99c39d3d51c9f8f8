// The main thread of `vfio-dirty serve`: the Unix socket, framing, routing and logs. The engine runs
// in a worker thread (worker.ts, host.ts) so that a driver callback can block there waiting for a
// client's answer while this thread keeps reading every socket (docs/PROTOCOL.md §6).
import { chmodSync, existsSync, lstatSync, mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageChannel, Worker } from 'node:worker_threads';
import type { EngineOptions } from '../engine.js';
import type { ToMain } from './host.js';
import { MAX_DATA } from './ops.js';
import { concat, DEFAULT_MAX_FRAME, HEADER_SIZE, PErr, readHeader, replyFrame } from './protocol.js';
import type { WorkerInit } from './worker.js';
import { workerUrl } from './worker_url.js';

export interface ServerOptions {
  /** Path of the Unix socket to listen on. */
  listen: string;
  /** Permission bits of the socket; default 0o600. */
  mode?: number;
  /** Engine options, as `createEngine` takes them. */
  engine?: EngineOptions;
  /** Groups to create at start-up, in the text form of group_spec.ts. */
  groups?: string[];
  /** Largest frame accepted, header included; default 16 MiB + 16. */
  maxFrame?: number;
  /** How long a callback waits for EVENT_DONE before it returns anyway; default 5000 ms. */
  callbackTimeoutMs?: number;
  /** Largest shared file a client may ask for; default 1 GiB. */
  shmMax?: number;
  /** Directory in which the server's private shared-file directory is made; default /dev/shm. */
  shmBase?: string;
  /** Where structured log lines go; default stderr. */
  log?: (line: string) => void;
}

/** A running server. */
export interface Server {
  /** The socket path. */
  readonly path: string;
  /** Groups created at start-up: number and device names. */
  readonly groups: { id: number; devices: string[] }[];
  /** Graceful shutdown: in-flight requests answered, connections ended, socket removed. */
  close(): Promise<void>;
}

interface Conn {
  id: number;
  socket: Socket;
  buf: Uint8Array;
  /** Bytes of an over-long frame still to be discarded. */
  skip: number;
  /** When data last arrived (ms). */
  lastData: number;
}

/** Starts `vfio-dirty serve`; resolves once the engine is up and the socket listens. */
export async function startServer(o: ServerOptions): Promise<Server> {
  const logSink = o.log ?? ((l: string) => process.stderr.write(l));
  const log = (level: string, event: string, fields: Record<string, unknown> = {}): void => {
    logSink(`${JSON.stringify({ time: new Date().toISOString(), level, event, ...fields })}\n`);
  };
  const maxFrame = o.maxFrame ?? DEFAULT_MAX_FRAME;
  if (!Number.isInteger(maxFrame) || maxFrame < HEADER_SIZE + 64) throw new RangeError('maxFrame too small');
  const mode = o.mode ?? 0o600;
  await removeStaleSocket(o.listen);
  const shmDir = mkdtempSync(join(o.shmBase ?? (existsSync('/dev/shm') ? '/dev/shm' : tmpdir()), 'vfio-dirty-'));
  const channel = new MessageChannel();
  const flagBuf = new SharedArrayBuffer(4);
  const flag = new Int32Array(flagBuf);
  const init: WorkerInit = {
    engine: o.engine ?? {}, groups: o.groups ?? [], nested: channel.port2, flag: flagBuf,
    shmDir, shmMax: o.shmMax ?? 1 << 30, callbackTimeoutMs: o.callbackTimeoutMs ?? 5000,
  };
  const worker = new Worker(await workerUrl(), { workerData: init, transferList: [channel.port2] });
  const conns = new Map<number, Conn>();
  let nextConn = 1;
  let stopping = false;
  let drained: (() => void) | null = null;
  let groups: { id: number; devices: string[] }[] = [];

  const ready = new Promise<void>((resolve, reject) => {
    worker.on('message', (m: ToMain) => {
      if (m.t === 'out') conns.get(m.conn)?.socket.write(m.data);
      else if (m.t === 'log') {
        const { t: _t, level, event, ...rest } = m;
        log(level, event, rest);
      } else if (m.t === 'drained') drained?.();
      else if (m.t === 'ready') {
        groups = m.groups;
        resolve();
      } else if (m.t === 'fatal') reject(new Error(m.message));
    });
    worker.on('error', (e) => {
      log('error', 'worker-error', { error: String(e?.stack ?? e) });
      reject(e);
    });
  });
  try {
    await ready;
  } catch (e) {
    await worker.terminate();
    rmSync(shmDir, { recursive: true, force: true });
    throw e;
  }

  const wake = (): void => {
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
  };
  const drain = (): Promise<void> => new Promise((res) => {
    drained = res;
    worker.postMessage({ t: 'drain' });
  });

  /** Splits what arrived into frames and routes them: ctx 0 to the worker's queue, else nested. */
  const onData = (c: Conn, chunk: Buffer): void => {
    let data: Uint8Array = chunk;
    if (c.skip > 0) {
      const n = Math.min(c.skip, data.length);
      c.skip -= n;
      data = data.subarray(n);
    }
    const buf = c.buf.length ? Buffer.concat([c.buf, data]) : data;
    const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    // top-level frames are forwarded as runs of bytes (no object per frame: this is the hot path)
    const top: Uint8Array[] = [];
    const nested: Uint8Array[] = [];
    const direct: Uint8Array[] = [];
    let run = -1; // start of the current run of top-level frames
    const endRun = (at: number): void => {
      if (run >= 0) top.push(buf.subarray(run, at));
      run = -1;
    };
    let o = 0;
    while (buf.length - o >= 4) {
      const size = v.getUint32(o, true);
      if (size < HEADER_SIZE) {
        const n = Math.max(size, 4);
        if (buf.length - o < n) break;
        endRun(o);
        direct.push(replyFrame(0, 0, -PErr.EBADMSG));
        log('warn', 'bad-frame', { conn: c.id, reason: 'size below header', size });
        o += n;
        continue;
      }
      if (buf.length - o < HEADER_SIZE) break;
      if (size > maxFrame) {
        endRun(o);
        const h = readHeader(buf, o);
        direct.push(replyFrame(h.op, h.id, -PErr.EMSGSIZE));
        log('warn', 'bad-frame', { conn: c.id, reason: 'frame too long', size, op: h.op, id: h.id });
        const have = Math.min(size, buf.length - o);
        c.skip = size - have;
        o += have;
        continue;
      }
      if (buf.length - o < size) break;
      if (v.getUint32(o + 12, true) !== 0) {
        endRun(o);
        nested.push(buf.subarray(o, o + size));
      } else if (stopping) {
        endRun(o);
        const h = readHeader(buf, o);
        direct.push(replyFrame(h.op, h.id, -PErr.ESHUTDOWN));
      } else if (run < 0) run = o;
      o += size;
    }
    endRun(o);
    c.buf = o < buf.length ? new Uint8Array(buf.subarray(o)) : new Uint8Array(0);
    if (direct.length) c.socket.write(Buffer.concat(direct));
    if (top.length) {
      const data = top.length === 1 ? new Uint8Array(top[0]) : concat(top); // a copy: the chunk is not ours to transfer
      worker.postMessage({ t: 'frames', conn: c.id, data }, [data.buffer]);
    }
    if (nested.length) {
      const data = concat(nested);
      channel.port1.postMessage({ t: 'frames', conn: c.id, data }, [data.buffer]);
      wake();
    }
  };

  const net: NetServer = createServer((socket) => {
    const c: Conn = { id: nextConn++, socket, buf: new Uint8Array(0), skip: 0, lastData: 0 };
    conns.set(c.id, c);
    log('info', 'connect', { conn: c.id });
    worker.postMessage({ t: 'open', conn: c.id });
    socket.on('data', (d: Buffer) => {
      c.lastData = Date.now();
      onData(c, d);
    });
    socket.on('error', (e) => log('warn', 'socket-error', { conn: c.id, error: e.message }));
    socket.on('close', () => {
      conns.delete(c.id);
      channel.port1.postMessage({ t: 'dead', conn: c.id });
      wake();
      worker.postMessage({ t: 'close', conn: c.id });
      log('info', 'disconnect', { conn: c.id });
    });
  });
  await new Promise<void>((resolve, reject) => {
    net.once('error', reject);
    const old = process.umask(~mode & 0o777);
    try {
      net.listen(o.listen, () => resolve());
    } finally {
      process.umask(old);
    }
  });
  chmodSync(o.listen, mode);
  log('info', 'listen', { path: o.listen, mode: `0${mode.toString(8)}`, groups, maxFrame, maxData: MAX_DATA });

  // The engine's thread ending on its own (a defect) ends the service: clients see their
  // connections drop rather than wait forever, and the socket goes away.
  worker.on('exit', (code) => {
    if (closing) return;
    log('error', 'worker-exit', { code });
    closing = Promise.resolve();
    net.close();
    for (const c of conns.values()) c.socket.destroy();
    if (existsSync(o.listen)) unlinkSync(o.listen);
    rmSync(shmDir, { recursive: true, force: true });
  });

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      stopping = true;
      log('info', 'shutdown', { connections: conns.size });
      const stopped = new Promise<void>((res) => net.close(() => res()));
      await drain(); // every request received so far is answered
      // a grace period: requests already on their way (sent before the client saw the shutdown)
      // are still read and answered -ESHUTDOWN, until every connection is quiet for 50 ms (2 s at most)
      const t0 = Date.now();
      while (Date.now() - t0 < 2000 && [...conns.values()].some((c) => Date.now() - c.lastData < 50)) {
        await new Promise((res) => setTimeout(res, 20));
      }
      await drain();
      const ends = [...conns.values()].map((c) => new Promise<void>((res) => {
        c.socket.once('close', () => res());
        c.socket.end();
        setTimeout(() => c.socket.destroy(), 2000).unref();
      }));
      await Promise.all(ends);
      await drain(); // every process has exited
      await stopped;
      await worker.terminate();
      channel.port1.close();
      if (existsSync(o.listen)) unlinkSync(o.listen);
      rmSync(shmDir, { recursive: true, force: true });
      log('info', 'stopped');
    })();
    return closing;
  };
  return { path: o.listen, groups, close };
}

/** Removes a socket file left by a server that is gone; refuses one that still answers. */
async function removeStaleSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket()) throw new Error(`${path} exists and is not a socket`);
  const alive = await new Promise<boolean>((res) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.destroy();
      res(true);
    });
    s.once('error', () => res(false));
  });
  if (alive) throw new Error(`${path}: a server is already listening there`);
  unlinkSync(path);
}
