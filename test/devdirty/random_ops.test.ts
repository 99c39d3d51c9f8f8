// Seeded random operations on the engine and on the plain-TS model of the spec (test/devdirty/
// model.ts), compared call by call (ret and bitmap bytes), with the invariant as a property:
// every page a device wrote inside tracked ranges since it was last reported is in the next report
// that covers it, under device logging and under iommufd dirty tracking.
import { describe, expect, it } from 'vitest';
import { rng } from '../helpers/rng.js';
import { HwptModel, TrackerModel, bytesFor, type R } from './model.js';
import { P, setupF, setupL, userBuffer } from './helpers.js';

const bit = (b: Uint8Array, k: bigint): boolean => ((b[Number(k >> 3n)] ?? 0) >> Number(k & 7n) & 1) === 1;

describe('random operations against the model', () => {
  it.each([1, 2, 3, 4, 5, 6])('device logging, seed %i', async (seed) => {
    const r = rng(seed * 7919);
    const s = await setupL();
    const m = new TrackerModel();
    const truth = new Set<bigint>(); // pages written inside tracked ranges, not yet reported
    let T = 0x1000n;
    for (let step = 0; step < 300; step++) {
      const op = r(10);
      if (op === 0) {
        const n = 1 + r(3);
        const ps = [0x1000n, 0x2000n, 0x200000n][r(3)];
        const ranges: R[] = [];
        for (let i = 0; i < n; i++) {
          const start = P(r(16) * 0x100) / ps * ps;
          const len = BigInt(1 + r(ps === 0x200000n ? 3 : 64)) * ps;
          if (ranges.some(([a, b]) => a <= start + len - 1n && b >= start)) continue;
          ranges.push([start, start + len - 1n]);
        }
        const want = m.log ? -22 : 0;
        const got = s.START(ps, ranges.map(([a, b]) => [a, b - a + 1n])).ret;
        expect(got).toBe(want);
        if (want === 0) {
          m.start(ranges, ps);
          T = ps;
          truth.clear();
        }
      } else if (op === 1) {
        expect(s.FEAT(0x00020007, 8)).toBe(0);
        m.stop();
        truth.clear();
      } else if (op <= 6) {
        const lg = m.log;
        const aim = lg && r(3) !== 0 ? lg.ranges[r(lg.ranges.length)] : null;
        const at = aim ? aim[0] - 0x800n + BigInt(r(Number(aim[1] - aim[0]) + 0x1000)) : BigInt(r(0x1100000));
        const a = at < 0n ? 0n : at;
        const n = 1 + r(r(8) === 0 ? 0x3000 : 16);
        const last = a + BigInt(n) - 1n;
        const want = last >= 0x1000000n ? -14 : 0;
        expect(s.W(a, n)).toBe(want);
        if (want === 0) {
          m.write(a, last);
          for (const [x, y] of m.log?.ranges ?? []) {
            for (let pg = (a > x ? a : x) >> 12n; pg <= (last < y ? last : y) >> 12n; pg++) truth.add(pg);
          }
        }
      } else {
        const p = [0x1000n, 0x2000n, 0x10000n][r(3)];
        const lg = m.log;
        const aim = lg && r(3) !== 0 ? lg.ranges[r(lg.ranges.length)] : null;
        const at = aim ? aim[0] - 0x4000n + BigInt(r(0x8000)) : BigInt(r(0x1000000));
        const iova = (at < 0n ? 0n : at) & ~(r(2) ? 0xfffn : 0n);
        const length = BigInt(1 + r(r(2) ? 0x400000 : 0x40000));
        const nb = bytesFor(length, p);
        // any alignment of the user bitmap, so words straddle frames
        const data = userBuffer(s.proc, nb + 4096) + BigInt(r(2) ? r(4096) : 0);
        const got = s.REP(iova, length, p, nb, { data });
        const want = m.report(iova, length, p);
        if (typeof want === 'number') {
          expect(got.ret).toBe(want);
          continue;
        }
        expect(got.ret).toBe(0);
        expect(got.hex).toBe(Array.from(want, (x) => x.toString(16).padStart(2, '0')).join(' '));
        const last = iova + length - 1n;
        for (const pg of [...truth]) {
          const lo = pg << 12n;
          const hi = lo + 0xfffn;
          if (hi < iova || lo > last) continue;
          // the invariant: a written page inside the report has its bit
          expect(bit(got.bytes, ((lo > iova ? lo : iova) - iova) / p)).toBe(true);
          const u = (lo / T) * T;
          if (u >= iova && u + T - 1n <= last) truth.delete(pg);
        }
      }
    }
  });

  it.each([1, 2, 3, 4, 5, 6])('iommufd dirty tracking, seed %i', async (seed) => {
    const r = rng(seed * 104729);
    const s = await setupF({ map: false });
    const m = new HwptModel();
    const truth = new Set<bigint>();
    const W0 = 0x100000n;
    const V = s.proc.mmap(P(0x100));
    for (let step = 0; step < 300; step++) {
      const op = r(12);
      if (op <= 1) {
        const iova = W0 + P(r(0x40));
        const len = P(1 + r(8));
        const want = m.map(iova, len);
        expect(s.fd.map(1, iova, len, V + (iova - W0)).ret).toBe(want);
      } else if (op === 2) {
        const iova = W0 + P(r(0x40));
        const len = P(1 + r(16));
        const want = m.unmap(iova, len);
        const got = s.fd.unmap(1, iova, len);
        if (typeof want === 'number') expect(got.ret).toBe(want);
        else {
          expect(got).toEqual({ ret: 0, length: want });
          for (const pg of [...truth]) if (pg >= iova >> 12n && pg <= (iova + len - 1n) >> 12n) truth.delete(pg);
        }
      } else if (op === 3) {
        const on = r(3) !== 0;
        expect(s.fd.setDirty(3, on ? 1 : 0)).toBe(0);
        if (on && !m.tracking) truth.clear();
        m.setTracking(on);
      } else if (op <= 8) {
        const a = W0 + BigInt(r(0x48000));
        const n = 1 + r(r(6) === 0 ? 0x3000 : 8);
        const want = m.write(a, a + BigInt(n) - 1n);
        expect(s.dev.dmaWrite(a, new Uint8Array(n))).toBe(want);
        if (want === 0 && m.tracking) for (let pg = a >> 12n; pg <= (a + BigInt(n) - 1n) >> 12n; pg++) truth.add(pg);
      } else {
        const p = [0x1000n, 0x2000n, 0x8000n][r(3)];
        const iova = W0 - 0x10000n + BigInt(r(0x60)) * p;
        const length = BigInt(1 + r(0x40)) * p;
        const noClear = r(3) === 0;
        const want = new Uint8Array(bytesFor(length, p));
        m.get(iova, length, p, noClear, want);
        const got = s.fd.get(3, iova, length, p, { noClear });
        expect(got.ret).toBe(0);
        expect(got.hex).toBe(Array.from(want, (x) => x.toString(16).padStart(2, '0')).join(' '));
        for (const pg of [...truth]) {
          const lo = pg << 12n;
          if (lo < iova || lo > iova + length - 1n) continue;
          expect(bit(got.bytes, (lo - iova) / p)).toBe(true);
          if (!noClear) truth.delete(pg);
        }
      }
    }
  });
});
