// Guest stores through `vfio-dirty serve`, beside the same stores in process, in one run: 8-byte
// VCPU_WRITE requests pipelined 1,000 at a time, and VCPU_WRITE_MANY batches of 4,096 stores (one
// request each), into a 64 MiB dirty-logged slot whose touched pages are backed beforehand.
// Socket timings are taken in setup (benchmark.js cases are synchronous) and reported as notes
// with the CPU time they took; no target is set.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEngine } from '../src/index.js';
import type { Vcpu } from '../src/kvm/vcpu.js';
import { Client } from '../src/server/client.js';
import { startServer } from '../src/server/server.js';
import { uapi } from '../src/uapi.js';
import { region } from '../test/kvm/setup.js';
import type { BenchGroup } from './harness.js';

const SLOT = 64n << 20n;
const BATCH = 4096;

interface Side {
  open(path: string): number | Promise<number>;
  ioctl(fd: number, req: number, arg?: number | Uint8Array): number | Promise<number>;
  mmap(len: bigint): bigint | Promise<bigint>;
}

/** /dev/kvm 3, VM 4, a LOG slot of SLOT bytes at gpa 0, vCPU 5. */
async function vm(s: Side): Promise<void> {
  const must = (r: number | bigint, what: string) => {
    if (r < 0) throw new Error(`${what}: ${r}`);
  };
  must(await s.open('/dev/kvm'), 'open');
  must(await s.ioctl(3, uapi.KVM_CREATE_VM, 0), 'CREATE_VM');
  const u = await s.mmap(SLOT);
  must(await s.ioctl(4, uapi.KVM_SET_USER_MEMORY_REGION, region(0, 1, 0n, SLOT, u)), 'SLOT');
  must(await s.ioctl(4, uapi.KVM_CREATE_VCPU, 0), 'CREATE_VCPU');
}

/** gpas of `n` 8-byte stores spread over the slot's pages. */
function gpas(n: number, seed: number): BigUint64Array {
  const g = new BigUint64Array(n);
  for (let i = 0; i < n; i++) g[i] = (BigInt((i * 7919 + seed) % Number(SLOT >> 12n)) << 12n) + BigInt((i % 512) * 8);
  return g;
}

export async function groups(quick: boolean): Promise<BenchGroup[]> {
  const singles = quick ? 2_000 : 100_000;
  const batches = quick ? 4 : 200;
  let single = 0;
  let many = 0;
  let cpuSingle = 0;
  let cpuMany = 0;
  let v: Vcpu;
  const data = new Uint8Array(8).fill(0xab);
  const batchData = new Uint8Array(BATCH * 8).fill(0xcd);
  const g = gpas(BATCH, 1);
  let k = 0;
  return [{
    name: `server: guest stores through the socket (${singles} VCPU_WRITE, ${batches} x VCPU_WRITE_MANY of ${BATCH})`,
    baseline: 'in-process vcpu.write, 8 bytes',
    async setup() {
      const engine = await createEngine();
      const proc = engine.createProcess();
      await vm(proc);
      v = proc.vcpuFromFd(5) as Vcpu;
      v.writeMany(g, batchData, 8); // every page of the workload backed before anything is timed
      const dir = mkdtempSync(join(tmpdir(), 'vfd-bench-'));
      const server = await startServer({ listen: join(dir, 'sock'), log: () => {} });
      try {
        const c = await Client.connect(server.path);
        await vm(c);
        await c.vcpuWriteMany(5, g, batchData, 8);
        const at = g.subarray(0, 1000);
        const t0 = process.hrtime.bigint();
        const c0 = process.cpuUsage();
        for (let sent = 0; sent < singles; sent += 1000) {
          await Promise.all(Array.from(at, (gpa) => c.vcpuWrite(5, gpa, data)));
        }
        single = singles / (Number(process.hrtime.bigint() - t0) / 1e9);
        const c1 = process.cpuUsage(c0);
        cpuSingle = (c1.user + c1.system) / singles;
        const t1 = process.hrtime.bigint();
        const c2 = process.cpuUsage();
        for (let b = 0; b < batches; b++) await c.vcpuWriteMany(5, g, batchData, 8);
        many = (batches * BATCH) / (Number(process.hrtime.bigint() - t1) / 1e9);
        const c3 = process.cpuUsage(c2);
        cpuMany = (c3.user + c3.system) / (batches * BATCH);
        await c.end();
      } finally {
        await server.close();
        rmSync(dir, { recursive: true, force: true });
      }
    },
    cases: [
      { name: 'in-process vcpu.write, 8 bytes', fn: () => void v.write(g[k++ & (BATCH - 1)], data), units: 1, unit: 'stores' },
      { name: `in-process vcpu.writeMany, ${BATCH} x 8 bytes`, fn: () => void v.writeMany(g, batchData, 8), units: BATCH, unit: 'stores' },
    ],
    notes: () => [
      `through the socket, VCPU_WRITE pipelined 1000 deep: ${Math.round(single).toLocaleString('en')} stores/s, ${cpuSingle.toFixed(1)} us CPU per store`,
      `through the socket, VCPU_WRITE_MANY of ${BATCH}: ${Math.round(many).toLocaleString('en')} stores/s, ${cpuMany.toFixed(2)} us CPU per store`,
      'CPU: client + server main thread + engine worker of this one process',
    ],
  }];
}
