// Connect, work, kill cycles against a server in its own process (so its footprint is its own):
// each cycle asks for a shared file, sets up tracking and pins, copies through the shared file,
// and is killed. After every cycle's process has exited, the server's open fds and the files of
// its shared-file directory are exactly what they were, its engine heap is the same to the byte,
// and its JavaScript heap (after a full collection) and RSS stay within a bound.
// LEAK_CYCLES=10000 runs the full count; LEAK_NODE_ARGS passes node options to the server
// (e.g. a small --max-old-space-size, to tell garbage not yet collected from a leak in RSS).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../../src/server/client.js';
import { Op, Writer } from '../../src/server/protocol.js';
import { serveChild, type ServeChild } from './serve_child.js';
import { eventually, trackedAndPinned } from './setup.js';

const LANES = 4;
const CYCLES = Number(process.env.LEAK_CYCLES ?? 1000);
let srv: ServeChild;
beforeAll(async () => {
  const groups = Array.from({ length: LANES }, (_, i) => ['--group', `kind=emulated,devices=leak${i}`]).flat();
  srv = await serveChild(groups, ['--expose-gc', ...(process.env.LEAK_NODE_ARGS ?? '').split(' ').filter(Boolean)]);
}, 30_000);
afterAll(async () => {
  expect(await srv.stop()).toBe(0);
});

interface Footprint {
  heapUsed: number;
  processes: number;
  groups: { id: number; open: boolean }[];
  server: { rss: number; jsHeapUsed: number; fds: number; shmFiles: number };
}

describe('leaks', () => {
  it('STATS reports the footprint; an unknown flag bit is EINVAL', async () => {
    const c = await Client.connect(srv.sock);
    const bad = await c.request(Op.STATS, new Writer().u32(2).done());
    expect(bad).toEqual({ ret: -22n, data: new Uint8Array(0) });
    const s = (await c.stats(true)) as unknown as Footprint;
    expect(s.server.fds).toBeGreaterThan(2);
    expect(s.server.shmFiles).toBe(0);
    expect(s.server.jsHeapUsed).toBeGreaterThan(0);
    expect(s.server.rss).toBeGreaterThan(s.server.jsHeapUsed);
    await c.end();
  });

  it(`${CYCLES} connect, work, kill cycles leave the server's fds, shared files and heaps flat`, async () => {
    const obs = await Client.connect(srv.sock);
    const stats = async (collect = false) => (await obs.stats(collect)) as unknown as Footprint;
    const cycle = async (lane: number) => {
      const c = await Client.connect(srv.sock, { shmBytes: 1 << 16 });
      const mem = await trackedAndPinned(c, lane + 1, `leak${lane}`, () => {});
      expect(await c.shmFromMem(mem, 0n, 1n << 16n)).toBe(0);
      c.destroy();
    };
    const run = async (n: number): Promise<Footprint> => {
      await Promise.all(Array.from({ length: LANES }, async (_, lane) => {
        for (let i = lane; i < n; i += LANES) {
          await cycle(lane);
          // the next cycle on this lane waits until the group is free again
          await eventually(async () => !(await stats()).groups.find((g) => g.id === lane + 1)!.open);
        }
      }));
      await eventually(async () => {
        const s = await stats();
        return s.processes === 1 && s.server.shmFiles === 0;
      });
      return stats(true);
    };
    const t0 = Date.now();
    const warm = await run(100);
    const after = await run(CYCLES);
    console.log(`${CYCLES} cycles in ${Date.now() - t0} ms; server ${JSON.stringify(warm.server)} -> ${JSON.stringify(after.server)}`);
    expect(warm.server.fds).toBeGreaterThan(0);
    expect(after.server.fds).toBe(warm.server.fds);
    expect(after.server.shmFiles).toBe(0);
    expect(after.heapUsed).toBe(warm.heapUsed);
    expect(after.server.jsHeapUsed).toBeLessThan(warm.server.jsHeapUsed + (2 << 20));
    expect(after.server.rss).toBeLessThan(warm.server.rss + (64 << 20));
    await obs.end();
  }, 300_000);
});
