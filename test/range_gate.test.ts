// One range gate for every dirty read: the GET_BITMAP ioctl, the typed API's dirty.read,
// readReport and windows give the same errno for the same range in both profiles, and the same
// bytes when they succeed (one gate per kind of range;
// docs/conformance.md §7.4, §7.11). Each
// surface runs on its own engine built the same way, since every read clears what it reported.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createEngine, readReport, uapi, VfioError, InvalidArgumentError, AccessError, windows, errno, type Engine, type ProfileName, type VfioContainer,
} from '../src/index.js';
import * as api from '../src/index.js';
import { dirtyBitmapGet, dmaUnmap } from './helpers/uapi_structs.js';

const TWO64 = 1n << 64n;
const U64_MAX = TWO64 - 1n;
const { EINVAL, EOVERFLOW } = errno;

/** The mappings of every setup: two low ones and one that ends exactly at 2^64. */
const MAPS: readonly [bigint, bigint][] = [
  [0x10_0000n, 0x10_0000n],
  [0x30_0000n, 0x2_0000n],
  [TWO64 - 0x10_0000n, 0x10_0000n],
];
/** Byte offsets into MAPS written by the device (dmaRw) after tracking starts: the dirty pages. */
const WRITES: readonly bigint[] = [0x10_0000n, 0x13_5000n, 0x1f_f000n, 0x31_0000n, TWO64 - 0x10_0000n, TWO64 - 0x1000n];

interface Built {
  engine: Engine;
  c: VfioContainer;
  /** A zeroed 1 MiB user buffer for GET_BITMAP. */
  buf: bigint;
}

/** A container in `profile` with tracking page size 2^pgshift, MAPS mapped, WRITES dirty (when tracking). */
async function build(profile: ProfileName, pgshift: bigint, tracking: boolean): Promise<Built> {
  const engine = await createEngine({ profile });
  const g = engine.createGroup({ pgsizeBitmap: 1n << pgshift, aperture: [0n, U64_MAX], reserved: [] });
  const proc = engine.createProcess();
  const c = engine.openContainer(proc);
  c.attach(g);
  c.setIommu();
  const dev = g.devices[0];
  dev.registerDmaUnmap(() => {});
  c.openDevice(g);
  const pg = 1n << pgshift;
  for (const [iova, size] of MAPS) c.map({ iova, size, vaddr: (proc.mmap(size + pg) + pg - 1n) & ~(pg - 1n) });
  if (tracking) {
    c.dirty.start();
    // A pin puts the group in pinned scope (docs/conformance.md §6.5, §7.8): reports then show the writes, not all ones.
    expect(dev.pinPages(MAPS[0][0], 1, uapi.IOMMU_READ | uapi.IOMMU_WRITE)).toBe(1);
    for (const a of WRITES) expect(dev.dmaRw(a, new Uint8Array([1]), true)).toBe(0);
  }
  return { engine, c, buf: proc.mmap(1 << 20) };
}

/** What one surface answered: an errno (0 on success) and, on success, the bitmap's bytes. */
interface Outcome {
  errno: number;
  bytes?: Uint8Array;
}

function outcome(fn: () => Uint8Array): Outcome {
  try {
    return { errno: 0, bytes: fn() };
  } catch (e) {
    if (!(e instanceof VfioError)) throw e;
    return { errno: e.errno };
  }
}

/** Bytes of a user bitmap of `pages` bits. */
const bitmapBytes = (pages: bigint): bigint => ((pages + 63n) >> 6n) << 3n;

/** GET_BITMAP with a correct user bitmap for the range (as large as the kernel lets it be). */
function viaIoctl(b: Built, iova: bigint, size: bigint, pgsize: bigint): Outcome {
  const npages = size / pgsize;
  const bytes = bitmapBytes(npages) > 0x1000_0000n ? 0x1000_0000n : bitmapBytes(npages);
  const arg = dirtyBitmapGet({ iova, size, bitmap: { pgsize, size: bytes, data: b.buf } });
  const r = b.c.proc.ioctl(b.c.fd, uapi.VFIO_IOMMU_DIRTY_PAGES, arg);
  if (r < 0) return { errno: -r };
  return { errno: 0, bytes: b.c.proc.read(b.buf, Number(bytes)) };
}

function viaWindows(b: Built, iova: bigint, size: bigint, windowBytes: bigint): Outcome {
  return outcome(() => {
    const it = windows(b.c, { iova, size, windowBytes });
    try {
      const first = it.next();
      return first.done ? new Uint8Array(0) : first.value.bytes().slice();
    } finally {
      it.return();
    }
  });
}

/** Whether [iova, iova + size) cuts one of MAPS (the rule windows waives). */
function cutsAMapping(iova: bigint, size: bigint): boolean {
  const last = iova + size - 1n;
  return MAPS.some(([s, n]) => {
    const e = s + n - 1n;
    return (iova > s && iova <= e) || (last >= s && last < e);
  });
}

const interestingIova = fc.oneof(
  fc.constantFrom(0n, 0x10_0000n, 0x10_1000n, 0x18_0000n, 0x30_0000n, 0x31_0000n, TWO64 - 0x10_0000n,
    TWO64 - 0x8_0000n, TWO64 - 0x1000n, TWO64 - 0x800n, U64_MAX, 0x800n),
  fc.bigInt({ min: 0n, max: 0x80_0000n }).map((v) => v & ~0xfffn),
  fc.bigInt({ min: 0n, max: U64_MAX }),
);

/** A size relative to iova: small, reaching 2^64 exactly, passing it, or huge. */
const sizeFor = (iova: bigint) =>
  fc.oneof(
    fc.constantFrom(0n, 0x800n, 0x1000n, 0x1_0000n, 0x10_0000n, 0x20_0000n, 0x40_0000n),
    fc.bigInt({ min: 0n, max: 0x80_0000n }).map((v) => v & ~0xfffn),
    fc.constantFrom(TWO64 - iova, TWO64 - iova + 0x1000n, TWO64 - iova - 0x1000n, TWO64 - iova + 0x800n)
      .filter((s) => s >= 0n && s <= U64_MAX),
    fc.constantFrom(1n << 63n, U64_MAX, 1n << 60n),
  );

/** Ranges over whole mappings (and gaps), which every surface reads when tracking is on. */
const wholeRange = fc.constantFrom<[bigint, bigint]>(
  [0x10_0000n, 0x10_0000n], [0n, 0x40_0000n], [0x20_0000n, 0x20_0000n], [0x30_0000n, 0x2_0000n],
  [0x40_0000n, 0x10_0000n], [TWO64 - 0x10_0000n, 0x10_0000n], [TWO64 - 0x20_0000n, 0x20_0000n],
  [0n, 0x80_0000n], [0x10_0000n, 0x22_0000n],
);

const sample = fc
  .record({
    profile: fc.constantFrom<ProfileName>('linux-6.18', 'linux-6.6'),
    pgshift: fc.constantFrom(12n, 16n),
    tracking: fc.oneof({ arbitrary: fc.constant(true), weight: 4 }, { arbitrary: fc.constant(false), weight: 1 }),
    iova: interestingIova,
  })
  .chain((r) =>
    fc.oneof(
      sizeFor(r.iova).map((size) => ({ ...r, size })),
      wholeRange.map(([iova, size]) => ({ ...r, iova, size })),
    ),
  );

describe('the dirty-read range gate is one gate on every surface', () => {
  it('ioctl, dirty.read, readReport and windows agree on errno and bytes (property)', async () => {
    await fc.assert(
      fc.asyncProperty(sample, async ({ profile, pgshift, tracking, iova, size }) => {
        const pgsize = 1n << pgshift;
        const [a, b, c, d] = await Promise.all([0, 1, 2, 3].map(() => build(profile, pgshift, tracking)));
        const ioctl = viaIoctl(a, iova, size, pgsize);
        const read = outcome(() => b.c.dirty.read({ iova, size }));
        const report = outcome(() => {
          const r = readReport(c.c, { iova, size });
          try {
            return r.bytes().slice();
          } finally {
            r.dispose();
          }
        });
        const win = viaWindows(d, iova, size, ioctl.errno === 0 ? size : pgsize);
        expect(read).toEqual(ioctl);
        expect(report).toEqual(ioctl);
        if (win.errno === 0 && ioctl.errno !== 0) {
          // windows may cut mappings and read more than 2^31 pages: only those refusals differ.
          expect(ioctl.errno).toBe(EINVAL);
          expect(cutsAMapping(iova, size) || size / pgsize > 1n << 31n).toBe(true);
        } else {
          expect(win.errno).toBe(ioctl.errno);
          if (ioctl.errno === 0) expect(win.bytes).toEqual(ioctl.bytes);
        }
      }),
      { numRuns: 200 },
    );
  });

  // The two disagreements this gate removed, as fixed examples.
  it.each([
    ['linux-6.6', TWO64 - 0x10_0000n, 0x10_0000n, EINVAL], // ends at 2^64: refused before v6.18
    ['linux-6.18', TWO64 - 0x10_0000n, 0x10_0000n, 0], // ...and read from v6.18
    ['linux-6.18', TWO64 - 0x800n, 0x1000n, EOVERFLOW], // wraps: EOVERFLOW before alignment
    ['linux-6.6', TWO64 - 0x800n, 0x1000n, EINVAL],
  ] as const)('%s iova=%s size=%s: errno %i on every surface', async (profile, iova, size, want) => {
    const [a, b, c] = await Promise.all([0, 1, 2].map(() => build(profile, 12n, true)));
    expect(viaIoctl(a, iova, size, 0x1000n).errno).toBe(want);
    expect(outcome(() => b.c.dirty.read({ iova, size })).errno).toBe(want);
    expect(outcome(() => readReport(c.c, { iova, size }).bytes()).errno).toBe(want);
    expect(viaWindows(c, iova, size, 0x1000n).errno).toBe(want);
  });
});

describe('a type1 (v1) container does no dirty tracking on any surface (docs/conformance.md §7.1)', () => {
  it('EACCES from the ioctl and every typed call', async () => {
    const engine = await createEngine();
    const g = engine.createGroup({ kind: 'emulated' });
    const proc = engine.createProcess();
    const c = engine.openContainer(proc);
    c.attach(g);
    c.setIommu('type1');
    c.map({ iova: 0n, size: 0x1000n, vaddr: proc.mmap(0x1000) });
    const data = proc.mmap(0x1000);
    const get = dirtyBitmapGet({ iova: 0n, size: 0x1000n, bitmap: { pgsize: 0x1000n, size: 8n, data } });
    expect(proc.ioctl(c.fd, uapi.VFIO_IOMMU_DIRTY_PAGES, get)).toBe(-errno.EACCES);
    const range = { iova: 0n, size: 0x1000n };
    expect(outcome(() => c.dirty.read(range)).errno).toBe(errno.EACCES);
    expect(outcome(() => readReport(c, range).bytes()).errno).toBe(errno.EACCES);
    expect(outcome(() => [...windows(c, range)][0].bytes()).errno).toBe(errno.EACCES);
    expect(() => c.dirty.start()).toThrow('dirty.start: EACCES (dirty tracking needs a type1v2 container)');
    expect(() => c.dirty.stop()).toThrow(AccessError);
    expect(c.dirty.tracking).toBe(false);
  });
});

describe('a refused read says which rule refused it and which operation was called', () => {
  const cases: [string, (c: VfioContainer) => unknown, RegExp][] = [
    ['cut mapping', (c) => c.dirty.read({ iova: 0n, size: 0x31_0000n }),
      /^dirty\.read \[0x0, \+0x310000\): EINVAL \(the range cuts the mapping \[0x300000, 0x320000\)\)$/],
    ['cut mapping, readReport', (c) => readReport(c, { iova: 0x10_1000n, size: 0x1000n }),
      /^readReport \[0x101000, \+0x1000\): EINVAL \(the range cuts the mapping \[0x100000, 0x200000\)\)$/],
    ['unaligned iova', (c) => c.dirty.read({ iova: 0x10_0800n, size: 0x1000n }),
      /^dirty\.read \[0x100800, \+0x1000\): EINVAL \(iova not aligned to the 4 KiB tracking page size\)$/],
    ['unaligned size', (c) => c.dirty.read({ iova: 0x10_0000n, size: 0x800n }),
      /\(size not a multiple of the 4 KiB tracking page size\)$/],
    ['wrap', (c) => [...windows(c, { iova: TWO64 - 0x800n, size: 0x1000n })],
      /^windows \[0xfffffffffffff800, \+0x1000\): EOVERFLOW \(iova \+ size - 1 passes 2\^64 - 1\)$/],
  ];
  it.each(cases)('%s', async (_name, call, message) => {
    const b = await build('linux-6.18', 12n, true);
    expect(() => call(b.c)).toThrow(message);
  });

  it('unmapWithBitmap refuses by the ioctl\'s user-bitmap rule, with the same errno', async () => {
    const [a, b] = await Promise.all([build('linux-6.18', 12n, true), build('linux-6.18', 12n, true)]);
    const size = 1n << 44n; // 2^32 pages: a bitmap over 256 MiB
    expect(() => b.c.unmapWithBitmap({ iova: 0n, size })).toThrow(
      'unmapWithBitmap [0x0, +0x100000000000): EINVAL (bitmap.size is 0 or over 256 MiB (2^31 pages))',
    );
    const arg = dmaUnmap({ flags: uapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, iova: 0n, size,
      bitmap: { pgsize: 0x1000n, size: 0x1000_0000n, data: a.buf } });
    expect(a.c.proc.ioctl(a.c.fd, uapi.VFIO_IOMMU_UNMAP_DMA, arg)).toBe(-EINVAL);
    expect(b.c.mappings()).toEqual(a.c.mappings()); // nothing unmapped on either
    expect(b.c.mappings().length).toBe(MAPS.length);
  });

  it('tracking off', async () => {
    const b = await build('linux-6.18', 12n, false);
    expect(() => b.c.dirty.read({ iova: 0x10_0000n, size: 0x10_0000n })).toThrow(
      'dirty.read [0x100000, +0x100000): EINVAL (dirty tracking is not started)',
    );
  });

  it('the reason of an ioctl refusal is the same rule: bitmap.pgsize', async () => {
    const b = await build('linux-6.18', 12n, true);
    const arg = dirtyBitmapGet({ iova: 0x10_0000n, size: 0x10_0000n, bitmap: { pgsize: 0x2000n, size: 4096n, data: b.buf } });
    expect(b.c.proc.ioctl(b.c.fd, uapi.VFIO_IOMMU_DIRTY_PAGES, arg)).toBe(-EINVAL);
  });

  it('error classes keep their names when a bundler renames them', async () => {
    // A bundler renames classes (class a extends ...): the name is declared, not taken from the class.
    const Renamed = class extends InvalidArgumentError {};
    expect(new Renamed(EINVAL, 'op').name).toBe('InvalidArgumentError');
    const b = await build('linux-6.18', 12n, false);
    let err: unknown;
    try {
      b.c.dirty.read({ iova: 0n, size: 0x1000n });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).name).toBe('InvalidArgumentError');
    for (const [name, C] of Object.entries(api)) {
      if (typeof C === 'function' && C.prototype instanceof VfioError) {
        expect(new (C as typeof VfioError)(EINVAL, 'op').name).toBe(name);
      }
    }
  });
});
