import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../../src/server/client.js';
import { uapi } from '../../src/uapi.js';
import { testServer, type TestServer } from './helpers.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await testServer({ groups: ['kind=iommu,devices=0000:65:00.0'] });
});
afterAll(async () => srv.stop());

describe('serve smoke', () => {
  it('opens a container and answers the API version', async () => {
    const c = await Client.connect(srv.path);
    const fd = await c.open('/dev/vfio/vfio');
    expect(fd).toBe(3);
    expect(await c.ioctl(fd, uapi.VFIO_GET_API_VERSION)).toBe(0);
    const g = await c.open('/dev/vfio/1');
    expect(g).toBe(4);
    const c2 = await Client.connect(srv.path);
    expect(await c2.open('/dev/vfio/1')).toBe(-16);
    await c.end();
    await c2.end();
  });
});
