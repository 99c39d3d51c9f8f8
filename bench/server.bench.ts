// Benchmarks of `vfio-dirty serve`, each beside the same work done in-process, in one run:
//   - small GET_BITMAP round trips through the socket, one client pipelining 1,000 at a time
//     (target >= 100,000/s), beside the in-process ioctl;
//   - a 1 TiB harvest (GET_BITMAP of a 32 MiB bitmap, then the bitmap into the client's hands:
//     through the shared file for the server, proc.read in-process): target <= 3x in-process.
// The server runs in this process (its engine in a worker thread); the socket is in a temp dir.
// Socket timings are taken in setup (benchmark.js cases are synchronous) and reported as notes.
// With `quick`, counts and sizes are small (a smoke run) and the targets are not checked.
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEngine, type Engine } from '../src/index.js';
import type { Process } from '../src/process.js';
import { Client } from '../src/server/client.js';
import { startServer, type Server } from '../src/server/server.js';
import { uapi } from '../src/uapi.js';
import { dirtyBitmap, dirtyBitmapGet, dmaMap } from '../test/helpers/uapi_structs.js';
import type { BenchGroup } from './harness.js';

const PAGE = 4096n;
const RW = uapi.VFIO_DMA_MAP_FLAG_READ | uapi.VFIO_DMA_MAP_FLAG_WRITE;

function must(r: number | bigint, what: string): void {
  if (r < 0) throw new Error(`${what} failed: ${r}`);
}

/** The ioctl steps of a tracked mapping of `size` at IOVA 0, for either side. */
interface Side {
  ioctl(fd: number, req: number, arg?: number | Uint8Array | string): number | Promise<number>;
  mmap(len: bigint): bigint | Promise<bigint>;
}

async function tracked(s: Side, gid: number, dev: string, size: bigint): Promise<bigint> {
  must(await s.ioctl(4, uapi.VFIO_GROUP_SET_CONTAINER, 3), 'SET_CONTAINER');
  must(await s.ioctl(3, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU), 'SET_IOMMU');
  must(await s.ioctl(4, uapi.VFIO_GROUP_GET_DEVICE_FD, dev), 'GET_DEVICE_FD');
  const guest = await s.mmap(size);
  must(await s.ioctl(3, uapi.VFIO_IOMMU_MAP_DMA, dmaMap({ flags: RW, vaddr: guest, iova: 0n, size })), 'MAP');
  must(await s.ioctl(3, uapi.VFIO_IOMMU_DIRTY_PAGES, dirtyBitmap({ flags: uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START })), 'START');
  void gid;
  return s.mmap(size / PAGE / 8n);
}

function getArg(size: bigint, data: bigint): Uint8Array {
  return dirtyBitmapGet({ iova: 0n, size, bitmap: { pgsize: PAGE, size: size / PAGE / 8n, data } });
}

interface Rig {
  server: Server;
  dir: string;
  engine: Engine;
}

async function rig(devs: string[]): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), 'vfd-bench-'));
  const server = await startServer({
    listen: join(dir, 'sock'), log: () => {}, groups: devs.map((d) => `kind=emulated,devices=${d}`), shmMax: 1 << 30,
  });
  return { server, dir, engine: await createEngine() };
}

async function done(r: Rig): Promise<void> {
  await r.server.close();
  rmSync(r.dir, { recursive: true, force: true });
}

/** An in-process process with the container at fd 3, the group at 4 (as the client has them). */
function localProc(engine: Engine, dev: string): Process {
  const proc = engine.createProcess();
  const g = engine.createGroup({ kind: 'emulated', devices: [dev] });
  must(proc.open('/dev/vfio/vfio'), 'open');
  must(proc.open(`/dev/vfio/${g.id}`), 'open group');
  g.devices[0].registerDmaUnmap(() => {});
  return proc;
}

async function roundTrips(quick: boolean): Promise<BenchGroup> {
  const total = quick ? 2_000 : 200_000;
  const window = 1000;
  let rate = 0;
  let cpuUs = 0;
  let local = (): void => {};
  return {
    name: `server: small GET_BITMAP round trips, one client pipelining ${window} (${total} requests)`,
    baseline: 'in-process GET_BITMAP ioctl',
    target: '>= 100,000 round trips/s through the socket',
    async setup() {
      const r = await rig(['rt0']);
      try {
        const size = 64n * PAGE;
        const proc = localProc(r.engine, 'rt0-local');
        const lbm = await tracked({ ioctl: (f, q, a) => proc.ioctl(f, q, a), mmap: (l) => proc.mmap(l) }, 0, 'rt0-local', size);
        const larg = getArg(size, lbm);
        local = () => must(proc.ioctl(3, uapi.VFIO_IOMMU_DIRTY_PAGES, larg), 'GET_BITMAP');
        const c = await Client.connect(r.server.path);
        must(await c.open('/dev/vfio/vfio'), 'open');
        must(await c.open('/dev/vfio/1'), 'open group');
        const bm = await tracked(c, 1, 'rt0', size);
        const arg = getArg(size, bm);
        for (let i = 0; i < 2000; i++) await c.ioctl(3, uapi.VFIO_IOMMU_DIRTY_PAGES, arg.slice()); // warm
        const t0 = process.hrtime.bigint();
        const cpu0 = process.cpuUsage();
        for (let sent = 0; sent < total; sent += window) {
          const batch = [];
          for (let k = 0; k < window; k++) batch.push(c.ioctl(3, uapi.VFIO_IOMMU_DIRTY_PAGES, arg.slice()));
          for (const x of await Promise.all(batch)) must(x, 'GET_BITMAP');
        }
        rate = total / (Number(process.hrtime.bigint() - t0) / 1e9);
        const cpu = process.cpuUsage(cpu0);
        cpuUs = (cpu.user + cpu.system) / total;
        await c.end();
      } finally {
        await done(r);
      }
    },
    cases: [{ name: 'in-process GET_BITMAP ioctl', fn: () => local(), units: 1, unit: 'calls' }],
    notes: () => [
      `through the socket: ${Math.round(rate).toLocaleString('en')} round trips/s (one client, ${window} in flight)`,
      `CPU per round trip, client + server main thread + engine worker together: ${cpuUs.toFixed(1)} us`,
    ],
    check: () => quick || rate >= 100_000,
  };
}

async function harvest(quick: boolean): Promise<BenchGroup> {
  const size = quick ? 1n << 30n : 1n << 40n; // 1 TiB: a 32 MiB bitmap
  const bytes = Number(size / PAGE / 8n);
  const reps = quick ? 3 : 8;
  let serverMs = 0;
  let localMs = 0;
  let getMs = 0;
  let cpu = { server: 0, local: 0 };
  let local = (): void => {};
  return {
    name: `server: ${quick ? '1 GiB' : '1 TiB'} harvest (${bytes / 2 ** 20} MiB bitmap) through the shared file`,
    baseline: 'in-process GET_BITMAP + proc.read',
    target: '<= 3x the in-process harvest',
    async setup() {
      const r = await rig(['hv0']);
      try {
        const proc = localProc(r.engine, 'hv0-local');
        const lbm = await tracked({ ioctl: (f, q, a) => proc.ioctl(f, q, a), mmap: (l) => proc.mmap(l) }, 0, 'hv0-local', size);
        const larg = getArg(size, lbm);
        local = () => {
          must(proc.ioctl(3, uapi.VFIO_IOMMU_DIRTY_PAGES, larg), 'GET_BITMAP');
          if (proc.read(lbm, bytes).length !== bytes) throw new Error('short read');
        };
        const c = await Client.connect(r.server.path, { shmBytes: bytes });
        must(await c.open('/dev/vfio/vfio'), 'open');
        must(await c.open('/dev/vfio/1'), 'open group');
        const bm = await tracked(c, 1, 'hv0', size);
        const arg = getArg(size, bm);
        const fd = openSync(c.shmPath, 'r');
        const view = Buffer.alloc(bytes);
        const one = async () => {
          must(await c.ioctl(3, uapi.VFIO_IOMMU_DIRTY_PAGES, arg), 'GET_BITMAP');
          must(await c.shmFromMem(bm, 0n, BigInt(bytes)), 'SHM_FROM_MEM');
          if (readSync(fd, view, 0, bytes, 0) !== bytes) throw new Error('short shm read');
        };
        const getOnly = () => must(proc.ioctl(3, uapi.VFIO_IOMMU_DIRTY_PAGES, larg), 'GET_BITMAP');
        // median wall time, and mean CPU time of the process (every thread: client, server, engine)
        const time = async (f: () => unknown): Promise<[number, number]> => {
          const ts: number[] = [];
          const c0 = process.cpuUsage();
          for (let i = 0; i < reps; i++) {
            const t0 = process.hrtime.bigint();
            await f();
            ts.push(Number(process.hrtime.bigint() - t0) / 1e6);
          }
          const c = process.cpuUsage(c0);
          return [ts.sort((a, b) => a - b)[ts.length >> 1], (c.user + c.system) / 1000 / reps];
        };
        await one();
        local();
        // interleaved, so that load on the machine falls on both alike
        const s: number[][] = [[], [], [], [], [], []];
        for (let k = 0; k < 2; k++) {
          const a = await time(one);
          const b = await time(local);
          const g = await time(getOnly);
          [a[0], a[1], b[0], b[1], g[0], g[1]].forEach((x, i) => s[i].push(x));
        }
        const mean = (xs: number[]) => xs.reduce((x, y) => x + y, 0) / xs.length;
        [serverMs, localMs, getMs] = [mean(s[0]), mean(s[2]), mean(s[4])];
        cpu = { server: mean(s[1]), local: mean(s[3]) };
        closeSync(fd);
        await c.end();
      } finally {
        await done(r);
      }
    },
    cases: [{ name: 'in-process GET_BITMAP + proc.read', fn: () => local(), units: bytes, unit: 'bytes' }],
    notes: () => [
      `median of ${reps}, twice interleaved: through the server ${serverMs.toFixed(1)} ms, in-process ${localMs.toFixed(1)} ms: x${(serverMs / localMs).toFixed(2)} (ioctl + SHM_FROM_MEM + reading the file, against ioctl + proc.read)`,
      `in-process GET_BITMAP alone (the bitmap left in process memory): ${getMs.toFixed(1)} ms; the server path is x${(serverMs / getMs).toFixed(2)} of it`,
      `CPU per harvest, all threads: through the server ${cpu.server.toFixed(1)} ms, in-process ${cpu.local.toFixed(1)} ms`,
    ],
    check: () => quick || serverMs <= 3 * localMs,
  };
}

export async function groups(quick: boolean): Promise<BenchGroup[]> {
  return [await roundTrips(quick), await harvest(quick)];
}
