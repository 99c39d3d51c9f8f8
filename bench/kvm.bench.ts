// The KVM model's hot paths, each beside its baseline in the same run: the dirty log of a 1 TiB
// slot against the memory copy of its 32 MiB bitmap, a 64 K-entry ring harvest, guest stores
// through `vcpu.writeMany`, and the cost of write tracking on untracked stores.
import { createEngine, uapi } from '../src/index.js';
import type { Engine, Kvm, Process, Vcpu } from '../src/index.js';
import type { BenchGroup, GroupResult } from './harness.js';

const PAGE = 4096n;
const LOG = 1;

interface Rig {
  engine: Engine;
  P: Process;
  vm: number;
  kvm: Kvm;
  c0: number;
  v0: Vcpu;
}

function must(r: number | bigint, what: string): void {
  if (r < 0) throw new Error(`${what} failed: ${r}`);
}

/** A VM with vCPU 0; `ring` bytes of dirty ring (0: bitmap mode), `manual` the cap 168 value. */
async function rig(ring = 0, manual = 0): Promise<Rig> {
  const engine = await createEngine();
  const P = engine.createProcess();
  const kfd = P.open('/dev/kvm');
  const vm = P.ioctl(kfd, uapi.KVM_CREATE_VM, 0);
  const kvm = P.kvmFromFd(vm) as Kvm;
  if (manual) must(P.ioctl(vm, uapi.KVM_ENABLE_CAP, cap(168, BigInt(manual))), 'CAP 168');
  if (ring) must(P.ioctl(vm, uapi.KVM_ENABLE_CAP, cap(192, BigInt(ring))), 'CAP 192');
  const c0 = P.ioctl(vm, uapi.KVM_CREATE_VCPU, 0);
  return { engine, P, vm, kvm, c0, v0: P.vcpuFromFd(c0) as Vcpu };
}

function cap(c: number, a0: bigint): Uint8Array {
  const b = new Uint8Array(104);
  const v = new DataView(b.buffer);
  v.setUint32(0, c, true);
  v.setBigUint64(8, a0, true);
  return b;
}

function region(r: Rig, slot: number, flags: number, gpa: bigint, size: bigint, uaddr: bigint): void {
  const b = new Uint8Array(32);
  const v = new DataView(b.buffer);
  v.setUint32(0, slot, true);
  v.setUint32(4, flags, true);
  v.setBigUint64(8, gpa, true);
  v.setBigUint64(16, size, true);
  v.setBigUint64(24, uaddr, true);
  must(r.P.ioctl(r.vm, uapi.KVM_SET_USER_MEMORY_REGION, b), 'SET_USER_MEMORY_REGION');
}

/** Sets every 100th bit of a slot's bitmap in the core (1 % dirty). */
function dirtyOnePercent(r: Rig, slot: number, npages: number): number {
  const x = r.engine.core.x;
  const bm = x.kvm_slot_bitmap(r.kvm.slots.get(slot)!.handle);
  const n = Math.floor(npages / 100);
  const pages = x.heap_alloc(n * 4);
  const u32 = r.engine.core.u32();
  for (let i = 0; i < n; i++) u32[pages / 4 + i] = i * 100;
  must(x.bitmap_set_batch(bm, pages, n), 'bitmap_set_batch');
  x.heap_free(pages);
  return bm;
}

async function dirtyLog(quick: boolean): Promise<BenchGroup> {
  const size = quick ? 1n << 30n : 1n << 40n;
  const npages = Number(size / PAGE);
  const bytes = npages / 8;
  const src = Buffer.alloc(bytes, 0x5a);
  const dst = Buffer.alloc(bytes);
  let get = (): void => {};
  let getClear = (): void => {};
  let restore = (): void => {};
  let clear = (): void => {};
  let fetchRatio = Infinity;
  return {
    name: `kvm: dirty log of a ${quick ? '1 GiB' : '1 TiB'} slot, 1 % dirty`,
    baseline: 'Buffer.copy (memcpy bound)',
    target: 'GET <= 2x memcpy of the bitmap, in both modes; CLEAR <= 1.5x',
    async setup() {
      const m = await rig(0, 1); // manual protect: GET copies, CLEAR clears
      const f = await rig(0, 0); // fetch-and-clear
      for (const r of [m, f]) {
        const guest = r.P.mmap(size);
        region(r, 0, LOG, 0n, size, guest);
      }
      dirtyOnePercent(m, 0, npages);
      const bmF = dirtyOnePercent(f, 0, npages);
      // A saved copy of the 1 % bitmap, ORed back (untimed) before each timed fetch-and-clear.
      const x = f.engine.core.x;
      const saved = x.bitmap_create(npages);
      must(x.bitmap_or(saved, 0, bmF, 0, npages), 'bitmap_or');
      const user = (r: Rig): bigint => {
        const p = r.P.mmap(BigInt(bytes));
        r.P.write(p, new Uint8Array(bytes)); // frames in place, as a tool's buffer would be
        return p;
      };
      const log = (p: bigint): Uint8Array => {
        const b = new Uint8Array(16);
        new DataView(b.buffer).setBigUint64(8, p, true);
        return b;
      };
      const mArg = log(user(m));
      const fArg = log(user(f));
      const clr = new Uint8Array(24);
      const cv = new DataView(clr.buffer);
      cv.setUint32(4, npages >>> 0, true);
      const cuser = user(m);
      m.P.write(cuser, new Uint8Array(bytes).fill(0x01)); // clears bit 0 of each byte (1 in 8 is set)
      cv.setBigUint64(16, cuser, true);
      get = () => must(m.P.ioctl(m.vm, uapi.KVM_GET_DIRTY_LOG, mArg), 'GET');
      getClear = () => must(f.P.ioctl(f.vm, uapi.KVM_GET_DIRTY_LOG, fArg), 'GET');
      restore = () => void x.bitmap_or(bmF, 0, saved, 0, npages);
      clear = () => must(m.P.ioctl(m.vm, uapi.KVM_CLEAR_DIRTY_LOG, clr), 'CLEAR');
    },
    cases: [
      { name: 'Buffer.copy (memcpy bound)', fn: () => void src.copy(dst), units: bytes, unit: 'bytes' },
      { name: 'GET, manual protect', fn: () => get(), units: bytes, unit: 'bytes' },
      { name: 'CLEAR of the whole slot', fn: () => clear(), units: bytes, unit: 'bytes' },
    ],
    notes: () => {
      // benchmark.js cannot restore the 1 % between calls: time fetch-and-clear with hrtime,
      // interleaved with the copy it is compared to, and take the medians.
      const copies: number[] = [];
      const gets: number[] = [];
      const time = (fn: () => void): number => {
        const t = process.hrtime.bigint();
        fn();
        return Number(process.hrtime.bigint() - t);
      };
      for (let i = 0; i < (quick ? 3 : 15); i++) {
        restore();
        gets.push(time(getClear));
        copies.push(time(() => void src.copy(dst)));
      }
      const med = (a: number[]): number => a.sort((p, q) => p - q)[a.length >> 1];
      fetchRatio = med(gets) / med(copies);
      return [`GET fetch-and-clear at 1 %: ${(med(gets) / 1e6).toFixed(2)} ms, x${fetchRatio.toFixed(2)} Buffer.copy (${(med(copies) / 1e6).toFixed(2)} ms), medians of hrtime runs`];
    },
    check: (res: GroupResult) => res.cases[1].ratio <= 2 && res.cases[2].ratio <= 1.5 && fetchRatio <= 2,
  };
}

async function ringHarvest(quick: boolean): Promise<BenchGroup> {
  const ringBytes = quick ? 65536 : 1 << 20;
  const E = ringBytes / 16;
  const pages = E - 64; // the soft limit: one store per page fills it
  const slotPages = 1024;
  let fill = (): void => {};
  let harvest = (): number => 0;
  let harvestRate = 0;
  return {
    name: `kvm: dirty ring harvest of ${pages} entries`,
    baseline: 'fill: writeMany to clean pages',
    target: 'harvest (read entries, mark RESET, KVM_RESET_DIRTY_RINGS) >= 20 M entries/s',
    async setup() {
      const r = await rig(ringBytes);
      // Slots of 1024 pages sharing 4 MiB of host memory: many gfns, few host frames.
      const host = r.P.mmap(BigInt(slotPages) * PAGE);
      for (let s = 0; s * slotPages < pages; s++) region(r, s, LOG, BigInt(s * slotPages) * PAGE, BigInt(slotPages) * PAGE, host);
      const gpas = new BigUint64Array(pages);
      for (let i = 0; i < pages; i++) gpas[i] = BigInt(i) * PAGE;
      const data = new Uint8Array(pages);
      const R = r.P.mmapFd(r.c0, 0x40000n, ringBytes);
      let fetch = 0;
      fill = () => {
        if (r.v0.writeMany(gpas, data, 1) !== pages) throw new Error('fill stopped early');
      };
      harvest = () => {
        // The tool's side: one read of the mapped ring, flags 2 on each DIRTY entry, one write back.
        const b = r.P.read(R, ringBytes);
        const v = new DataView(b.buffer);
        let n = 0;
        for (;;) {
          const at = (fetch % E) * 16;
          if (v.getUint32(at, true) !== 1) break;
          v.setUint32(at, 2, true);
          fetch++;
          n++;
        }
        r.P.write(R, b);
        const reset = r.P.ioctl(r.vm, uapi.KVM_RESET_DIRTY_RINGS);
        if (reset !== n) throw new Error(`reset ${reset} of ${n}`);
        return n;
      };
      fill();
      harvest();
    },
    cases: [
      { name: 'fill: writeMany to clean pages', fn: () => { fill(); harvest(); }, units: pages, unit: 'entries' },
    ],
    notes: () => {
      // benchmark.js cannot refill between calls: time the harvests alone, with hrtime.
      let ns = 0n;
      let n = 0;
      for (let i = 0; i < (quick ? 3 : 20); i++) {
        fill();
        const t = process.hrtime.bigint();
        n += harvest();
        ns += process.hrtime.bigint() - t;
      }
      harvestRate = n / (Number(ns) / 1e9);
      return [`harvest alone: ${(harvestRate / 1e6).toFixed(1)} M entries/s over ${n} entries`];
    },
    check: () => harvestRate >= 20e6,
  };
}

async function guestStores(quick: boolean): Promise<BenchGroup> {
  const n = quick ? 1024 : 4096;
  const bytes = 8;
  let untracked = (): void => {};
  let tracked = (): void => {};
  let copy = (): void => {};
  return {
    name: `kvm: ${n} guest stores of ${bytes} bytes to clean pages (vcpu.writeMany)`,
    baseline: 'Uint8Array.set per store (copy bound)',
    target: '>= 5 M stores/s; write tracking elsewhere in the slot adds < 10 %',
    async setup() {
      const mk = async (track: boolean): Promise<() => void> => {
        const r = await rig();
        const size = BigInt(n) * PAGE;
        // One slot of 2n pages: the stores go to the first half; with `track`, 64 gfns of the
        // second half are write-tracked, so every store looks its page's count up.
        region(r, 0, LOG, 0n, 2n * size, r.P.mmap(2n * size));
        if (track) for (let i = 0; i < 64; i++) must(r.kvm.writeTrackAddGfn(BigInt(n + i * 7)), 'track');
        const gpas = new BigUint64Array(n);
        for (let i = 0; i < n; i++) gpas[i] = BigInt(i) * PAGE + 8n;
        const data = new Uint8Array(n * bytes).fill(3);
        const log = new Uint8Array(16);
        const dst = r.P.mmap(BigInt(n / 4));
        new DataView(log.buffer).setBigUint64(8, dst, true);
        return () => {
          if (r.v0.writeMany(gpas, data, bytes) !== n) throw new Error('stores stopped');
          r.P.ioctl(r.vm, uapi.KVM_GET_DIRTY_LOG, log); // pages clean again
        };
      };
      untracked = await mk(false);
      tracked = await mk(true);
      const mem = new Uint8Array(n * 4096);
      const src = new Uint8Array(bytes).fill(3);
      copy = () => {
        for (let i = 0; i < n; i++) mem.set(src, i * 4096 + 8);
      };
    },
    cases: [
      { name: 'Uint8Array.set per store (copy bound)', fn: () => copy(), units: n, unit: 'stores' },
      { name: 'writeMany, no write tracking', fn: () => untracked(), units: n, unit: 'stores' },
      { name: 'writeMany, tracking elsewhere', fn: () => tracked(), units: n, unit: 'stores' },
    ],
    check: (res: GroupResult) => (res.cases[1].rate ?? 0) >= 5e6 && res.cases[2].mean / res.cases[1].mean < 1.1,
  };
}

/** The KVM groups, registered with bench/run.ts like every bench module. */
export async function groups(quick: boolean): Promise<BenchGroup[]> {
  return [await dirtyLog(quick), await ringHarvest(quick), await guestStores(quick)];
}
