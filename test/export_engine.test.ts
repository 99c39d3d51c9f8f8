// Dirty reports read from real containers: readReport against the GET_BITMAP read of the same
// range, bits outside the range never reported, read-without-clear then unmap, and windows at
// window edges (their concatenation is the whole read, each window freed before the next).
import { beforeEach, describe, expect, it } from 'vitest';
import { createEngine, InvalidArgumentError, type Engine, type VfioContainer, type VfioDevice } from '../src/index.js';
import { readReport, windows, type DirtyReport } from '../src/export/index.js';

const PG = 4096n;
/** Mappings at word edges: [first page, pages]; some share a bitmap word with the next. */
const MAPS: [number, number][] = [[0, 1], [1, 63], [64, 65], [129, 65], [200, 129], [400, 7]];
const END = 407n * PG;

let engine: Engine;
let c: VfioContainer;
let dev: VfioDevice;

beforeEach(async () => {
  engine = await createEngine();
  const proc = engine.createProcess();
  const g = engine.createGroup({ kind: 'emulated', devices: ['mdev'] });
  c = engine.openContainer(proc);
  c.attach(g);
  c.setIommu('type1v2');
  c.openDevice(g);
  dev = g.devices[0];
  dev.registerDmaUnmap((iova, size) => dev.unpinPages(iova, Number(size / PG) > 512 ? 512 : Number(size / PG)));
  for (const [p, n] of MAPS) {
    const size = BigInt(n) * PG;
    c.map({ iova: BigInt(p) * PG, size, vaddr: proc.mmap(size) });
  }
  c.dirty.start();
});

/** Dirties pages by dmaRw writes (reported once) and pins (reported while pinned, once after). */
function dirty(written: number[], pinned: number[] = []): void {
  for (const p of written) expect(dev.dmaRw(BigInt(p) * PG, new Uint8Array([1]), true)).toBe(0);
  for (const p of pinned) expect(dev.pinPages(BigInt(p) * PG, 1, 3)).toBe(1);
}

function bits(r: DirtyReport): number[] {
  const b = r.bytes();
  const out: number[] = [];
  for (let i = 0; i < b.length * 8; i++) if ((b[i >> 3] >> (i & 7)) & 1) out.push(i);
  return out;
}

// Pages at word edges and mapping edges, in different mappings.
const WRITTEN = [0, 1, 63, 64, 127, 128, 129, 193, 200, 263, 264, 328, 400, 406];
const PINNED = [65, 201];

describe('readReport on a container', () => {
  it('gives what GET_BITMAP gives, and reads without clearing when asked', () => {
    dirty(WRITTEN, PINNED);
    const a = readReport(c, { iova: 0n, size: END, clear: false });
    expect(a.pages).toBe(407);
    expect(bits(a)).toEqual([...WRITTEN, ...PINNED].sort((x, y) => x - y));
    const again = readReport(c, { iova: 0n, size: END, clear: false });
    expect(again.bytes()).toEqual(a.bytes());
    const ioctl = c.dirty.read({ iova: 0n, size: END }); // GET_BITMAP semantics; clears
    expect(ioctl).toEqual(a.bytes());
    const after = readReport(c, { iova: 0n, size: END });
    expect(bits(after)).toEqual(PINNED); // still pinned: reported again
    for (const r of [a, again, after]) r.dispose();
  });

  it('never reports bits outside the range, even in a shared last word', () => {
    dirty([63, 64, 128, 129, 130]); // 63 is before the range, 129 and 130 after it
    const r = readReport(c, { iova: 64n * PG, size: 65n * PG }); // exactly the mapping [64, 128]
    expect(r.pages).toBe(65);
    expect(bits(r)).toEqual([0, 64]);
    expect(r.bytes()).toHaveLength(16);
    expect(r.runs()).toEqual([{ iova: 64n * PG, length: PG }, { iova: 128n * PG, length: PG }]);
    r.dispose();
    const rest = readReport(c, { iova: 0n, size: END });
    expect(bits(rest)).toEqual([63, 129, 130]); // untouched by the first read
    rest.dispose();
  });

  it('keeps bits for an unmap after reading without clearing (iommufd NO_CLEAR)', () => {
    dirty([200, 250, 328]);
    const r = readReport(c, { iova: 200n * PG, size: 129n * PG, clear: false });
    const u = c.unmapWithBitmap({ iova: 200n * PG, size: 129n * PG });
    expect(u.bitmap).toEqual(r.bytes());
    expect(bits(r)).toEqual([0, 50, 128]);
    r.dispose();
  });

  it.each([
    ['a range that bisects a mapping', 2n * PG, 10n * PG],
    ['an empty range', 0n, 0n],
    ['an unaligned range', 100n, PG],
    ['more than 2^31 pages', 0n, (1n << 31n) * PG + PG],
  ])('refuses %s with EINVAL and allocates nothing', (_, iova, size) => {
    const before = engine.memoryInUse();
    expect(() => readReport(c, { iova, size })).toThrow(InvalidArgumentError);
    expect(engine.memoryInUse()).toBe(before);
  });

  it('refuses a read while tracking is off', () => {
    c.dirty.stop();
    expect(() => readReport(c, { iova: 0n, size: END })).toThrow(InvalidArgumentError);
  });
});

describe('windows', () => {
  it.each([1, 63, 64, 65, 100, 407, 1000])('of %i pages cover the range, cut mappings, and match a whole read', (w) => {
    dirty(WRITTEN, PINNED);
    const whole = readReport(c, { iova: 0n, size: END, clear: false });
    const seen: number[] = [];
    const starts: bigint[] = [];
    let total = 0;
    for (const r of windows(c, { iova: 0n, size: END, windowBytes: BigInt(w) * PG, clear: false })) {
      starts.push(r.iova);
      const first = Number(r.iova / PG);
      expect(r.pages).toBe(Math.min(w, 407 - first));
      for (const b of bits(r)) seen.push(first + b);
      total += r.count;
    }
    expect(starts).toHaveLength(Math.ceil(407 / w));
    expect(seen).toEqual(bits(whole));
    expect(total).toBe(whole.count);
    whole.dispose();
  });

  it('clear what they read, and hold one window at a time', () => {
    dirty(WRITTEN, PINNED);
    const base = engine.memoryInUse();
    let peak = 0;
    let prev: DirtyReport | undefined;
    for (const r of windows(c, { iova: 0n, size: END, windowBytes: 64n * PG })) {
      if (prev) expect(() => prev!.count).toThrow('DirtyReport used after dispose()');
      peak = Math.max(peak, engine.memoryInUse() - base);
      prev = r;
    }
    expect(peak).toBeLessThanOrEqual(64 / 8 + 64); // one 8-byte-word bitmap and its header
    expect(engine.memoryInUse()).toBe(base);
    const after = readReport(c, { iova: 0n, size: END });
    expect(bits(after)).toEqual(PINNED);
    after.dispose();
  });

  it('free the current window when the consumer stops early', () => {
    dirty(WRITTEN);
    const base = engine.memoryInUse();
    for (const r of windows(c, { iova: 0n, size: END, windowBytes: 100n * PG })) {
      expect(r.count).toBeGreaterThan(0);
      break;
    }
    expect(engine.memoryInUse()).toBe(base);
  });

  it('read a mapping larger than one window, with runs across window edges', () => {
    const big = 1n << 26n; // 2^26 pages: 256 GiB at 1 TiB
    const at = 1n << 40n;
    c.map({ iova: at, size: big * PG, vaddr: c.proc.mmap(big * PG) });
    const edge = 1 << 24; // the first 64 GiB window edge inside the mapping
    expect(dev.pinPages(at + BigInt(edge - 1) * PG, 2, 3)).toBe(2);
    const found: bigint[][] = [];
    for (const r of windows(c, { iova: at, size: big * PG, windowBytes: 64n << 30n })) {
      expect(r.pages).toBe(1 << 24);
      found.push(...r.runs().map((x) => [x.iova, x.length]));
    }
    expect(found).toEqual([[at + BigInt(edge - 1) * PG, PG], [at + BigInt(edge) * PG, PG]]);
  });

  it.each([
    ['a window that is not a page multiple', 0n, END, 100n],
    ['a window over 2^31 pages', 0n, END, (1n << 31n) * PG + PG],
    ['an unaligned range', 1n, END, PG],
  ])('refuse %s with EINVAL', (_, iova, size, windowBytes) => {
    expect(() => [...windows(c, { iova, size, windowBytes })]).toThrow(InvalidArgumentError);
  });
});
