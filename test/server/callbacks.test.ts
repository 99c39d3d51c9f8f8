// dma_unmap callbacks delivered as events: nested calls, other clients waiting, a silent client,
// a client that dies inside its callback.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../../src/server/client.js';
import { uapi } from '../../src/uapi.js';
import { testServer, type TestServer } from './helpers.js';
import { dmaMap } from '../helpers/uapi_structs.js';
import { eventually, RW, trackedAndPinned, unmapAll } from './setup.js';

// vfio_pin_pages on a device without a dma_unmap op: EINVAL, as SPEC says for pinning
const PIN_UNREGISTERED = -22;

let srv: TestServer;
beforeAll(async () => {
  srv = await testServer({
    callbackTimeoutMs: 300,
    groups: ['kind=emulated,devices=cb1', 'kind=emulated,devices=cb2', 'kind=emulated,devices=cb3', 'kind=emulated,devices=cb4'],
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
