// Fail-the-Nth-allocation sweeps over the allocating requests of the other subsystems, run on the
// server's request table in this thread (a Host without its worker): for n = 1, 2, … the nth core
// allocation fails; the reply must be -ENOMEM (an errno, not a refused request) with the state
// unchanged and nothing leaked, until n is past the request's last allocation and it succeeds.
import { MessageChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { createEngine, type Engine } from '../../src/index.js';
import { Host, type ToMain } from '../../src/server/host.js';
import { concat, frame, MAGIC, Op, PROTOCOL_VERSION, readHeader, Writer } from '../../src/server/protocol.js';
import { uapi } from '../../src/uapi.js';
import { dmaMap } from '../helpers/uapi_structs.js';
import { region } from '../kvm/setup.js';

const ENOMEM = -12n;
const MEM = 0x10_0000_0000n;

/** A host and one connection; `call` runs one request and returns its result and data. */
async function harness(): Promise<{ engine: Engine; call(op: number, payload?: Uint8Array): [bigint, Uint8Array] }> {
  const engine = await createEngine();
  const out: Uint8Array[] = [];
  const post = (m: ToMain) => void (m.t === 'out' && out.push(m.data));
  const host = new Host(engine, { shmDir: '/nonexistent', shmMax: 0, callbackTimeoutMs: 10 }, post,
    new MessageChannel().port2, new Int32Array(new SharedArrayBuffer(4)));
  host.open(1);
  const call = (op: number, payload: Uint8Array = new Uint8Array(0)): [bigint, Uint8Array] => {
    host.frames(1, frame(op, 1, 0, payload));
    host.flush();
    const f = concat(out.splice(0));
    expect(readHeader(f).op).toBe(op | 0x8000);
    const v = new DataView(f.buffer);
    return [v.getBigInt64(16, true), f.subarray(24)];
  };
  const hello = new Writer().u32(MAGIC).u32(PROTOCOL_VERSION).u32(PROTOCOL_VERSION).u32(0).u64((1n << 64n) - 1n).u64(0n);
  expect(call(Op.HELLO, hello.done())[0]).toBe(1n);
  return { engine, call };
}

type Call = (op: number, payload?: Uint8Array) => [bigint, Uint8Array];
const ioctl = (fd: number, req: number, kind: number, arg: Uint8Array = new Uint8Array(0)) =>
  new Writer().u32(fd).u32(req).u32(kind).u32(0).bytes(arg).done();
const value = (v: number | bigint) => new Writer().u64(BigInt(v)).done();

interface Sweep {
  setup(call: Call): void;
  op(call: Call): bigint;
  /** What the request could change, as plain data (through requests of the same connection). */
  observe(call: Call, engine: Engine): unknown;
  /** Process frames reserved by a batch before it failed may stay (zero-filled memory). */
  framesMayStay?: boolean;
}

async function sweep(w: Sweep): Promise<number> {
  for (let n = 1; n < 64; n++) {
    const { engine, call } = await harness();
    w.setup(call);
    const before = w.observe(call, engine);
    const live = engine.core.x.heap_live();
    engine.failNthAllocation(n);
    const r = w.op(call);
    engine.failNthAllocation(0);
    if (r === ENOMEM) {
      expect(w.observe(call, engine), `n=${n}`).toEqual(before);
      if (!w.framesMayStay) expect(engine.core.x.heap_live(), `n=${n}`).toBe(live);
      continue;
    }
    expect(r, `n=${n}`).toBeGreaterThanOrEqual(0n);
    return n - 1;
  }
  throw new Error('the request never succeeded');
}

const ok = (r: [bigint, Uint8Array], what: string) => {
  if (r[0] < 0n) throw new Error(`${what}: ${r[0]}`);
};
const read = (call: Call, at: bigint, n: number) => call(Op.READ_MEM, new Writer().u64(at).u32(n).done());

describe('fail-the-Nth through the request table', () => {
  it('VCPU_WRITE_MANY onto three unbacked pages of a logged slot', async () => {
    const gpas = [0x100000n, 0x105000n, 0x10f000n];
    const n = await sweep({
      setup(call) {
        ok(call(Op.OPEN, new TextEncoder().encode('/dev/kvm')), 'kvm');
        ok(call(Op.IOCTL, ioctl(3, uapi.KVM_CREATE_VM, 1, value(0))), 'vm');
        ok(call(Op.MMAP, value(0x10000)), 'mmap');
        ok(call(Op.IOCTL, ioctl(4, uapi.KVM_SET_USER_MEMORY_REGION, 2, region(0, 1, 0x100000n, 0x10000n, MEM))), 'slot');
        ok(call(Op.IOCTL, ioctl(4, uapi.KVM_CREATE_VCPU, 1, value(0))), 'vcpu');
      },
      op(call) {
        const w = new Writer().u32(5).u32(0).u32(3).u32(8);
        for (const g of gpas) w.u64(g);
        return call(Op.VCPU_WRITE_MANY, w.bytes(new Uint8Array(24).fill(7)).done())[0];
      },
      observe: (call) => gpas.map((g) => [...read(call, MEM + g - 0x100000n, 8)[1]]),
      framesMayStay: true,
    });
    expect(n).toBeGreaterThan(0);
  });

  it('DEV_DMA_WRITE of a device with DMA logging started, onto unbacked pages', async () => {
    const n = await sweep({
      setup(call) {
        ok(call(Op.CREATE_GROUP, new TextEncoder().encode('kind=iommu,devices=fn0,dmaLogging=all')), 'group');
        ok(call(Op.OPEN, new TextEncoder().encode('/dev/vfio/vfio')), 'container');
        ok(call(Op.OPEN, new TextEncoder().encode('/dev/vfio/1')), 'group fd');
        ok(call(Op.IOCTL, ioctl(4, uapi.VFIO_GROUP_SET_CONTAINER, 1, value(3))), 'set container');
        ok(call(Op.IOCTL, ioctl(3, uapi.VFIO_SET_IOMMU, 1, value(uapi.VFIO_TYPE1v2_IOMMU))), 'set iommu');
        ok(call(Op.MMAP, value(0x1000)), 'ranges');
        ok(call(Op.MMAP, value(0x100000)), 'guest');
        ok(call(Op.IOCTL, ioctl(3, uapi.VFIO_IOMMU_MAP_DMA, 2, dmaMap({ flags: 3, vaddr: MEM + 0x2000n, iova: 0n, size: 0x100000n }))), 'map');
        ok(call(Op.IOCTL, ioctl(4, uapi.VFIO_GROUP_GET_DEVICE_FD, 3, new TextEncoder().encode('fn0'))), 'device');
        ok(call(Op.WRITE_MEM, new Writer().u64(MEM).u64(0n).u64(0x100000n).done()), 'range');
        const start = new Writer().u32(32).u32(0x20006).u64(0x1000n).u32(1).u32(0).u64(MEM).done();
        ok(call(Op.IOCTL, ioctl(5, uapi.VFIO_DEVICE_FEATURE, 2, start)), 'start');
      },
      op: (call) => call(Op.DEV_DMA_WRITE, new Writer().str('fn0').u64(0x3ff0n).bytes(new Uint8Array(0x2020).fill(9)).done())[0],
      observe: (call) => [...read(call, MEM + 0x2000n + 0x3ff0n, 0x2020)[1]].some((b) => b !== 0),
      framesMayStay: true,
    });
    expect(n).toBeGreaterThan(0);
  });

  it('SVA_BIND: the process\'s first PASID and its bond', async () => {
    const n = await sweep({
      setup: (call) => ok(call(Op.CREATE_ACCELERATOR, new TextEncoder().encode('name=fn')), 'accelerator'),
      op: (call) => call(Op.SVA_BIND, new Writer().str('/dev/fn-0').done())[0],
      observe: (_call, engine) => [engine.sva.pasidOf(engine.processes[0]), engine.ioasid.getAvailable()],
    });
    expect(n).toBeGreaterThan(0);
  });
});
