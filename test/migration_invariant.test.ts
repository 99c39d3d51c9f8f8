// Property (fast-check): in pinned scope no dirty page is ever lost. Every page written with
// dma_rw or pinned since the previous harvest of its dma (GET_BITMAP over it, or unmap with
// bitmap) is in the next harvest, and every page still pinned is in every harvest (docs/conformance.md
// §6.5, §6.6, §7.6, §7.9), across any interleaving of map / pin / unpin / dma_rw read and write /
// unmap / harvests. Over-reporting is allowed, so only the required bits are checked.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createEngine } from '../src/index.js';
import { createReferenceEngine } from './reference/engine.js';
import type { AnyDevice, AnyEngine, AnyProc } from './reference/ops.js';
import { dirtyArg, mapArg, unmapArg } from './reference/structs.js';
import * as U from './reference/uapi.js';

const PG = 0x1000n;
const SLOT_PAGES = 512n;
const SLOTS = 6;
/** Slot k holds at most one dma, starting `shift` pages into [k*512, (k+1)*512) pages. */
const slotBase = (k: number): bigint => BigInt(k) * SLOT_PAGES * PG;

type Cmd =
  | { c: 'map'; k: number; shift: number; pages: number }
  | { c: 'unmap'; k: number; bitmap: boolean }
  | { c: 'pin'; k: number; page: number; n: number; write: boolean }
  | { c: 'unpin'; k: number; page: number; n: number }
  | { c: 'rw'; k: number; off: number; len: number; write: boolean }
  | { c: 'get'; from: number; to: number };

const slot = fc.integer({ min: 0, max: SLOTS - 1 });
const page = fc.oneof(fc.constantFrom(0, 1, 62, 63, 64, 65, 127, 128), fc.integer({ min: 0, max: 220 }));
const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ c: fc.constant('map' as const), k: slot, shift: fc.constantFrom(0, 1, 5, 31, 63, 40), pages: fc.constantFrom(1, 2, 63, 64, 65, 129, 200) }) },
  { weight: 1, arbitrary: fc.record({ c: fc.constant('unmap' as const), k: slot, bitmap: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ c: fc.constant('pin' as const), k: slot, page, n: fc.constantFrom(1, 1, 2, 3, 64, 70), write: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ c: fc.constant('unpin' as const), k: slot, page, n: fc.constantFrom(1, 1, 2, 5) }) },
  { weight: 4, arbitrary: fc.record({ c: fc.constant('rw' as const), k: slot, off: fc.integer({ min: 0, max: 230 * 4096 }), len: fc.constantFrom(1, 8, 4095, 4096, 4097, 9000), write: fc.boolean() }) },
  { weight: 3, arbitrary: fc.tuple(slot, slot).map(([a, b]) => ({ c: 'get' as const, from: Math.min(a, b), to: Math.max(a, b) })) },
);

interface Dma {
  iova: bigint;
  pages: bigint;
  vaddr: bigint;
}

/** Runs the commands on one engine (setup E, tracking on) and checks every harvest. */
async function run(engine: AnyEngine, cmds: Cmd[]): Promise<void> {
  const proc: AnyProc = engine.createProcess();
  const g = engine.createGroup({ kind: 'emulated', devices: ['m0'] });
  const dev: AnyDevice = g.devices[0];
  const cfd = proc.open('/dev/vfio/vfio');
  const gfd = proc.open(`/dev/vfio/${g.id}`);
  expect(proc.ioctl(gfd, U.VFIO_GROUP_SET_CONTAINER, cfd)).toBe(0);
  expect(proc.ioctl(cfd, U.VFIO_SET_IOMMU, U.VFIO_TYPE1v2_IOMMU)).toBe(0);
  // the driver's books: pins it holds, by page iova; it unpins them when told to (dma_unmap)
  const held = new Map<bigint, number>();
  const unpin = (iova: bigint, n: number): void => {
    dev.unpinPages(iova, n);
    for (let i = 0n; i < BigInt(n); i++) {
      const c = held.get(iova + i * PG);
      if (c === undefined) continue;
      if (c > 1) held.set(iova + i * PG, c - 1);
      else held.delete(iova + i * PG);
    }
  };
  dev.registerDmaUnmap((iova, size) => {
    for (const [p, c] of [...held]) if (p >= iova && p < iova + size) for (let i = 0; i < c; i++) unpin(p, 1);
  });
  expect(proc.ioctl(gfd, U.VFIO_GROUP_GET_DEVICE_FD, 'm0')).toBeGreaterThan(0);
  expect(proc.ioctl(cfd, U.VFIO_IOMMU_DIRTY_PAGES, dirtyArg(U.VFIO_IOMMU_DIRTY_PAGES_FLAG_START))).toBe(0);

  const dmas = new Map<number, Dma>();
  /** Pages that must be in the next harvest of their dma (written or pinned since the last). */
  const pending = new Set<bigint>();
  const bitmapMem = proc.mmap(0x1000);

  /** Every page in [lo, hi) that must be reported: pending, or pinned now. */
  const required = (lo: bigint, hi: bigint): bigint[] =>
    [...new Set([...pending, ...held.keys()])].filter((p) => p >= lo && p < hi).sort((a, b) => (a < b ? -1 : 1));
  const expectReported = (bytes: Uint8Array, base: bigint, pages: bigint[], what: string): void => {
    const missing = pages.filter((p) => {
      const bit = Number((p - base) / PG);
      return (bytes[bit >> 3] & (1 << (bit & 7))) === 0;
    });
    expect(missing.map((p) => `0x${p.toString(16)}`), `${what}: dirty pages lost`).toEqual([]);
  };

  for (const x of cmds) {
    const d = 'k' in x ? dmas.get(x.k) : undefined;
    switch (x.c) {
      case 'map': {
        if (d) break;
        const iova = slotBase(x.k) + BigInt(x.shift) * PG;
        const size = BigInt(x.pages) * PG;
        const vaddr = proc.mmap(size);
        expect(proc.ioctl(cfd, U.VFIO_IOMMU_MAP_DMA, mapArg(3, vaddr, iova, size))).toBe(0);
        dmas.set(x.k, { iova, pages: BigInt(x.pages), vaddr });
        break;
      }
      case 'unmap': {
        if (!d) break;
        const size = d.pages * PG;
        const hi = d.iova + size;
        const must = required(d.iova, hi);
        const bm = x.bitmap ? { pgsize: PG, size: 0x1000n, data: bitmapMem } : undefined;
        if (bm) proc.write(bitmapMem, new Uint8Array(0x1000));
        const b = unmapArg(x.bitmap ? U.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP : 0, d.iova, size, bm);
        expect(proc.ioctl(cfd, U.VFIO_IOMMU_UNMAP_DMA, b)).toBe(0);
        if (x.bitmap) expectReported(proc.read(bitmapMem, 0x1000), d.iova, must, `unmap with bitmap of slot ${x.k}`);
        for (const p of [...pending]) if (p >= d.iova && p < hi) pending.delete(p);
        dmas.delete(x.k);
        break;
      }
      case 'pin': {
        if (!d) break;
        const iova = d.iova + BigInt(x.page) * PG;
        const ret = dev.pinPages(iova, x.n, x.write ? U.IOMMU_READ | U.IOMMU_WRITE : U.IOMMU_READ);
        if (ret > 0) {
          for (let i = 0n; i < BigInt(x.n); i++) {
            pending.add(iova + i * PG);
            held.set(iova + i * PG, (held.get(iova + i * PG) ?? 0) + 1);
          }
        }
        break;
      }
      case 'unpin':
        if (d) unpin(d.iova + BigInt(x.page) * PG, x.n);
        break;
      case 'rw': {
        if (!d) break;
        const iova = d.iova + BigInt(x.off);
        const data = new Uint8Array(x.len).fill(0x5a);
        const ret = dev.dmaRw(iova, data, x.write);
        // a write that starts inside the dma copies (and marks) up to the dma's end even when the
        // rest of the range is unmapped and the call fails (docs/conformance.md §6.6)
        const end = d.iova + d.pages * PG;
        if (x.write && iova < end && (ret === 0 || ret === -U.EINVAL)) {
          const last = (iova + BigInt(x.len) < end ? iova + BigInt(x.len) : end) - 1n;
          for (let p = iova & ~(PG - 1n); p <= last; p += PG) pending.add(p);
        }
        break;
      }
      case 'get': {
        const lo = slotBase(x.from);
        const hi = slotBase(x.to + 1);
        const must = required(lo, hi);
        proc.write(bitmapMem, new Uint8Array(0x1000));
        const b = dirtyArg(U.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, { iova: lo, size: hi - lo, pgsize: PG, bsize: 0x1000n, data: bitmapMem });
        expect(proc.ioctl(cfd, U.VFIO_IOMMU_DIRTY_PAGES, b)).toBe(0);
        expectReported(proc.read(bitmapMem, 0x1000), lo, must, `GET_BITMAP of slots ${x.from}..${x.to}`);
        for (const p of [...pending]) if (p >= lo && p < hi) pending.delete(p);
        break;
      }
    }
  }
}

describe('migration invariant: no dirty page is lost in pinned scope', () => {
  it('holds on the Wasm engine', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(cmd, { minLength: 1, maxLength: 80 }), async (cmds) => {
        await run((await createEngine()) as unknown as AnyEngine, cmds);
      }),
      { numRuns: 150, seed: 0x5eed },
    );
  });

  it('holds on the reference model', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(cmd, { minLength: 1, maxLength: 80 }), async (cmds) => {
        await run((await createReferenceEngine()) as unknown as AnyEngine, cmds);
      }),
      { numRuns: 100, seed: 0x5eed },
    );
  });

  it('can fail: an engine that drops the bits of a report is caught', async () => {
    // a mutant: GET_BITMAP succeeds but the user bitmap comes back empty
    const lossy = async (): Promise<AnyEngine> => {
      const e = (await createReferenceEngine()) as unknown as AnyEngine;
      const createProcess = e.createProcess.bind(e);
      e.createProcess = (o) => {
        const p = createProcess(o);
        const ioctl = p.ioctl.bind(p);
        p.ioctl = (fd, req, arg) => {
          const r = ioctl(fd, req, arg);
          if (req === U.VFIO_IOMMU_DIRTY_PAGES && arg instanceof Uint8Array && U.rd32(arg, 4) === 4 && r === 0) {
            p.write(U.rd64(arg, 40), new Uint8Array(Number(U.rd64(arg, 32))));
          }
          return r;
        };
        return p;
      };
      return e;
    };
    await expect(
      fc.assert(
        fc.asyncProperty(fc.array(cmd, { minLength: 1, maxLength: 80 }), async (cmds) => run(await lossy(), cmds)),
        { numRuns: 200, seed: 0x5eed },
      ),
    ).rejects.toThrow(/Property failed/);
  });
});
