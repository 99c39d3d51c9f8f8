// Seeded random operation sequences for the differential and property tests. The generator runs
// each op on the reference model as it goes and reads the model's state to choose the next one,
// so that most ops succeed and land on word edges (mappings of 1, 63, 64, 65, 129 pages; ranges
// that start mid-word; pins across the 64-page boundary), with a share of deliberately invalid
// inputs (bad flags, bisections, wraps, faults, missing preconditions).
import { RefEngine } from '../reference/engine.js';
import type { RefContainer } from '../reference/container.js';
import type { RefDma } from '../reference/dma.js';
import type { RefGroup } from '../reference/group.js';
import type { RefProcess } from '../reference/process.js';
import { World, type Addr, type Bm, type Op, type Setup } from '../reference/ops.js';
import * as U from '../reference/uapi.js';

const P = (n: number | bigint): bigint => BigInt(n) * 0x1000n;
const RW = U.VFIO_DMA_MAP_FLAG_READ | U.VFIO_DMA_MAP_FLAG_WRITE;

/** A small deterministic PRNG (mulberry32). */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
}

/** The groups every sequence has, by index. */
export const GROUPS = ['ga', 'gb', 'ma', 'mb', 'mc', 'gn', 'gd'] as const;

/** A random world set-up: profile, dma_entry_limit, two processes, the group catalogue. */
export function randomSetup(rng: Rng): Setup {
  const limit = rng.pick([null, null, 300n, 2000n]);
  return {
    profile: rng.chance(0.25) ? 'linux-6.6' : 'linux-6.18',
    dmaEntryLimit: rng.chance(0.15) ? 6 : 65535,
    procs: [
      { memlockLimit: limit === null ? undefined : P(limit), capIpcLock: rng.chance(0.1) },
      {},
    ],
    groups: [
      { kind: 'iommu', devices: ['ga0'] },
      // gb0 with an 8 KiB smallest page in some runs: attaches refused and detaches re-grained under tracking
      { kind: 'iommu', devices: ['gb0'], pgsizeBitmap: rng.chance(0.3) ? 0x202000n : 0x201000n, aperture: [0n, rng.chance(0.5) ? 0xf_ffff_ffffn : 0xffff_ffff_ffffn] },
      { kind: 'emulated', devices: ['ma0'] },
      { kind: 'emulated', devices: ['mb0'] },
      { kind: 'emulated', devices: ['mc0', 'mc1'] },
      { kind: 'iommu', devices: ['gn0'], viable: false },
      { kind: 'iommu', devices: ['gd0'], reserved: [[0xfee0_0000n, 0xfeef_ffffn], [P(0x400), P(0x410) - 1n]] },
    ],
  };
}

/** Region ids made by the first ops: per process a main area, a bitmap area and a big sparse one. */
const MAIN = (p: number) => 10 * p;
const BITMAPS = (p: number) => 10 * p + 1;
const BIG = (p: number) => 10 * p + 2;
const MAIN_PAGES = 4096n;
const BITMAP_BYTES = 0x40000n;

type Live = { p: number; kind: 'container' | 'group' | 'device'; g?: number; d?: number };

/** A sequence: set-up plus ops, replayable on any engine. */
export interface Sequence {
  seed: number;
  setup: Setup;
  ops: Op[];
}

/** The seeded sequence: set-up mmaps, a typical bring-up, then `steps` random ops. */
export function generateSequence(seed: number, steps: number): Sequence {
  const rng = new Rng(seed);
  const setup = randomSetup(rng);
  const gen = new Generator(rng, setup);
  for (let p = 0; p < 2; p++) {
    gen.emit({ t: 'mmap', p, len: P(MAIN_PAGES), out: MAIN(p) });
    gen.emit({ t: 'mmap', p, len: BITMAP_BYTES, out: BITMAPS(p) });
    gen.emit({ t: 'mmap', p, len: P(1 << 20), out: BIG(p) });
  }
  const scenario = rng.pick([[2], [0], [0, 2], [0, 2, 3], [2, 3], [0, 1], [6, 2]]);
  gen.bringUp(0, scenario, rng.chance(0.1) ? 1 : 3);
  if (rng.chance(0.3)) gen.bringUp(1, [rng.pick([3, 4])], 3);
  const start = gen.ops.length;
  while (gen.ops.length < start + steps) gen.emit(gen.next());
  return { seed, setup, ops: gen.ops };
}

class Generator {
  readonly ops: Op[] = [];
  private readonly rng: Rng;
  private readonly world: World;
  private readonly setup: Setup;
  private readonly live = new Map<number, Live>();
  private nextHandle = 1;

  constructor(rng: Rng, setup: Setup) {
    this.rng = rng;
    this.setup = setup;
    this.world = new World(new RefEngine({ profile: setup.profile, dmaEntryLimit: setup.dmaEntryLimit }), setup);
  }

  /** Applies an op to the reference and keeps the generator's view of live handles. */
  emit(op: Op): void {
    const r = this.world.apply(op);
    this.ops.push(op);
    const ok = typeof r.ret === 'number' && r.ret >= 0;
    if (op.t === 'open' && ok) {
      this.live.set(op.out, { p: op.p, kind: op.path === 'container' ? 'container' : 'group', g: typeof op.path === 'number' ? op.path : undefined });
    } else if (op.t === 'deviceFd' && ok) {
      const [g, d] = this.world.deviceOf.get(op.out)!;
      this.live.set(op.out, { p: op.p, kind: 'device', g, d });
    } else if (op.t === 'close' && ok) {
      this.live.delete(op.h);
    }
  }

  private handle(): number {
    return this.nextHandle++;
  }

  /** The usual order (docs/conformance.md §2): container, groups, SET_CONTAINER, SET_IOMMU, device fds, ops. */
  bringUp(p: number, groups: number[], type: number): void {
    const ch = this.handle();
    this.emit({ t: 'open', p, path: 'container', out: ch });
    const ghs = groups.map((g) => {
      const gh = this.handle();
      this.emit({ t: 'open', p, path: g, out: gh });
      this.emit({ t: 'setContainer', p, h: gh, c: ch });
      return gh;
    });
    this.emit({ t: 'ioctl', p, h: ch, req: U.VFIO_SET_IOMMU, arg: type });
    groups.forEach((g, i) => {
      this.setup.groups[g].devices.forEach((name, d) => {
        this.emit({ t: 'register', g, d, mode: this.rng.chance(0.95) ? 'unpin' : 'ignore' });
        this.emit({ t: 'deviceFd', p, h: ghs[i], name, out: this.handle() });
      });
    });
  }

  private handles(kind: Live['kind'], p?: number): [number, Live][] {
    return [...this.live].filter(([, l]) => l.kind === kind && (p === undefined || l.p === p));
  }

  private refContainer(h: number): RefContainer | undefined {
    const l = this.live.get(h);
    if (!l) return undefined;
    const e = (this.world.procs[l.p] as unknown as RefProcess).fds.get(this.world.fd(h));
    return e?.kind === 'container' ? e.container : undefined;
  }

  /** Containers with an IOMMU driver: [handle, process, container]. */
  private active(): [number, number, RefContainer][] {
    const out: [number, number, RefContainer][] = [];
    for (const [h, l] of this.handles('container')) {
      const c = this.refContainer(h);
      if (c?.iommu) out.push([h, l.p, c]);
    }
    return out;
  }

  next(): Op {
    for (let i = 0; i < 50; i++) {
      const act = this.active();
      const r = this.rng.next();
      let op: Op | null;
      if (act.length === 0 || r < 0.06) op = this.lifecycle();
      else if (r < 0.2) op = this.misc(this.rng.pick(act));
      else if (r < 0.62) op = this.dmaOp(this.rng.pick(act));
      else op = this.deviceOp(this.rng.pick(act));
      if (op) return op;
    }
    return { t: 'ioctl', p: 0, h: -1, req: U.VFIO_GET_API_VERSION };
  }

  // ---- lifecycle: containers, groups, devices -----------------------------------------------------

  /** Half repairs (the next step of a bring-up), half disrupts (closes, detaches, bad calls). */
  private lifecycle(): Op | null {
    const rng = this.rng;
    const p = rng.chance(0.8) ? 0 : 1;
    const conts = this.handles('container', p);
    if (conts.length === 0) return { t: 'open', p, path: 'container', out: this.handle() };
    const groupFds = this.handles('group', p);
    const ref = (g: number) => this.world.groups[g] as unknown as RefGroup;
    if (rng.chance(0.5)) {
      for (const [gh, l] of groupFds) {
        if (!ref(l.g!).container) return { t: 'setContainer', p, h: gh, c: rng.chance(0.95) ? rng.pick(conts)[0] : rng.pick([-1, gh]) };
      }
      for (const [ch] of conts) {
        const c = this.refContainer(ch)!;
        if (c.groups.length && !c.iommu) {
          return { t: 'ioctl', p, h: ch, req: U.VFIO_SET_IOMMU, arg: rng.chance(0.85) ? 3 : rng.pick([1, 2, 9, 10, 6]) };
        }
      }
      for (const [gh, l] of groupFds) {
        const g = ref(l.g!);
        const closed = g.devices.filter((d) => d.openCount === 0);
        if (g.container?.iommu && closed.length) return { t: 'deviceFd', p, h: gh, name: rng.pick(closed).name, out: this.handle() };
      }
      const gi = rng.chance(0.03) ? -1 : rng.int(GROUPS.length);
      return { t: 'open', p, path: gi < 0 ? 'bogus' : gi, out: this.handle() };
    }
    const devs = this.handles('device', p);
    switch (rng.int(8)) {
      case 0:
      case 1:
        if (devs.length) return { t: 'close', p, h: rng.pick(devs)[0], unpinFirst: rng.chance(0.9) };
        return null;
      case 2:
        if (groupFds.length) return { t: 'ioctl', p, h: rng.pick(groupFds)[0], req: U.VFIO_GROUP_UNSET_CONTAINER };
        return null;
      case 3:
        if (groupFds.length) return { t: 'close', p, h: rng.pick(groupFds)[0] };
        return null;
      case 4:
        return rng.chance(0.2) ? { t: 'close', p, h: rng.pick(conts)[0] } : null;
      case 5: {
        if (!groupFds.length) return null;
        const [gh, l] = rng.pick(groupFds);
        const names = this.setup.groups[l.g!].devices;
        return { t: 'deviceFd', p, h: gh, name: rng.chance(0.2) ? 'nosuch' : rng.pick(names), out: this.handle() };
      }
      case 6:
        if (groupFds.length) return { t: 'setContainer', p, h: rng.pick(groupFds)[0], c: rng.pick(conts)[0] };
        return null;
      default: {
        const g = rng.int(GROUPS.length);
        const d = rng.int(this.setup.groups[g].devices.length);
        return { t: 'register', g, d, mode: rng.chance(0.85) ? 'unpin' : 'ignore' };
      }
    }
  }

  private misc([h, p]: [number, number, RefContainer]): Op {
    const rng = this.rng;
    switch (rng.int(6)) {
      case 0:
        return { t: 'ioctl', p, h, req: U.VFIO_CHECK_EXTENSION, arg: rng.int(12) };
      case 1:
        return { t: 'argsz', p, h, req: U.VFIO_IOMMU_GET_INFO, argsz: rng.pick([15, 16, 20, 24, 72, 88, 120, 136, 200]), len: 256 };
      case 2: {
        const gh = this.handles('group', p);
        const h2 = gh.length ? rng.pick(gh)[0] : h;
        return { t: 'argsz', p, h: h2, req: U.VFIO_GROUP_GET_STATUS, argsz: rng.pick([7, 8, 16]), len: rng.chance(0.1) ? 4 : 8 };
      }
      case 3:
        return { t: 'ioctl', p, h, req: rng.pick([U.VFIO_IOMMU_ENABLE, U.VFIO_GROUP_GET_STATUS, 0x3b99, U.VFIO_GET_API_VERSION]) };
      case 4: {
        const devs = this.handles('device', p);
        return { t: 'ioctl', p, h: devs.length ? rng.pick(devs)[0] : h, req: rng.pick([U.VFIO_DEVICE_GET_INFO + 100, 0x3b99]) };
      }
      default:
        return this.lifecycle() ?? { t: 'ioctl', p, h, req: U.VFIO_GET_API_VERSION };
    }
  }

  // ---- addresses ----------------------------------------------------------------------------------

  private pages(): bigint {
    return BigInt(this.rng.pick([1, 1, 2, 3, 8, 16, 63, 64, 65, 129, 100, 200, 640, 1, 64]));
  }

  /** A page-aligned user address for a mapping of `size` bytes in process p. */
  private vaddrFor(p: number, size: bigint, hasDomain: boolean): Addr {
    const rng = this.rng;
    if (rng.chance(hasDomain ? 0.03 : 0.06)) return { raw: 0x2000_0000_0000n };
    const inMain = size <= P(MAIN_PAGES);
    const regionPages = inMain ? MAIN_PAGES : 1n << 20n;
    const room = regionPages - size / 4096n;
    if (room < 0n) return { raw: 0x2000_0000_0000n };
    const off = rng.chance(0.03) ? room + 1n : BigInt(rng.int(Number(room) + 1));
    return { region: inMain ? MAIN(p) : BIG(p), off: P(off) };
  }

  /** A user bitmap of `need` bytes: usually fits, sometimes faults, is too small or past the top. */
  private bitmap(p: number, need: bigint, tracking: boolean): Bm {
    const rng = this.rng;
    let bsize = need === 0n ? 8n : need;
    const r = rng.next();
    if (r < 0.05) bsize -= 8n;
    else if (r < 0.15) bsize += 8n * BigInt(rng.int(3));
    let data: Addr = { region: BITMAPS(p), off: BigInt(rng.int(Number((BITMAP_BYTES - bsize) / 8n) + 1)) * 8n };
    if (bsize > BITMAP_BYTES) data = { region: BIG(p), off: 0n };
    if (rng.chance(0.03)) data = { region: BITMAPS(p), off: BITMAP_BYTES - 8n };
    if (rng.chance(0.02)) data = { raw: U.USER_TOP - 8n };
    const pgsize = rng.chance(tracking ? 0.95 : 0.9) ? 0x1000n : rng.pick([0x2000n, 0n, 0x3000n]);
    const span = Number(bsize < 0x2000n ? bsize : 0x2000n);
    return { pgsize, bsize, data, fill: rng.chance(0.2) ? 0xa5 : 0, span: span > 0 ? span : 0 };
  }

  /** A range over dmas i..j, often widened into the gaps around them; sometimes bisecting. */
  private range(dmas: RefDma[]): [bigint, bigint] {
    const rng = this.rng;
    if (dmas.length === 0 || rng.chance(0.05)) {
      const a = P(rng.int(4096));
      return [a, P(1 + rng.int(200))];
    }
    const i = rng.int(dmas.length);
    const j = Math.min(dmas.length - 1, i + (rng.chance(0.6) ? 0 : rng.int(4)));
    let start = dmas[i].iova;
    let end = dmas[j].end;
    const prevEnd = i > 0 ? dmas[i - 1].end : 0n;
    const nextStart = j + 1 < dmas.length ? dmas[j + 1].iova : end + P(200);
    if (rng.chance(0.4) && start > prevEnd) start -= P(1 + rng.int(Number((start - prevEnd) / 4096n)));
    if (rng.chance(0.3) && nextStart > end) end += P(1 + rng.int(Number((nextStart - end) / 4096n)));
    if (rng.chance(0.05) && dmas[i].size > 0x1000n) start += 0x1000n; // bisects dma i
    if (rng.chance(0.05) && dmas[j].size > 0x1000n && end > start + 0x1000n) end -= 0x1000n;
    return [start, end - start];
  }

  // ---- MAP, UNMAP, DIRTY_PAGES --------------------------------------------------------------------

  private dmaOp([h, p, c]: [number, number, RefContainer]): Op {
    const rng = this.rng;
    const r = rng.next();
    if (r < 0.38) return this.map(h, p, c);
    if (r < 0.55) return this.unmap(h, p, c);
    if (r < 0.65 || (!c.tracking && rng.chance(0.5))) {
      if (!c.tracking || rng.chance(0.05)) return { t: 'dirty', p, h, flags: U.VFIO_IOMMU_DIRTY_PAGES_FLAG_START };
      if (rng.chance(0.15)) return { t: 'dirty', p, h, flags: U.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP };
    }
    if (r < 0.68) {
      const flags = rng.pick([0, 3, 8, 5, 6]);
      return { t: 'dirty', p, h, flags, argsz: rng.pick([8, 7, 8]) };
    }
    const [iova, size] = this.range(c.dmas);
    const need = ((size / 0x1000n + 63n) / 64n) * 8n;
    return {
      t: 'dirty', p, h, flags: U.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, argsz: rng.chance(0.03) ? 47 : 48,
      iova, size, bm: this.bitmap(p, need, c.tracking),
    };
  }

  private map(h: number, p: number, c: RefContainer): Op {
    const rng = this.rng;
    const dmas = c.dmas;
    let n = this.pages();
    if (!c.hasDomain && rng.chance(0.005)) n = 1n << 20n;
    let iova: bigint;
    const r = rng.next();
    if (r < 0.3 && dmas.length) iova = rng.pick(dmas).end;
    else if (r < 0.42 && dmas.length) iova = rng.pick(dmas).iova - P(n);
    else if (r < 0.6) iova = P(64 * rng.int(64));
    else if (r < 0.8) iova = P(rng.int(4096));
    else iova = P(64 * rng.int(64) + 1 + rng.int(63));
    if (iova < 0n) iova = 0n;
    let size = P(n);
    let flags = rng.chance(0.8) ? RW : rng.chance(0.6) ? U.VFIO_DMA_MAP_FLAG_READ : U.VFIO_DMA_MAP_FLAG_WRITE;
    let vaddr = this.vaddrFor(p, size, c.hasDomain);
    let argsz: number | undefined;
    let len: number | undefined;
    switch (rng.chance(0.15) ? rng.int(12) : -1) {
      case 0: iova += 0x800n; break;
      case 1: size += 0x800n; break;
      case 2: size = 0n; break;
      case 3: if (dmas.length) iova = rng.pick(dmas).iova + P(rng.int(2)); break;
      case 4: iova = 0xfee0_0000n; break;
      case 5: iova = 0xffff_ffff_f000n; size = 0x2000n; break;
      case 6: iova = 1n << 48n; break;
      case 7: flags = rng.pick([0, 8, U.VFIO_DMA_MAP_FLAG_READ | U.VFIO_DMA_MAP_FLAG_VADDR]); break;
      case 8: if (rng.chance(0.5)) argsz = 31; else len = 16; break;
      case 9: iova = 0xffff_ffff_ffff_f000n; size = rng.chance(0.5) ? 0x2000n : 0x1000n;
        if (this.setup.profile === 'linux-6.6' && size === 0x1000n) size = 0x2000n; break;
      case 10: if (!c.hasDomain && c.tracking) { size = P(1n << 31n); vaddr = { raw: 0x2000_0000_0000n }; } break;
      case 11: vaddr = { raw: 0x7fff_ffff_0000n + 0x800n }; break;
    }
    if (rng.chance(0.04)) {
      // MAP with VADDR: restore an invalidated dma, or try one that is not invalid
      const inv = dmas.filter((d) => d.vaddrInvalid);
      const d = inv.length && rng.chance(0.8) ? rng.pick(inv) : dmas.length ? rng.pick(dmas) : null;
      if (d) return { t: 'map', p, h, flags: U.VFIO_DMA_MAP_FLAG_VADDR, iova: d.iova, size: d.size, vaddr: this.vaddrFor(p, d.size, c.hasDomain) };
    }
    if (rng.chance(0.01) && !c.hasDomain && !c.tracking) {
      return { t: 'map', p, h, flags: RW, iova: 1n << 44n, size: P(1n << 31n), vaddr: { raw: 0x2000_0000_0000n } };
    }
    return { t: 'map', p, h, flags, iova, size, vaddr, argsz, len };
  }

  private unmap(h: number, p: number, c: RefContainer): Op {
    const rng = this.rng;
    const r = rng.next();
    if (r < 0.05) return { t: 'unmap', p, h, flags: U.VFIO_DMA_UNMAP_FLAG_ALL, iova: 0n, size: rng.chance(0.9) ? 0n : 0x1000n };
    let [iova, size] = this.range(c.dmas);
    if (r < 0.13) return { t: 'unmap', p, h, flags: U.VFIO_DMA_UNMAP_FLAG_VADDR, iova, size };
    if (r < 0.15) return { t: 'unmap', p, h, flags: U.VFIO_DMA_UNMAP_FLAG_ALL | U.VFIO_DMA_UNMAP_FLAG_VADDR, iova: 0n, size: 0n };
    let flags = 0;
    switch (rng.chance(0.1) ? rng.int(6) : -1) {
      case 0: flags = rng.pick([8, 3, 5]); break;
      case 1: size = 0n; break;
      case 2: iova += 0x800n; break;
      case 3: size += 0x800n; break;
      case 4: iova = 0xffff_ffff_ffff_f000n; size = 0x2000n; break;
      case 5: if (this.setup.profile === 'linux-6.18') { iova = 0xffff_ffff_ffff_f000n; size = 0x1000n; } break;
    }
    if (c.tracking ? rng.chance(0.45) : rng.chance(0.05)) {
      const need = ((size / 0x1000n + 63n) / 64n) * 8n;
      return { t: 'unmap', p, h, flags: flags | U.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, iova, size, bm: this.bitmap(p, need, c.tracking), argsz: rng.chance(0.03) ? 47 : undefined };
    }
    return { t: 'unmap', p, h, flags, iova, size };
  }

  // ---- pin, unpin, dma_rw -------------------------------------------------------------------------

  private deviceOp([, , c]: [number, number, RefContainer]): Op | null {
    const rng = this.rng;
    const inC = (g: number) => c.groups.some((x) => x.id === this.world.groups[g].id);
    const devs = this.handles('device').filter(([, l]) => inC(l.g!)).map(([, l]) => [l.g!, l.d!] as [number, number]);
    let g: number;
    let d: number;
    const good = devs.filter(([gi, di]) => {
      const x = this.world.groups[gi] as unknown as RefGroup;
      return x.devices.length === 1 && x.devices[di].participating;
    });
    if (good.length && rng.chance(0.9)) [g, d] = rng.pick(good);
    else if (devs.length && rng.chance(0.9)) [g, d] = rng.pick(devs);
    else {
      g = rng.int(GROUPS.length);
      d = 0;
    }
    const dmas = c.dmas;
    const r = rng.next();
    if (r < 0.45) {
      let iova = P(rng.int(4096));
      let n = rng.pick([1, 1, 1, 2, 3, 64, 65, 129, 512, 513, 0, 1]);
      if (dmas.length && rng.chance(0.92)) {
        const dma = rng.pick(dmas);
        const np = Number(dma.npages);
        const off = rng.pick([0, 1, 62, 63, 64, 65, np - 1, np - 2, rng.int(np)]);
        const page = Math.max(0, Math.min(np - 1, off));
        iova = dma.iova + P(page);
        if (rng.chance(0.8) && n > 0) n = Math.max(1, Math.min(n, np - page));
      }
      if (rng.chance(0.02)) iova += 0x10n;
      if (rng.chance(0.01)) iova = 0xffff_ffff_ffff_f000n;
      const prot = rng.chance(0.6) ? U.IOMMU_READ : rng.chance(0.75) ? U.IOMMU_READ | U.IOMMU_WRITE : U.IOMMU_WRITE;
      return { t: 'pin', g, d, iova, n, prot };
    }
    if (r < 0.75) {
      const books = [...this.world.driver(g, d).books.keys()];
      let iova = books.length && rng.chance(0.85) ? rng.pick(books) : dmas.length ? rng.pick(dmas).iova : P(rng.int(4096));
      const n = rng.chance(0.9) ? 1 + rng.int(3) : rng.pick([0, 513, 64]);
      if (rng.chance(0.02)) iova += 0x10n;
      // The rules leave a range that runs past 2^64 undefined here (the kernel's u64 arithmetic wraps)
      const room = (U.TWO64 - iova) / P(1);
      return { t: 'unpin', g, d, iova, n: room < BigInt(n) ? Number(room) || 1 : n };
    }
    if (!dmas.length) return null;
    const dma = rng.pick(dmas);
    const len = rng.pick([1, 8, 0x20, 0x1000, 0x1001, 0x2000, 9000, 0]);
    let iova = dma.iova + BigInt(rng.int(Number(dma.size < 0x3000n ? dma.size : 0x3000n)));
    if (rng.chance(0.3)) iova = dma.end - BigInt(1 + rng.int(0x1800));
    if (iova < dma.iova) iova = dma.iova;
    // as for unpin: no access that runs past 2^64 (docs/conformance.md §6.6 does not say whether it wraps)
    const fit = iova + BigInt(len) > U.TWO64 ? Number(U.TWO64 - iova) : len;
    return { t: 'rw', g, d, iova, len: fit, write: rng.chance(0.6), fill: rng.int(256) };
  }
}
