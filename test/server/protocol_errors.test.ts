// Bad requests are answered with an errno and the connection goes on serving.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { frame, MAGIC, Op, PErr, REPLY_BIT, Writer } from '../../src/server/protocol.js';
import { uapi } from '../../src/uapi.js';
import { helloPayload, Raw } from './raw.js';
import { testServer, type TestServer } from './helpers.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await testServer({ maxFrame: 4096, groups: ['kind=emulated,devices=pe0'] });
});
afterAll(async () => srv.stop());

const version = (r: Raw) => r.call(Op.IOCTL, new Writer().u32(3).u32(uapi.VFIO_GET_API_VERSION).u32(0).u32(0).done());

async function withContainer(): Promise<Raw> {
  const r = await Raw.connect(srv.path);
  expect((await r.call(Op.OPEN, new TextEncoder().encode('/dev/vfio/vfio'))).ret).toBe(3n);
  return r;
}

describe('protocol errors', () => {
  it('a request before HELLO is EPROTO; HELLO then works', async () => {
    const r = await Raw.connect(srv.path, false);
    const f = await r.call(Op.OPEN, new TextEncoder().encode('/dev/vfio/vfio'), 5);
    expect([f.op, f.id, f.ret]).toEqual([Op.OPEN | REPLY_BIT, 5, -BigInt(PErr.EPROTO)]);
    expect((await r.call(Op.HELLO, helloPayload())).ret).toBe(1n);
    expect((await r.call(Op.HELLO, helloPayload())).ret).toBe(-BigInt(PErr.EPROTO));
    r.destroy();
  });

  it('HELLO with a bad magic is EPROTO, with no common version EPROTONOSUPPORT', async () => {
    const r = await Raw.connect(srv.path, false);
    const bad = helloPayload();
    bad[0] ^= 1;
    expect((await r.call(Op.HELLO, bad)).ret).toBe(-BigInt(PErr.EPROTO));
    const v2 = new Writer().u32(MAGIC).u32(2).u32(3).u32(0).u64(0n).u64(0n).done();
    expect((await r.call(Op.HELLO, v2)).ret).toBe(-BigInt(PErr.EPROTONOSUPPORT));
    expect((await r.call(Op.HELLO, helloPayload().subarray(0, 20))).ret).toBe(-BigInt(PErr.EBADMSG));
    r.destroy();
  });

  it('a frame smaller than its header is EBADMSG with id 0, and the next frame is served', async () => {
    const r = await withContainer();
    r.send(Uint8Array.of(8, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef));
    const f = await r.next();
    expect([f.op, f.id, f.ret]).toEqual([REPLY_BIT, 0, -BigInt(PErr.EBADMSG)]);
    expect((await version(r)).ret).toBe(0n);
    r.destroy();
  });

  it('a frame over the limit is EMSGSIZE with its id; its bytes are skipped, arriving in pieces', async () => {
    const r = await withContainer();
    const big = frame(Op.WRITE_MEM, 77, 0, new Uint8Array(10_000).fill(0x5a));
    r.send(big.subarray(0, 3000));
    const f = await r.next();
    expect([f.op, f.id, f.ret]).toEqual([Op.WRITE_MEM | REPLY_BIT, 77, -BigInt(PErr.EMSGSIZE)]);
    r.send(big.subarray(3000, 7000));
    r.send(Buffer.concat([big.subarray(7000), frame(Op.CLOSE, 78, 0, new Writer().u32(3).done())]));
    const g = await r.next();
    expect([g.id, g.ret]).toEqual([78, 0n]);
    r.destroy();
  });

  it('an unknown op is ENOSYS, flags are EINVAL, a short payload EBADMSG', async () => {
    const r = await withContainer();
    expect((await r.call(999, new Uint8Array(4))).ret).toBe(-BigInt(PErr.ENOSYS));
    const flagged = frame(Op.CLOSE, 3, 0, new Writer().u32(3).done());
    flagged[6] = 1;
    r.send(flagged);
    expect((await r.next()).ret).toBe(-BigInt(PErr.EINVAL));
    expect((await r.call(Op.CLOSE, new Uint8Array(2))).ret).toBe(-BigInt(PErr.EBADMSG));
    expect((await r.call(Op.IOCTL, new Writer().u32(3).u32(0x3b64).u32(7).u32(0).done())).ret).toBe(-BigInt(PErr.EINVAL));
    expect((await version(r)).ret).toBe(0n);
    r.destroy();
  });

  it('EVENT_DONE or a ctx with no callback waiting is ESRCH', async () => {
    const r = await withContainer();
    expect((await r.call(Op.EVENT_DONE, new Writer().i64(0n).done())).ret).toBe(-BigInt(PErr.ESRCH));
    expect((await r.call(Op.EVENT_DONE, new Writer().i64(0n).done(), 4, 1234)).ret).toBe(-BigInt(PErr.ESRCH));
    expect((await r.call(Op.CLOSE, new Writer().u32(3).done(), 5, 99)).ret).toBe(-BigInt(PErr.ESRCH));
    expect((await version(r)).ret).toBe(0n); // fd 3 still open
    r.destroy();
  });

  it("another client's fds, memory and group are out of reach", async () => {
    const a = await withContainer();
    const addr = (await a.call(Op.MMAP, new Writer().u64(4096n).done())).ret;
    expect((await a.call(Op.WRITE_MEM, new Writer().u64(addr).bytes(Uint8Array.of(1, 2, 3)).done())).ret).toBe(0n);
    expect((await a.call(Op.OPEN, new TextEncoder().encode('/dev/vfio/1'))).ret).toBe(4n);
    const b = await Raw.connect(srv.path);
    expect((await version(b)).ret).toBe(-9n);
    expect((await b.call(Op.READ_MEM, new Writer().u64(addr).u32(3).done())).ret).toBe(-14n);
    expect((await b.call(Op.OPEN, new TextEncoder().encode('/dev/vfio/1'))).ret).toBe(-16n);
    const pin = new Writer().str('pe0').u64(0n).u32(1).u32(3).u32(0).done();
    expect((await b.call(Op.DEV_PIN_PAGES, pin)).ret).toBe(-BigInt(PErr.EPERM));
    expect((await b.call(Op.DEV_REGISTER_DMA_UNMAP, new Writer().str('pe0').done())).ret).toBe(-BigInt(PErr.EPERM));
    expect((await b.call(Op.DEV_REGISTER_DMA_UNMAP, new Writer().str('nope').done())).ret).toBe(-BigInt(PErr.ENODEV));
    a.destroy();
    // once A is gone its group is free for B
    for (let i = 0; i < 50; i++) {
      const f = await b.call(Op.OPEN, new TextEncoder().encode('/dev/vfio/1'));
      if (f.ret === 3n) break;
      expect(f.ret).toBe(-16n);
      await new Promise((res) => setTimeout(res, 10));
    }
    const f = await b.call(Op.READ_MEM, new Writer().u64(addr).u32(3).done());
    expect(f.ret).toBe(-14n);
    b.destroy();
  });
});
