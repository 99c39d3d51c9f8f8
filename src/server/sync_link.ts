// A blocking byte stream to a `vfio-dirty serve` socket, for callers that cannot await (the
// simulator is synchronous). Node has no blocking socket reads, so a small I/O thread owns the
// socket: it writes what the caller posts to it, and copies what arrives into a ring buffer in
// shared memory; the caller blocks on Atomics.wait until the bytes it needs are there. The
// thread only moves bytes; framing and events are the caller's (sync_client.ts).
//
//   ctl[FILL]   bytes in the ring, not yet taken (the I/O thread adds, the caller subtracts)
//   ctl[STATE]  CONNECTING, OPEN, or CLOSED (connection failed or ended)
import { Worker } from 'node:worker_threads';

const FILL = 0;
const STATE = 1;
const CONNECTING = 0;
const CLOSED = 2;
/** Ring bytes: enough for a 16 MiB reply in one piece, though any size streams through. */
const RING_BYTES = (16 << 20) + (64 << 10);

// The I/O thread, as CommonJS source run with `eval` (it needs no module of the project, so it
// runs the same from the TypeScript sources and from dist/). Backpressure: when the ring is
// full the socket is paused until the caller has taken bytes.
const IO_THREAD = `
const { workerData, parentPort } = require('node:worker_threads');
const { createConnection } = require('node:net');
const ring = new Uint8Array(workerData.ring);
const ctl = new Int32Array(workerData.ctl);
const cap = ring.length;
let tail = 0;
const queue = [];
let waiting = false;
function setState(s) { Atomics.store(ctl, 1, s); Atomics.notify(ctl, 1); Atomics.notify(ctl, 0); }
function pump() {
  while (queue.length) {
    const room = cap - Atomics.load(ctl, 0);
    if (room === 0) break;
    const b = queue[0];
    const n = Math.min(room, b.length, cap - tail);
    ring.set(b.subarray(0, n), tail);
    tail = (tail + n) % cap;
    if (n === b.length) queue.shift(); else queue[0] = b.subarray(n);
    Atomics.add(ctl, 0, n);
    Atomics.notify(ctl, 0);
  }
  if (queue.length) {
    sock.pause();
    if (!waiting) {
      waiting = true;
      const w = Atomics.waitAsync(ctl, 0, cap);
      const again = () => { waiting = false; pump(); };
      if (w.async) w.value.then(again); else setImmediate(again);
    }
  } else sock.resume();
}
const sock = createConnection(workerData.path);
sock.on('connect', () => setState(1));
sock.on('data', (d) => { queue.push(d); pump(); });
sock.on('error', () => {});
sock.on('close', () => { setState(2); parentPort.close(); });
parentPort.on('message', (m) => { if (m === null) sock.end(); else sock.write(m); });
`;

/** A blocking connection to a Unix socket: `write` posts bytes, `readExact` blocks for them. */
export class SyncLink {
  private readonly ring: Uint8Array;
  private readonly ctl: Int32Array;
  private readonly worker: Worker;
  private head = 0;

  /**
   * Connects to the socket at `path`, blocking until connected.
   * @throws Error when the connection fails or takes longer than `timeoutMs`
   */
  constructor(path: string, timeoutMs = 10_000) {
    const ring = new SharedArrayBuffer(RING_BYTES);
    const ctl = new SharedArrayBuffer(8);
    this.ring = new Uint8Array(ring);
    this.ctl = new Int32Array(ctl);
    this.worker = new Worker(IO_THREAD, { eval: true, workerData: { path, ring, ctl } });
    this.worker.unref();
    const r = Atomics.wait(this.ctl, STATE, CONNECTING, timeoutMs);
    if (Atomics.load(this.ctl, STATE) !== 1) {
      void this.worker.terminate();
      throw new Error(`cannot connect to ${path}${r === 'timed-out' ? ': timed out' : ''}`);
    }
  }

  /** Whether the connection has ended (the server closed it, or it failed). */
  get closed(): boolean {
    return Atomics.load(this.ctl, STATE) === CLOSED;
  }

  /** Sends bytes (a whole frame, or several); `b` is handed over, not copied. */
  write(b: Uint8Array<ArrayBuffer>): void {
    this.worker.postMessage(b, [b.buffer]);
  }

  /**
   * Fills `dst[off, off + n)` with the next `n` bytes of the stream, blocking until they arrive.
   * @throws Error when the connection ends first
   */
  readExact(dst: Uint8Array, off: number, n: number): void {
    const cap = this.ring.length;
    while (n > 0) {
      let fill = Atomics.load(this.ctl, FILL);
      while (fill === 0) {
        if (this.closed && Atomics.load(this.ctl, FILL) === 0) throw new Error('connection to the server ended');
        Atomics.wait(this.ctl, FILL, 0, 1000);
        fill = Atomics.load(this.ctl, FILL);
      }
      const k = Math.min(fill, n, cap - this.head);
      dst.set(this.ring.subarray(this.head, this.head + k), off);
      this.head = (this.head + k) % cap;
      off += k;
      n -= k;
      Atomics.sub(this.ctl, FILL, k);
      Atomics.notify(this.ctl, FILL);
    }
  }

  /** Ends the connection (the server sees the process exit) and waits, briefly, for the close. */
  close(timeoutMs = 5000): void {
    if (!this.closed) {
      this.worker.postMessage(null);
      const t0 = Date.now();
      while (!this.closed && Date.now() - t0 < timeoutMs) Atomics.wait(this.ctl, STATE, 1, 50);
    }
    void this.worker.terminate();
  }
}
