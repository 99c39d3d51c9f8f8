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

describe('the shared file', () => {
  it('is created 0600 for the connection, copies both ways, checks its bounds, and goes with it', async () => {
    const { statSync, readFileSync, writeFileSync, existsSync } = await import('node:fs');
    const c = await Client.connect(srv.path, { shmBytes: 8192 });
    expect(c.shmSize).toBe(8192n);
    expect(statSync(c.shmPath).mode & 0o777).toBe(0o600);
    const a = await c.mmap(8192);
    writeFileSync(c.shmPath, Uint8Array.from({ length: 8192 }, (_, i) => i & 0xff));
    expect(await c.shmToMem(a + 10n, 100n, 50n)).toBe(0);
    expect(await c.read(a + 10n, 3)).toEqual(Uint8Array.of(100, 101, 102));
    expect(await c.write(a, Uint8Array.of(7, 8, 9))).toBe(0);
    expect(await c.shmFromMem(a, 4096n, 3n)).toBe(0);
    expect([...readFileSync(c.shmPath).subarray(4096, 4099)]).toEqual([7, 8, 9]);
    expect(await c.shmFromMem(a, 8190n, 3n)).toBe(-22); // past the file
    expect(await c.shmFromMem(0x10n, 0n, 3n)).toBe(-14); // unmapped process memory
    const plain = await Client.connect(srv.path);
    expect(await plain.shmFromMem(0x10n, 0n, 1n)).toBe(-6); // no file asked for
    const path = c.shmPath;
    await c.end();
    await plain.end();
    for (let i = 0; i < 100 && existsSync(path); i++) await new Promise((res) => setTimeout(res, 10));
    expect(existsSync(path)).toBe(false);
  });
});

describe('host groups', () => {
  it('CREATE_GROUP makes one, REMOVE_GROUP removes it unless it is open; bad specs are EINVAL', async () => {
    const c = await Client.connect(srv.path);
    const id = await c.createGroup('kind=iommu,devices=hg0+hg1,reserved=none');
    expect(id).toBeGreaterThan(1);
    expect(await c.createGroup('kind=iommu,devices=hg1')).toBe(-17); // the name is in use
    expect(await c.createGroup('kind=vfio')).toBe(-22);
    expect(await c.createGroup('devices=x,colour=red')).toBe(-22);
    const fd = await c.open(`/dev/vfio/${id}`);
    expect(await c.removeGroup(id)).toBe(-16);
    expect(await c.close(fd)).toBe(0);
    expect(await c.removeGroup(id)).toBe(0);
    expect(await c.open(`/dev/vfio/${id}`)).toBe(-2);
    expect(await c.removeGroup(id)).toBe(-2);
    await c.end();
  });
});
