// How the ioctl surface reads its arguments (docs/conformance.md §3.6): struct buffers on
// resizable ArrayBuffers, the unsigned-long value of CHECK_EXTENSION and SET_IOMMU given as a
// number or a bigint; and the typed API refusing objects of another engine.
import { describe, expect, it } from 'vitest';
import { createEngine, DirtyBitmap, errno, readReport, uapi, type Engine } from '../src/index.js';
import { dirtyBitmap, dirtyBitmapGet } from './helpers/uapi_structs.js';

const { VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU, VFIO_IOMMU_DIRTY_PAGES, VFIO_GROUP_SET_CONTAINER } = uapi;
const { EINVAL, ENODEV } = errno;
const TWO32 = 2 ** 32;

/** A process with a container fd and an opened group fd (not yet set to the container). */
async function opened(): Promise<{ engine: Engine; proc: ReturnType<Engine['createProcess']>; cfd: number; gfd: number }> {
  const engine = await createEngine();
  const g = engine.createGroup();
  const proc = engine.createProcess();
  const cfd = proc.open('/dev/vfio/vfio');
  const gfd = proc.open(`/dev/vfio/${g.id}`);
  return { engine, proc, cfd, gfd };
}

describe('a struct on a resizable ArrayBuffer (item 5)', () => {
  it('is read at its current size on every call', async () => {
    const { proc, cfd, gfd } = await opened();
    expect(proc.ioctl(gfd, VFIO_GROUP_SET_CONTAINER, cfd)).toBe(0);
    expect(proc.ioctl(cfd, VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU)).toBe(0);
    const rab = new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer & {
      resize(n: number): void;
    })(uapi.DIRTY_BITMAP_SIZE, { maxByteLength: 256 });
    const arg = new Uint8Array(rab); // length-tracking: follows the buffer's size
    arg.set(dirtyBitmap({ flags: uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START }));
    expect(proc.ioctl(cfd, VFIO_IOMMU_DIRTY_PAGES, arg)).toBe(0);
    // Grown to hold a GET_BITMAP struct: the same Uint8Array, now 48 bytes long.
    rab.resize(uapi.DIRTY_BITMAP_GET_SIZE);
    const data = proc.mmap(4096);
    arg.set(dirtyBitmapGet({ iova: 0n, size: 0x1000n, bitmap: { pgsize: 0x1000n, size: 8n, data } }));
    expect(arg.length).toBe(48);
    expect(proc.ioctl(cfd, VFIO_IOMMU_DIRTY_PAGES, arg)).toBe(0);
    // Shrunk again: a START struct of 8 bytes.
    rab.resize(uapi.DIRTY_BITMAP_SIZE);
    arg.set(dirtyBitmap({ flags: uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP }));
    expect(proc.ioctl(cfd, VFIO_IOMMU_DIRTY_PAGES, arg)).toBe(0);
    // Shrunk below what GET_BITMAP reads: EFAULT, as for any short buffer.
    arg.set(dirtyBitmap({ flags: uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, argsz: 48 }).subarray(0, 8));
    expect(proc.ioctl(cfd, VFIO_IOMMU_DIRTY_PAGES, arg)).toBe(-errno.EFAULT);
  });
});

describe('CHECK_EXTENSION and SET_IOMMU take an unsigned long (item 6)', () => {
  // [argument, CHECK_EXTENSION's answer before SET_IOMMU]
  const values: [number | bigint, number][] = [
    [3, 1], [3n, 1], [1, 1], [1n, 1], [9, 1], [9n, 1],
    [TWO32 + 3, 0], [(1n << 32n) + 3n, 0], [TWO32 + 1, 0], [(1n << 32n) + 1n, 0],
    [-1, 0], [-1n, 0], [-(TWO32 - 3), 0], [-((1n << 32n) - 3n), 0], // 2^64 - 2^32 + 3, not 3
    [(1n << 64n) + 3n, 1], // bigints past 2^64 are read modulo 2^64, as the register would hold them
    [0, 0], [0n, 0], [Number.MAX_SAFE_INTEGER, 0], [2 ** 64 + 0, 0],
  ];

  it.each(values)('CHECK_EXTENSION(%s) = %i', async (arg, want) => {
    const { proc, cfd } = await opened();
    expect(proc.ioctl(cfd, VFIO_CHECK_EXTENSION, arg)).toBe(want);
  });

  it('a number and a bigint of the same value answer alike', async () => {
    const { proc, cfd } = await opened();
    for (const n of [0, 1, 3, 4, 9, 10, TWO32 + 3, -1, -3, 2 ** 53]) {
      expect(proc.ioctl(cfd, VFIO_CHECK_EXTENSION, n)).toBe(proc.ioctl(cfd, VFIO_CHECK_EXTENSION, BigInt(n)));
    }
  });

  // [argument, SET_IOMMU's result]
  const types: [number | bigint, number][] = [
    [(1n << 32n) + 3n, -ENODEV], [TWO32 + 3, -ENODEV], [(1n << 32n) + 1n, -ENODEV], [TWO32 + 1, -ENODEV],
    [-1, -ENODEV], [-1n, -ENODEV], [9, -EINVAL], [9n, -EINVAL], [3, 0], [3n, 0], [1n, 0],
  ];

  it.each(types)('SET_IOMMU(%s) = %i', async (arg, want) => {
    const { proc, cfd, gfd } = await opened();
    expect(proc.ioctl(gfd, VFIO_GROUP_SET_CONTAINER, cfd)).toBe(0);
    expect(proc.ioctl(cfd, VFIO_SET_IOMMU, arg)).toBe(want);
    // Only a successful SET_IOMMU selects a driver: UPDATE_VADDR answers 1 with one, 0 without.
    expect(proc.ioctl(cfd, VFIO_CHECK_EXTENSION, uapi.VFIO_UPDATE_VADDR)).toBe(want === 0 ? 1 : 0);
  });

  it.each([1.5, NaN, Infinity, '3', undefined, null])('%s is a TypeError, for both requests', async (arg) => {
    const { proc, cfd, gfd } = await opened();
    expect(proc.ioctl(gfd, VFIO_GROUP_SET_CONTAINER, cfd)).toBe(0);
    expect(() => proc.ioctl(cfd, VFIO_CHECK_EXTENSION, arg as never)).toThrow(TypeError);
    expect(() => proc.ioctl(cfd, VFIO_SET_IOMMU, arg as never)).toThrow(TypeError);
    expect(proc.ioctl(cfd, VFIO_CHECK_EXTENSION, uapi.VFIO_UPDATE_VADDR)).toBe(0); // nothing set
  });

  it('SET_CONTAINER reads its fd as an __s32 from a number or a bigint alike', async () => {
    const { proc, cfd, gfd } = await opened();
    expect(proc.ioctl(gfd, VFIO_GROUP_SET_CONTAINER, TWO32 + cfd)).toBe(0);
    expect(proc.ioctl(gfd, uapi.VFIO_GROUP_UNSET_CONTAINER)).toBe(0);
    expect(proc.ioctl(gfd, VFIO_GROUP_SET_CONTAINER, (1n << 32n) + BigInt(cfd))).toBe(0);
  });
});

describe('objects of another engine are refused (item 7)', () => {
  async function two() {
    const local = await createEngine();
    const other = await createEngine();
    const lg = local.createGroup(); // id 1 in both engines
    const og = other.createGroup();
    const proc = local.createProcess();
    const c = local.openContainer(proc);
    return { local, other, lg, og, proc, c };
  }

  it('attach, detach and openDevice refuse another engine\'s group; the local group of that id is untouched', async () => {
    const { local, lg, og, c } = await two();
    expect(og.id).toBe(lg.id);
    expect(() => c.attach(og)).toThrow(TypeError);
    expect(lg.container).toBe(null);
    expect(lg.file).toBe(null); // not even opened
    expect(() => c.detach(og)).toThrow(TypeError);
    expect(() => c.openDevice(og)).toThrow(TypeError);
    expect(() => c.attach({ id: lg.id } as never)).toThrow(TypeError);
    expect(local.inspect().containers[0].groups).toEqual([]);
    c.attach(lg);
    expect(lg.container).not.toBe(null);
  });

  it('openContainer refuses another engine\'s process', async () => {
    const { local, other } = await two();
    const before = local.inspect();
    const stranger = other.createProcess();
    expect(() => local.openContainer(stranger)).toThrow(TypeError);
    expect(local.inspect()).toEqual(before);
    expect(stranger.fds.size).toBe(0);
  });

  it('dirty.collect and readReport refuse a bitmap or core of another engine', async () => {
    const { lg, other, proc, c } = await two();
    c.attach(lg);
    c.setIommu();
    c.map({ iova: 0n, size: 0x1000n, vaddr: proc.mmap(0x1000) });
    c.dirty.start();
    const foreign = DirtyBitmap.create(other.core, 64);
    expect(() => c.dirty.collect(0n, 0x1000n, foreign, 0, { clear: true, partial: false })).toThrow(TypeError);
    expect(() => readReport(c, { iova: 0n, size: 0x1000n, core: other.core })).toThrow(TypeError);
    const r = readReport(c, { iova: 0n, size: 0x1000n });
    expect(r.pages).toBe(1);
    r.dispose();
  });
});
