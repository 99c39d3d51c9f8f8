// dma_unmap callbacks delivered as events: nested calls, other clients waiting, a silent client,
// a client that dies inside its callback. Nothing here waits on a clock: the callbacks that answer
// run on a server whose callback timeout cannot pass during a test (however loaded the machine),
// and only the silent client, which never answers, meets a short timeout on a server of its own.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../../src/server/client.js';
import { uapi } from '../../src/uapi.js';
import { testServer, type TestServer } from './helpers.js';
import { dmaMap } from '../helpers/uapi_structs.js';
import { RW, trackedAndPinned, unmapAll } from './setup.js';

// vfio_pin_pages on a device without a dma_unmap op: EINVAL (docs/conformance.md §6.1)
const PIN_UNREGISTERED = -22;

/** Longer than the test timeout: a callback that answers never meets it. */
const NEVER_MS = 10 * 60_000;

let srv: TestServer;
/** A server whose callback timeout is short, for the client that never answers. */
let quick: TestServer;
beforeAll(async () => {
  srv = await testServer({
    callbackTimeoutMs: NEVER_MS,
    groups: ['kind=emulated,devices=cb1', 'kind=emulated,devices=cb2', 'kind=emulated,devices=cb3', 'kind=emulated,devices=cb4'],
  });
  quick = await testServer({ callbackTimeoutMs: 200, groups: ['kind=emulated,devices=cb2'] });
});
afterAll(async () => {
  await srv.stop();
  await quick.stop();
});

/** Polls `f` until it holds; bounded only by the test's own timeout. */
async function until(f: () => Promise<boolean>): Promise<void> {
  while (!(await f())) await new Promise((res) => setImmediate(res));
}

describe('dma_unmap callbacks', () => {
  it('run the driver\'s nested unpin inside the callback; other clients wait until EVENT_DONE', async () => {
    const order: string[] = [];
    let bSent: () => void = () => {};
    const bWasSent = new Promise<void>((res) => (bSent = res));
    const a = await Client.connect(srv.path);
    await trackedAndPinned(a, 1, 'cb1', async (inside, iova, size) => {
      order.push(`event ${iova} ${size}`);
      await bWasSent; // B's request is on its way before the callback's nested call and its answer
      expect(await inside.unpinPages('cb1', 0x3000n, 4)).toBe(0);
      order.push('unpinned');
    });
    const b = await Client.connect(srv.path);
    expect(await b.open('/dev/vfio/vfio')).toBe(3);
    const unmapped = unmapAll(a).then((r) => order.push(`unmap ${r}`));
    await until(async () => order.length > 0);
    const bDone = b.ioctl(3, uapi.VFIO_GET_API_VERSION).then((r) => order.push(`b ${r}`));
    bSent();
    await Promise.all([unmapped, bDone]);
    // B is answered only after the callback has answered; A's and B's replies travel on two
    // sockets, so which of them this process reads first is not the server's to decide.
    expect(order.slice(0, 2)).toEqual(['event 0 1048576', 'unpinned']);
    expect(order.slice(2).sort()).toEqual(['b 0', 'unmap 0']);
    await a.end();
    await b.end();
  });

  it('a client silent past the timeout returns as if done: its pins stay and the unmap is EBUSY', async () => {
    const a = await Client.connect(quick.path);
    let events = 0;
    await trackedAndPinned(a, 1, 'cb2', () => {
      events++;
      return new Promise<void>(() => {}); // never answers
    });
    expect(await unmapAll(a)).toBe(-16);
    expect(events).toBe(1);
    expect(quick.logs.filter((l) => l.event === 'callback-timeout')).toHaveLength(1);
    expect(srv.logs.filter((l) => l.event === 'callback-timeout')).toHaveLength(0);
    a.destroy();
  });

  it('a client that dies inside its callback exits; the server serves the next one on its group', async () => {
    const a = await Client.connect(srv.path);
    await trackedAndPinned(a, 3, 'cb3', () => {
      a.destroy();
    });
    void unmapAll(a);
    const obs = await Client.connect(srv.path);
    await until(async () => (await obs.stats()).processes === 1);
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

  it('a registration ends when its connection lets go of the group: the next holder must register', async () => {
    const a = await Client.connect(srv.path);
    let aEvents = 0;
    await trackedAndPinned(a, 4, 'cb4', async (inside) => {
      aEvents++;
      await inside.unpinPages('cb4', 0x3000n, 4);
    });
    expect(await a.close(5)).toBe(0);
    expect(await a.close(4)).toBe(0);
    const b = await Client.connect(srv.path);
    expect(await b.open('/dev/vfio/vfio')).toBe(3);
    expect(await b.open('/dev/vfio/4')).toBe(4);
    expect(await b.ioctl(4, uapi.VFIO_GROUP_SET_CONTAINER, 3)).toBe(0);
    expect(await b.ioctl(3, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU)).toBe(0);
    expect(await b.ioctl(4, uapi.VFIO_GROUP_GET_DEVICE_FD, 'cb4')).toBe(5);
    const mem = await b.mmap(1 << 20);
    expect(await b.ioctl(3, uapi.VFIO_IOMMU_MAP_DMA, dmaMap({ flags: RW, vaddr: mem, iova: 0n, size: 1n << 20n }))).toBe(0);
    // B's device has no dma_unmap op of its own: pinning is refused as for any unregistered device
    expect(await b.pinPages('cb4', 0x3000n, 1, uapi.IOMMU_READ)).toBe(PIN_UNREGISTERED);
    expect(aEvents).toBe(0); // A closed its device before its group: a closed device is not notified
    await a.end();
    await b.end();
  });
});
