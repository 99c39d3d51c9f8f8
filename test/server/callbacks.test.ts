// dma_unmap callbacks delivered as events: nested calls, other clients waiting, a silent client,
// a client that dies inside its callback.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../../src/server/client.js';
import { uapi } from '../../src/uapi.js';
import { testServer, type TestServer } from './helpers.js';
import { eventually, trackedAndPinned, unmapAll } from './setup.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await testServer({
    callbackTimeoutMs: 300,
    groups: ['kind=emulated,devices=cb1', 'kind=emulated,devices=cb2', 'kind=emulated,devices=cb3'],
  });
});
afterAll(async () => srv.stop());

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

describe('dma_unmap callbacks', () => {
  it('run the driver\'s nested unpin inside the callback; other clients wait until EVENT_DONE', async () => {
    const order: string[] = [];
    const a = await Client.connect(srv.path);
    await trackedAndPinned(a, 1, 'cb1', async (inside, iova, size) => {
      order.push(`event ${iova} ${size}`);
      await sleep(100);
      expect(await inside.unpinPages('cb1', 0x3000n, 4)).toBe(0);
      order.push('unpinned');
    });
    const b = await Client.connect(srv.path);
    expect(await b.open('/dev/vfio/vfio')).toBe(3);
    const unmapped = unmapAll(a).then((r) => order.push(`unmap ${r}`));
    await eventually(async () => order.length > 0);
    await b.ioctl(3, uapi.VFIO_GET_API_VERSION).then((r) => order.push(`b ${r}`));
    await unmapped;
    expect(order).toEqual(['event 0 1048576', 'unpinned', 'unmap 0', 'b 0']);
    await a.end();
    await b.end();
  });

  it('a client silent past the timeout returns as if done: its pins stay and the unmap is EBUSY', async () => {
    const a = await Client.connect(srv.path);
    let events = 0;
    await trackedAndPinned(a, 2, 'cb2', () => {
      events++;
      return new Promise<void>(() => {}); // never answers
    });
    expect(await unmapAll(a)).toBe(-16);
    expect(events).toBe(1);
    expect(srv.logs.filter((l) => l.event === 'callback-timeout')).toHaveLength(1);
    a.destroy();
  });

  it('a client that dies inside its callback exits; the server serves the next one on its group', async () => {
    const a = await Client.connect(srv.path);
    await trackedAndPinned(a, 3, 'cb3', () => {
      a.destroy();
    });
    void unmapAll(a);
    const obs = await Client.connect(srv.path);
    await eventually(async () => (await obs.stats()).processes === 1);
    const b = await Client.connect(srv.path);
    let unpinned = 0;
    await trackedAndPinned(b, 3, 'cb3', async (inside) => {
      unpinned = await inside.unpinPages('cb3', 0x3000n, 4) + 1;
    });
    expect(await unmapAll(b)).toBe(0);
    expect(unpinned).toBe(1);
    await b.end();
    await obs.end();
  });
});
