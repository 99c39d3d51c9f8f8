// `simulate --server PATH`: the same run on a remote engine (a `vfio-dirty serve` child process,
// driven through the protocol) gives the same summary, heat map, exports and trace as in process,
// under every option (the passthrough device's DMA, device DMA logging, iommufd, the tracking page
// size, the accelerator); an error the server answers stops the run clearly; the server is left
// as it was found.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { parseSimulateOptions } from '../../src/cli/options.js';
import { Client } from '../../src/server/client.js';
import { RemoteEngine } from '../../src/server/remote_engine.js';
import { simulate } from '../../src/sim/simulator.js';
import { vmmProcess } from '../../src/sim/local_kvm.js';
import { createEngine } from '../../src/index.js';
import { serveChild, type ServeChild } from './serve_child.js';
import { eventually } from './setup.js';

let srv: ServeChild;
let heapAtStart = 0;
const tmp = mkdtempSync(join(tmpdir(), 'vfd-remote-sim-'));
beforeAll(async () => {
  srv = await serveChild();
  const c = await Client.connect(srv.sock);
  heapAtStart = Number((await c.stats()).heapUsed);
  await c.end();
}, 30_000);
afterAll(async () => {
  expect(await srv.stop()).toBe(0);
  rmSync(tmp, { recursive: true, force: true });
});

/** Real-time figures, which differ from run to run; peak heap is the server's engine alone. */
const REAL_TIME = new Set(['harvestMs', 'wallMs', 'totalMs', 'meanMs', 'maxMs', 'activityMs', 'peakHeapBytes']);
const figures = (json: string): string => JSON.stringify(JSON.parse(json), (k, v: unknown) => (REAL_TIME.has(k) ? undefined : v));

/** The cpuLog part of a JSON summary, as far as these tests read it. */
interface CpuLogJson {
  total: { pages: number; getCalls: number; clearCalls: number; reaped: number; resets: number; fullEvents: number };
  shadow: { trackedWrites: number; guestStores: number };
}

async function run(args: string[]): Promise<{ status: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const status = await main(['simulate', ...args], { out: { write: (s: string) => out.push(s) }, err: { write: (s: string) => err.push(s) } });
  return { status, out: out.join(''), err: err.join('') };
}

const small = ['--memory', '512MiB', '--vgpu-region', '64MiB', '--vgpu-pinned', '8MiB', '--max-rounds', '5', '--progress', 'none', '--json'];

describe('simulate --server', () => {
  it.each([
    ['the defaults, scaled down', []],
    ['a pinning passthrough device (dma_unmap events) and auto-converge', ['--passthrough', 'pinning', '--passthrough-dma-rate', '0', '--auto-converge', '--dirty-rate', '2GiB/s']],
    ['no vGPU, an unpinned passthrough device, postcopy', ['--no-vgpu', '--passthrough', 'unpinned', '--passthrough-dma-rate', '0', '--postcopy-after', '2']],
  ])('gives the figures of the in-process run: %s', async (_name, extra) => {
    const local = await run([...small, ...extra]);
    const remote = await run([...small, ...extra, '--server', srv.sock]);
    expect(local.status).toBe(0);
    expect(remote).toMatchObject({ status: 0, err: '' });
    expect(figures(remote.out)).toBe(figures(local.out));
    expect(JSON.parse(remote.out).engine.peakHeapBytes).toBeGreaterThan(0);
  }, 60_000);

  /** What a summary shows of the mechanism an option brings in, so that a row proves it ran. */
  interface Ran {
    tracking: { mode: string; pageSize: number; trackerRanges: number | null; reportedPages: number; overReported: number };
    accelerator: { jobs: number; lost: number } | null;
    roundsDetail: { truePages: number }[];
  }
  it.each([
    ['--tracking device', ['--tracking', 'device'], (r: Ran) => r.tracking.mode === 'device' && r.tracking.reportedPages > 0],
    ['--tracking device, one range, 2 MiB pages', ['--tracking', 'device', '--tracker-ranges', '1', '--tracking-page-size', '2MiB'],
      (r: Ran) => r.tracking.trackerRanges === 1 && r.tracking.pageSize === 2 << 20 && r.tracking.overReported > 0],
    ['--tracking iommufd', ['--tracking', 'iommufd'], (r: Ran) => r.tracking.mode === 'iommufd' && r.tracking.reportedPages > 0],
    ['--tracking iommufd, 64 KiB pages', ['--tracking', 'iommufd', '--tracking-page-size', '64KiB'],
      (r: Ran) => r.tracking.pageSize === 64 << 10 && r.tracking.overReported > 0],
    ['--accelerator', ['--accelerator'], (r: Ran) => r.accelerator!.jobs > 0 && r.accelerator!.lost > 0],
    ['--accelerator, mark-buffers', ['--accelerator', '--accelerator-fallback', 'mark-buffers'], (r: Ran) => r.accelerator!.jobs > 0 && r.accelerator!.lost === 0],
    ['--passthrough unpinned with its own DMA', ['--passthrough', 'unpinned'], (r: Ran) => r.roundsDetail.some((x) => x.truePages > 0)],
    ['--passthrough pinning with its own DMA', ['--passthrough', 'pinning', '--passthrough-dma-rate', '64MiB/s'], (r: Ran) => r.roundsDetail.some((x) => x.truePages > 0)],
  ])('runs %s remotely with the in-process figures', async (_name, extra, ran) => {
    const args = [...small, '--max-rounds', '4', ...extra];
    const local = await run(args);
    const remote = await run([...args, '--server', srv.sock]);
    expect(local).toMatchObject({ status: 0, err: '' });
    expect(remote).toMatchObject({ status: 0, err: '' });
    expect(figures(remote.out)).toBe(figures(local.out));
    expect(ran(JSON.parse(remote.out) as Ran)).toBe(true);
  }, 60_000);

  it('stops with the call and errno the server answered, and leaves that server clean', async () => {
    // 4 MiB of engine memory: the set-up fits, the device's DMA then runs out of it
    const tight = await serveChild(['--memory-limit', '4MiB']);
    try {
      const obs = await Client.connect(tight.sock);
      const before = await obs.stats();
      for (const extra of [['--tracking', 'iommufd'], ['--tracking', 'device'], ['--accelerator']]) {
        const r = await run([...small, ...extra, '--server', tight.sock]);
        expect(r.status).toBe(1);
        expect(r.err).toMatch(/^vfio-dirty: simulate: (passthrough dmaWrite|accel\.dmaWrite by PASID 1) \[0x[0-9a-f]+, \+0x10000\): ENOMEM\n$/);
        // the run's connections closed: no process, group, container or accelerator is left
        const after = await obs.stats();
        expect(after).toMatchObject({ processes: 1, containers: 0, groups: [], pendingEvents: 0 });
        expect(after.heapUsed).toBe(before.heapUsed);
      }
      await obs.end();
    } finally {
      expect(await tight.stop()).toBe(0);
    }
  }, 60_000);

  it.each([
    ['bitmap', ['--cpu-log', 'bitmap', '--gpu-pt-rate', '2000'], (c: CpuLogJson) => c.total.getCalls > 0 && c.total.clearCalls === 0],
    ['manual', ['--cpu-log', 'manual', '--clear-bitmap-shift', '6', '--gpu-pt-rate', '2000'], (c: CpuLogJson) => c.total.clearCalls > c.total.getCalls],
    ['ring', ['--cpu-log', 'ring', '--dirty-ring-size', '256', '--vcpus', '2', '--gpu-pt-rate', '2000'], (c: CpuLogJson) => c.total.fullEvents > 0 && c.total.resets > 0],
  ])('runs the KVM CPU log remotely with the in-process figures: --cpu-log %s', async (_mode, extra, used) => {
    const args = [...small, '--max-rounds', '3', ...extra];
    const local = await run(args);
    const remote = await run([...args, '--server', srv.sock]);
    expect(local.status).toBe(0);
    expect(remote).toMatchObject({ status: 0, err: '' });
    expect(figures(remote.out)).toBe(figures(local.out));
    const cpuLog = JSON.parse(remote.out).cpuLog as CpuLogJson;
    // the mode's own calls were made (the run exercised what it names), and the shadow saw stores
    expect(used(cpuLog)).toBe(true);
    expect(cpuLog.total.pages).toBeGreaterThan(0);
    expect(cpuLog.shadow.trackedWrites).toBeGreaterThan(0);
    expect(cpuLog.shadow.trackedWrites).toBe(cpuLog.shadow.guestStores);
  }, 60_000);

  it('exports and traces the same bytes as the in-process run', async () => {
    const dirs = ['local', 'remote'].map((d) => join(tmp, d));
    const args = (d: string) => [...small, '--passthrough', 'pinning', '--passthrough-dma-rate', '0', '--export', join(d, 'x'), '--export-format', 'all', '--trace', join(d, 't.jsonl')];
    expect((await run(args(dirs[0]))).status).toBe(0);
    expect((await run([...args(dirs[1]), '--server', srv.sock])).status).toBe(0);
    const files = readdirSync(join(dirs[0], 'x')).sort();
    expect(files.length).toBeGreaterThan(2);
    expect(readdirSync(join(dirs[1], 'x')).sort()).toEqual(files);
    for (const f of files) expect(readFileSync(join(dirs[1], 'x', f)).equals(readFileSync(join(dirs[0], 'x', f)))).toBe(true);
    expect(readFileSync(join(dirs[1], 't.jsonl'), 'utf8')).toBe(readFileSync(join(dirs[0], 't.jsonl'), 'utf8'));
  }, 60_000);

  it('reads and writes bitmaps and rings with READ_MEM / WRITE_MEM when the server refuses a shared file that large (E2BIG)', async () => {
    const tight = await serveChild(['--shm-max', '4KiB']);
    try {
      // type1; then a tracker's report bitmaps and the dirty rings, zeroed or written back in process memory
      for (const extra of [[], ['--tracking', 'iommufd', '--cpu-log', 'ring', '--dirty-ring-size', '256', '--vcpus', '2']]) {
        const { config } = parseSimulateOptions([...small, ...extra]);
        const remote = await RemoteEngine.connect(tight.sock, { shmBytes: 1 << 20 });
        let r;
        try {
          r = simulate(remote, config);
        } finally {
          remote.dispose();
        }
        const l = simulate(await createEngine(), config);
        expect(figures(JSON.stringify(r.summary))).toBe(figures(JSON.stringify(l.summary)));
        expect(r.heatmap).toEqual(l.heatmap);
      }
      // each process's HELLO asked for 1 MiB and was refused; its retry asked for none
      const hellos = () => tight.logs.filter((x) => x.event === 'hello').map((x) => x.shm);
      await eventually(async () => hellos().length === 4);
      expect(hellos()).toEqual([0, 0, 0, 0]);
    } finally {
      expect(await tight.stop()).toBe(0);
    }
  }, 60_000);

  it('fails with a clear error, without hanging, when the server dies during the run', async () => {
    const doomed = await serveChild();
    const { config } = parseSimulateOptions(small);
    const remote = await RemoteEngine.connect(doomed.sock, { shmBytes: 1 << 20 });
    try {
      expect(() => simulate(remote, config, { onHarvest: () => doomed.child.kill('SIGKILL') })).toThrow('connection to the server ended');
      remote.dispose(); // nothing left to clean: every connection is gone with the server
    } finally {
      await doomed.stop();
    }
  }, 60_000);

  it('runs a dma_unmap handler inside the unmap that caused it, and rethrows what it throws after the reply', async () => {
    const remote = await RemoteEngine.connect(srv.sock);
    try {
      const proc = remote.createProcess();
      const mem = proc.mmap(1 << 20);
      const c = remote.openContainer(proc);
      const g = remote.createGroup({ kind: 'emulated', devices: ['cb-dev'] });
      c.attach(g);
      c.setIommu('type1v2');
      expect(c.openDevice(g)).toBe(5); // 3 the container, 4 the group
      c.map({ iova: 0n, vaddr: mem, size: 1n << 19n });
      c.map({ iova: 1n << 19n, vaddr: mem + (1n << 19n), size: 1n << 19n });
      const dev = g.devices[0];
      const seen: bigint[][] = [];
      dev.registerDmaUnmap((iova, size) => {
        seen.push([iova, size]);
        dev.unpinPages(0x2000n, 2); // a call inside the callback
      });
      expect(dev.pinPages(0x2000n, 2, 3)).toBe(2);
      expect(c.unmap({ iova: 0n, size: 1n << 19n })).toBe(1n << 19n);
      expect(seen).toEqual([[0n, 1n << 19n]]);
      dev.registerDmaUnmap(() => {
        throw new Error('handler failed');
      });
      expect(dev.pinPages(0x80000n, 1, 3)).toBe(1);
      expect(() => c.unmapAll()).toThrow('handler failed');
      // the connection goes on: the pin was kept, so the mapping is still there
      dev.unpinPages(0x80000n, 1);
      expect(c.unmapAll()).toBe(1n << 19n);
    } finally {
      remote.dispose();
    }
  }, 30_000);

  it('copies process memory to and from the local core the same way in process and remotely (readInto, writeFrom)', async () => {
    const local = await createEngine();
    const remote = await RemoteEngine.connect(srv.sock, { shmBytes: 1 << 16 });
    try {
      for (const [proc, core] of [[local.createProcess(), local.core], [remote.createProcess(), remote.core]] as const) {
        const vmm = vmmProcess(proc);
        const at = proc.mmap(1 << 20);
        const buf = core.x.heap_alloc((1 << 18) + 16); // larger than the shared file: WRITE_MEM / READ_MEM pieces too
        try {
          for (const n of [4096, 1 << 18]) {
            core.u8().fill(0xa5, buf, buf + n);
            vmm.writeFrom(at + 8n, buf, n, 'store');
            core.u8().fill(0x11, buf, buf + n + 16);
            vmm.readInto(at, buf, n + 16, 'load');
            const got = core.u8().subarray(buf, buf + n + 16);
            expect([got[7], got[8], got[n + 7], got[n + 8]]).toEqual([0, 0xa5, 0xa5, 0]);
            expect(got.subarray(8, n + 8).every((x) => x === 0xa5)).toBe(true);
          }
          expect(() => vmm.readInto(at + (1n << 20n) - 8n, buf, 16, 'reading the log')).toThrow(/^reading the log/);
          expect(() => vmm.writeFrom(at + (1n << 20n) - 8n, buf, 16, 'zeroing the bitmap')).toThrow(/^zeroing the bitmap/);
        } finally {
          core.x.heap_free(buf);
        }
      }
    } finally {
      remote.dispose();
    }
  }, 30_000);

  it('leaves the server as it found it: no process, no group, the same heap', async () => {
    const c = await Client.connect(srv.sock);
    const s = await c.stats();
    await c.end();
    expect(s).toMatchObject({ sessions: 1, processes: 1, containers: 0, groups: [], pendingEvents: 0 });
    expect(s.heapUsed).toBe(heapAtStart);
  });

  it('fails with a clear error when nothing listens at PATH', async () => {
    const r = await run([...small, '--server', join(tmp, 'nobody')]);
    expect(r.status).toBe(1);
    expect(r.err).toBe(`vfio-dirty: simulate: cannot connect to ${join(tmp, 'nobody')}\n`);
  });
});
