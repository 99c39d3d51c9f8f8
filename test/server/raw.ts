// A raw socket client for protocol tests: send any bytes, read whole frames.
import { createConnection, type Socket } from 'node:net';
import { HEADER_SIZE, MAGIC, Op, PROTOCOL_VERSION, Writer, frame, readHeader, type Header } from '../../src/server/protocol.js';

export interface RawFrame extends Header {
  ret: bigint;
  body: Uint8Array;
}

export class Raw {
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.waiters.splice(0).forEach((w) => w());
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiters.splice(0).forEach((w) => w());
    });
    socket.on('error', () => {});
  }

  static async connect(path: string, hello = true): Promise<Raw> {
    const s = createConnection(path);
    await new Promise((res, rej) => {
      s.once('connect', res);
      s.once('error', rej);
    });
    const r = new Raw(s);
    if (hello) {
      r.send(frame(Op.HELLO, 1, 0, helloPayload()));
      const f = await r.next();
      if (f.ret !== 1n) throw new Error(`hello: ${f.ret}`);
    }
    return r;
  }

  send(b: Uint8Array): void {
    this.socket.write(b);
  }

  /** The next frame, within `ms`. */
  async next(ms = 5000): Promise<RawFrame> {
    const deadline = Date.now() + ms;
    for (;;) {
      if (this.buf.length >= HEADER_SIZE) {
        const h = readHeader(this.buf);
        if (this.buf.length >= h.size) {
          const body = Uint8Array.from(this.buf.subarray(HEADER_SIZE, h.size));
          this.buf = this.buf.subarray(h.size);
          const ret = body.length >= 8 ? new DataView(body.buffer).getBigInt64(0, true) : 0n;
          return { ...h, ret, body };
        }
      }
      if (this.closed) throw new Error('closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('no frame in time');
      await new Promise<void>((res) => {
        const t = setTimeout(res, left);
        this.waiters.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
  }

  /** Sends one request and returns its reply. */
  async call(op: number, payload: Uint8Array, id = 9, ctx = 0): Promise<RawFrame> {
    this.send(frame(op, id, ctx, payload));
    return this.next();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export function helloPayload(): Uint8Array {
  return new Writer().u32(MAGIC).u32(PROTOCOL_VERSION).u32(PROTOCOL_VERSION).u32(0).u64((1n << 64n) - 1n).u64(0n).done();
}
