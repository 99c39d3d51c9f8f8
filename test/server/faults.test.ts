// Clients killed while holding pins and tracking, mid-frame, and thousands of connect/work/kill
// cycles: the server keeps serving, every process exits, and the engine's memory stays flat.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../../src/server/client.js';
import { frame, Op, Writer } from '../../src/server/protocol.js';
import { testServer, type TestServer } from './helpers.js';
import { Raw } from './raw.js';
import { eventually, trackedAndPinned, unmapAll } from './setup.js';

let srv: TestServer;
const LANES = 8;
beforeAll(async () => {
  const groups = ['kind=emulated,devices=fk0'];
  for (let i = 0; i < LANES; i++) groups.push(`kind=emulated,devices=lane${i}`);
  srv = await testServer({ groups });
});
afterAll(async () => srv.stop());

const clientDir = join(new URL('.', import.meta.url).pathname, '..', '..', 'clients', 'python');
const holder = `
import sys, time
sys.path.insert(0, ${JSON.stringify(clientDir)})
import vfio_dirty as v
c = v.Client(sys.argv[1])
assert c.open('/dev/vfio/vfio') == 3 and c.open('/dev/vfio/1') == 4
assert c.ioctl(4, 0x3B68, 3) == 0 and c.ioctl(3, 0x3B66, 3) == 0
assert c.ioctl(4, 0x3B6A, 'fk0') == 5
assert c.register_dma_unmap('fk0', lambda cl, iova, size: None) == 0
mem = c.mmap(1 << 20)
import struct
assert c.ioctl(3, 0x3B71, bytearray(struct.pack('<IIQQQ', 32, 3, mem, 0, 1 << 20))) == 0
assert c.ioctl(3, 0x3B75, bytearray(struct.pack('<II', 8, 1))) == 0
assert c.pin_pages('fk0', 0x3000, 4, 3) == 4
print('ready', flush=True)
time.sleep(60)
`;

/** Processes of the model other than the observer's, and whether any group is open. */
async function quiet(obs: Client): Promise<boolean> {
  const s = (await obs.stats()) as { processes: number; groups: { open: boolean }[] };
  return s.processes === 1 && s.groups.every((g) => !g.open);
}

describe('faults', () => {
  it('a Python client SIGKILLed while holding pins and tracking exits; its group is free again', async () => {
    const py = spawn('python3', ['-c', holder, srv.path], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((res, rej) => {
      py.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && res());
      py.once('exit', () => rej(new Error('holder exited early')));
    });
    const obs = await Client.connect(srv.path);
    expect(((await obs.stats()) as { processes: number }).processes).toBe(2);
    py.kill('SIGKILL');
    await eventually(() => quiet(obs));
    const b = await Client.connect(srv.path);
    await trackedAndPinned(b, 1, 'fk0', async (inside) => {
      await inside.unpinPages('fk0', 0x3000n, 4);
    });
    expect(await unmapAll(b)).toBe(0);
    await b.end();
    await eventually(() => quiet(obs));
    await obs.end();
  });

  it('a client that dies mid-frame is dropped cleanly; others are served', async () => {
    const obs = await Client.connect(srv.path);
    const r = await Raw.connect(srv.path);
    const f = frame(Op.WRITE_MEM, 3, 0, new Writer().u64(0x10_0000_0000n).bytes(new Uint8Array(1000)).done());
    r.send(f.subarray(0, 500));
    await new Promise((res) => setTimeout(res, 20));
    r.destroy();
    await eventually(() => quiet(obs));
    expect(await obs.open('/dev/vfio/vfio')).toBe(3);
    await obs.end();
  });

  it('connect/work/kill cycles leave the engine\'s memory and process count flat', async () => {
    const CYCLES = 10_000;
    const WARM = 200;
    const obs = await Client.connect(srv.path);
    const cycle = async (lane: number) => {
      const c = await Client.connect(srv.path);
      await trackedAndPinned(c, lane + 2, `lane${lane}`, () => {});
      c.destroy();
      await new Promise<void>((res) => setImmediate(res));
    };
    const run = async (n: number) => {
      await Promise.all(Array.from({ length: LANES }, async (_, lane) => {
        for (let i = lane; i < n; i += LANES) {
          await cycle(lane);
          // the next cycle on this lane waits until the group is free again
          for (let t = 0; t < 1000; t++) {
            const s = (await obs.stats()) as { groups: { id: number; open: boolean }[] };
            if (!s.groups.find((g) => g.id === lane + 2)!.open) break;
          }
        }
      }));
      await eventually(() => quiet(obs));
      return ((await obs.stats()) as { heapUsed: number }).heapUsed;
    };
    const t0 = Date.now();
    const warm = await run(WARM);
    const after = await run(CYCLES - WARM);
    console.log(`${CYCLES} cycles in ${Date.now() - t0} ms; heap ${warm} -> ${after}`);
    expect(after).toBe(warm);
    await obs.end();
  }, 120_000);
});
