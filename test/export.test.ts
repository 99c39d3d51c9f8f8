// Export formats of a dirty report, at bitmap word edges, against a plain model (one byte per
// page). The reports here are built over bitmaps set directly; test/export_engine.test.ts reads
// them from containers.
import { beforeAll, describe, expect, it } from 'vitest';
import { DirtyBitmap } from '../src/core/dirty_bitmap.js';
import { InvalidArgumentError } from '../src/errors.js';
import { DirtyReport } from '../src/export/dirty_report.js';
import { Prng } from '../src/sim/prng.js';
import { Core } from '../src/wasm.js';

let core: Core;
beforeAll(async () => {
  core = await Core.create();
});

/** A seeded page set over n pages, with the word-edge pages always in it when they exist. */
function pageSet(n: number, seed: number, density = 0.3): Uint8Array {
  const m = new Uint8Array(n);
  const p = new Prng(seed);
  for (let i = 0; i < n; i++) if (p.float() < density) m[i] = 1;
  for (const e of [0, 62, 63, 64, 127, 128, n - 1]) if (e < n) m[e] = 1;
  return m;
}

function reportOf(model: Uint8Array, iova: bigint, pgsize = 4096n): DirtyReport {
  const bm = DirtyBitmap.create(core, model.length);
  const idx = [];
  for (let i = 0; i < model.length; i++) if (model[i]) idx.push(i);
  bm.setBatch(Uint32Array.from(idx));
  return new DirtyReport(bm, iova, pgsize);
}

function modelBytes(m: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(m.length / 64) * 8);
  for (let i = 0; i < m.length; i++) if (m[i]) out[i >> 3] |= 1 << (i & 7);
  return out;
}

function modelRuns(m: Uint8Array, iova: bigint, pg: bigint): { iova: bigint; length: bigint }[] {
  const out = [];
  for (let i = 0; i < m.length; ) {
    if (!m[i]) { i++; continue; }
    let j = i;
    while (j < m.length && m[j]) j++;
    out.push({ iova: iova + BigInt(i) * pg, length: BigInt(j - i) * pg });
    i = j;
  }
  return out;
}

function bitsOf(bm: DirtyBitmap): Uint8Array {
  const bytes = bm.toBytes();
  const m = new Uint8Array(bm.nbits);
  for (let i = 0; i < bm.nbits; i++) m[i] = (bytes[i >> 3] >> (i & 7)) & 1;
  return m;
}

const SIZES = [1, 7, 8, 31, 32, 63, 64, 65, 127, 129, 64 * 37 + 5];

describe.each(SIZES)('a report of %i pages', (n) => {
  const iova = 0x1_0000_0000n + 0x3000n; // not aligned to any large page: conversions realign
  it('gives kernel-layout bytes, count and merged runs', () => {
    const m = pageSet(n, n);
    const r = reportOf(m, iova);
    expect(r.pages).toBe(n);
    expect(r.size).toBe(BigInt(n) * 4096n);
    expect(r.bytes()).toEqual(modelBytes(m));
    expect(r.bytes()).toBe(r.bytes()); // one copy, kept
    expect(r.count).toBe(m.reduce((a, b) => a + b, 0));
    expect(r.runs()).toEqual(modelRuns(m, iova, 4096n));
    const c = r.compactRuns();
    expect(c.length).toBe(r.runs().length * 2);
    r.dispose();
  });

  it.each([1, 3, 64, 1000])('partitions runs into chunks of at most %i pages', (k) => {
    const m = pageSet(n, n + 1);
    const r = reportOf(m, iova);
    const chunks = r.chunks(k);
    const pages = chunks.map((c) => c.reduce((a, x) => a + Number(x.length / 4096n), 0));
    const total = m.reduce((a, b) => a + b, 0);
    expect(pages.reduce((a, b) => a + b, 0)).toBe(total);
    pages.slice(0, -1).forEach((p) => expect(p).toBe(k));
    expect(pages[pages.length - 1]).toBe(total - k * (chunks.length - 1));
    // Re-joining adjacent pieces gives back the runs.
    const joined: { iova: bigint; length: bigint }[] = [];
    for (const x of chunks.flat()) {
      const last = joined[joined.length - 1];
      if (last && last.iova + last.length === x.iova) last.length += x.length;
      else joined.push({ ...x });
    }
    expect(joined).toEqual(r.runs());
    r.dispose();
  });

  it.each([1, 4, 9])('converts to pages 2^%i times larger by OR, realigning the start', (k) => {
    const m = pageSet(n, n + 2, 0.05);
    const r = reportOf(m, iova);
    const big = 4096n << BigInt(k);
    const c = r.atPageSize(big);
    const shift = Number((iova % big) / 4096n);
    expect(c.iova).toBe(iova - (iova % big));
    expect(c.pgsize).toBe(big);
    const want = new Uint8Array(Math.ceil((shift + n) / 2 ** k));
    for (let i = 0; i < n; i++) if (m[i]) want[Math.floor((shift + i) / 2 ** k)] = 1;
    expect(bitsOf(c.bitmap)).toEqual(want);
    c.dispose();
    r.dispose();
  });

  it('merges into a caller bitmap at bit offsets across word edges', () => {
    const m = pageSet(n, n + 3);
    const r = reportOf(m, iova);
    for (const off of [0, 1, 63, 64, 65, 130]) {
      const t = DirtyBitmap.create(core, off + n + 70);
      t.set(off + n + 69); // a bit of the caller's own, kept
      r.mergeInto(t, off);
      const want = new Uint8Array(off + n + 70);
      want[off + n + 69] = 1;
      for (let i = 0; i < n; i++) if (m[i]) want[off + i] = 1;
      expect(bitsOf(t)).toEqual(want);
      t.dispose();
    }
    r.dispose();
  });

  it('merges a second source (a CPU dirty log), never past its own pages', () => {
    const m = pageSet(n, n + 4, 0.1);
    const cpu = pageSet(n + 100, n + 5, 0.1);
    const r = reportOf(m, iova);
    const bytesBefore = r.bytes();
    const log = DirtyBitmap.create(core, n + 100);
    log.setBatch(Uint32Array.from([...cpu.keys()].filter((i) => cpu[i])));
    r.mergeFrom(log, 7);
    const want = Uint8Array.from(m, (b, i) => b | (i + 7 < cpu.length ? cpu[i + 7] : 0));
    expect(bitsOf(r.bitmap)).toEqual(want);
    expect(r.count).toBe(want.reduce((a, b) => a + b, 0));
    expect(r.runs()).toEqual(modelRuns(want, iova, 4096n));
    expect(r.bytes()).toEqual(modelBytes(want));
    expect(r.bytes()).not.toBe(bytesBefore);
    log.dispose();
    r.dispose();
  });
});

describe('page-size conversion of long bitmaps', () => {
  // A peer library breaks on bitmaps longer than 256 bits: every length here is longer.
  it.each([257, 300, 1000, 4096 + 33])('replicates a %i-bit 2 MiB report into 4 KiB pages', (n) => {
    const m = pageSet(n, n, 0.2);
    const r = reportOf(m, 0x4000_0000n, 2n << 20n);
    const fine = r.atPageSize(4096);
    expect(fine.pages).toBe(n * 512);
    expect(fine.iova).toBe(0x4000_0000n);
    const want = new Uint8Array(n * 512);
    for (let i = 0; i < n; i++) if (m[i]) want.fill(1, i * 512, (i + 1) * 512);
    expect(fine.bytes()).toEqual(modelBytes(want));
    // and back: OR of replicated bits is the original
    const back = fine.atPageSize(2n << 20n);
    expect(back.bytes()).toEqual(r.bytes());
    for (const x of [fine, back, r]) x.dispose();
  });

  it('is a copy at the same page size', () => {
    const m = pageSet(300, 1);
    const r = reportOf(m, 0n);
    const same = r.atPageSize(4096n);
    expect(same.bytes()).toEqual(r.bytes());
    expect(same.bitmap).not.toBe(r.bitmap);
    same.dispose();
    r.dispose();
  });
});

describe('report errors and lifetime', () => {
  it.each([0n, 2048n, 4096n * 3n, 1n << 40n])('rejects page size %s unless a power of two >= 4 KiB', (p) => {
    const r = reportOf(pageSet(70, 1), 0n);
    if (p === 1n << 40n) {
      expect(() => r.atPageSize(p)).not.toThrow();
    } else {
      expect(() => r.atPageSize(p)).toThrow(InvalidArgumentError);
    }
    r.dispose();
  });

  it('refuses conversions past 2^31 pages and zero-page chunks', () => {
    const r = reportOf(pageSet(1 << 21, 1, 0.0001), 0n, 1n << 30n);
    expect(() => r.atPageSize(4096)).toThrow(InvalidArgumentError); // 2^21 << 18 = 2^39 bits
    expect(() => r.chunks(0)).toThrow(InvalidArgumentError);
    r.dispose();
  });

  it('frees its bitmap once and throws on use after dispose', () => {
    const before = core.heapUsed();
    const r = reportOf(pageSet(1000, 1), 0n);
    expect(core.heapUsed()).toBeGreaterThan(before);
    r.dispose();
    r.dispose();
    expect(core.heapUsed()).toBe(before);
    expect(() => r.count).toThrow('DirtyReport used after dispose()');
  });
});
