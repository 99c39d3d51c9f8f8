// Shared accelerators (docs/conformance.md §16), rule by rule: binding errors, open failures, mmap
// checks, injected errors, the device's region view, and removal.
import { describe, expect, it } from 'vitest';
import { createEngine, errno, uapi } from '../../src/index.js';
import { b, setupA } from './setup.js';

const { ENODEV, ESRCH, EOVERFLOW, ENOSPC, EBUSY, EINVAL, ENXIO, EEXIST, ENOENT, EIO, EBADF, EFAULT } = errno;
const { UACCE_CMD_START_Q: START_Q, UACCE_CMD_PUT_Q: PUT_Q, INVALID_IOASID: INV } = uapi;

describe('bindDevice, unbindDevice, getPasid', () => {
  it('ENODEV for a removed device, ESRCH for an exited process, EOVERFLOW past maxPasids', async () => {
    const { engine, D1, D2, P1, P2 } = await setupA();
    const io = engine.ioasid;
    for (let i = 0; i < 15; i++) expect(io.alloc(0, 1, 15)).not.toBe(INV); // PASIDs 1..15 taken
    expect(engine.sva.bindDevice(D2, P1)).toBe(-ENOSPC); // [1, 15] is full
    expect(engine.sva.pasidOf(P1)).toBe(INV);
    expect(P1.open('/dev/zip-0')).toBeGreaterThan(0);
    expect(engine.sva.pasidOf(P1)).toBe(16);
    expect(engine.sva.bindDevice(D2, P1)).toBe(-EOVERFLOW);
    expect(P1.open('/dev/sec-1')).toBe(-EOVERFLOW);
    expect(D1.remove()).toBe(0);
    expect(engine.sva.bindDevice(D1, P2)).toBe(-ENODEV);
    P2.exit();
    expect(engine.sva.bindDevice(D2, P2)).toBe(-ESRCH);
    expect(() => engine.sva.bindDevice({} as never, P1)).toThrow(TypeError);
    expect(() => engine.sva.unbindDevice({} as never)).toThrow(TypeError);
    expect(() => engine.sva.getPasid({} as never)).toThrow(TypeError);
  });

  it('no system set, or maxPasids 0 or 1: ENOSPC', async () => {
    const engine = await createEngine({ ioasidSystemQuota: 0 });
    const P = engine.createProcess();
    const A = engine.createAccelerator();
    expect(P.open(A.path)).toBe(-ENOSPC);
    const e2 = await createEngine();
    const Q = e2.createProcess();
    expect(e2.sva.bindDevice(e2.createAccelerator({ maxPasids: 1 }), Q)).toBe(-ENOSPC);
    expect(e2.sva.bindDevice(e2.createAccelerator({ maxPasids: 0 }), Q)).toBe(-ENOSPC);
    expect(e2.sva.bindDevice(e2.createAccelerator({ maxPasids: 2 }), Q)).not.toBeTypeOf('number');
  });

  it('the PASID the process keeps is freed by nobody but its end: free and attachData answer EPERM', async () => {
    const { engine, P1 } = await setupA();
    P1.open('/dev/zip-0');
    expect(engine.ioasid.free(1)).toBe(-errno.EPERM);
    expect(engine.ioasid.attachData(1, null)).toBe(-errno.EPERM);
    expect(engine.ioasid.idInfo(1)).toEqual({ id: 1, sid: 0, state: 'active', users: 0, pdata: P1, owner: 'sva' });
  });
});

describe('§4.3-§4.5: open, ioctl, mmap', () => {
  it('a failed get_queue unbinds again; the PASID stays with the process', async () => {
    const { engine, D1, P1, O } = await setupA();
    D1.failNext('get_queue', EIO);
    expect(P1.open('/dev/zip-0')).toBe(-EIO);
    expect(engine.sva.pasidOf(P1)).toBe(1);
    expect(D1.dmaWrite(1, 0x10_0000_0000n, b(1))).toBe(-ENOENT);
    expect(O).toEqual([]);
    expect(P1.open('/dev/zip-0')).toBeGreaterThan(0);
    expect(O).toEqual([['get_queue', 0, 1]]);
  });

  it('failNext: start_queue and mmap, one shot, replaced by a second call; bad errno RangeError', async () => {
    const { D1, P1 } = await setupA();
    const fd = P1.open('/dev/zip-0');
    D1.failNext('start_queue', 5);
    D1.failNext('start_queue', 7);
    expect(P1.ioctl(fd, START_Q)).toBe(-7);
    expect(D1.queues()[0].state).toBe(1);
    D1.failNext('mmap', EIO);
    expect(P1.mmapFd(fd, 0x2000n, 4096)).toBe(-BigInt(EINVAL)); // not reached: still pending
    expect(P1.mmapFd(fd, 0n, 4096)).toBe(-BigInt(EIO));
    expect(P1.mmapFd(fd, 0n, 4096)).toBeGreaterThan(0n);
    expect(P1.ioctl(fd, START_Q)).toBe(0);
    expect(() => D1.failNext('mmap', 0)).toThrow(RangeError);
    expect(() => D1.failNext('mmap', 4096)).toThrow(RangeError);
    expect(() => D1.failNext('stop_queue' as never, 5)).toThrow(TypeError);
  });

  it('mmapFd order: EINVAL (region), ENXIO, EEXIST, injected, size; EBADF for a closed fd', async () => {
    const { D1, D2, P1 } = await setupA();
    const fd = P1.open('/dev/zip-0');
    expect(P1.mmapFd(fd, 0x1000n, 4096)).toBe(-BigInt(EINVAL)); // DUS is 8192
    expect(P1.mmapFd(fd, 0n, 8192)).toBe(-BigInt(EINVAL)); // MMIO is 4096
    expect(P1.mmapFd(fd, 0n, 0)).toBe(-BigInt(EINVAL));
    expect(P1.mmapFd(fd, 0x800n, 4096)).toBe(-BigInt(EINVAL));
    expect(P1.mmapFd(99, 0n, 4096)).toBe(-BigInt(EBADF));
    expect(P1.mmapFd(fd, 0n, 100)).toBeGreaterThan(0n); // rounded up to one page
    D1.failNext('mmap', EIO);
    expect(P1.mmapFd(fd, 0n, 4096)).toBe(-BigInt(EEXIST));
    const fd2 = P1.open('/dev/sec-1');
    expect(P1.mmapFd(fd2, 0x1000n, 4096)).toBe(-BigInt(EINVAL)); // no DUS region
    expect(D2.readAttr('region_mmio_size')).toBe('4096\n');
  });

  it('region mappings: region bytes through the process and the device; munmap rules', async () => {
    const { D1, P1 } = await setupA();
    const fd = P1.open('/dev/zip-0');
    const A = P1.mmapFd(fd, 0x1000n, 8192);
    P1.write(A + 0x1ffen, b(1, 2));
    expect(D1.regionRead(0, 1, 0x1ffe, 2)).toEqual(b(1, 2));
    expect(D1.regionWrite(0, 0, 4095, b(9))).toBe(0);
    expect(D1.regionWrite(0, 0, 4095, b(9, 9))).toBe(-EINVAL);
    expect(D1.regionRead(1, 0, 0, 1)).toBe(-ENXIO);
    expect(D1.regionRead(0, 2, 0, 1)).toBe(-EINVAL);
    expect(D1.regionRead(0, 0, 0, 0)).toBe(-EINVAL);
    expect(D1.regionRead(0, 0, -1, 1)).toBe(-EINVAL);
    const M = P1.mmapFd(fd, 0n, 4096);
    expect(P1.read(M + 4095n, 1)).toEqual(b(9));
    expect(P1.munmap(A, 4096)).toBe(-EINVAL);
    expect(P1.munmap(A + 0x1000n, 4096)).toBe(-EINVAL);
    expect(P1.munmap(A, 8192)).toBe(0);
    expect(P1.mmapFd(fd, 0x1000n, 8192)).toBeGreaterThan(0n); // the slot is free again
    expect(D1.regionRead(0, 1, 0x1ffe, 2)).toEqual(b(1, 2)); // the bytes belong to the open queue
  });

  it('a later holder of the hardware queue gets fresh zeroed regions', async () => {
    const { D1, P1, P2 } = await setupA();
    const fd = P1.open('/dev/zip-0');
    expect(D1.regionWrite(0, 1, 0, b(5))).toBe(0);
    expect(P1.ioctl(fd, PUT_Q)).toBe(0);
    P2.open('/dev/zip-0');
    expect(D1.queues()[0].proc).toBe(P2);
    expect(D1.regionRead(0, 1, 0, 1)).toEqual(b(0));
  });
});

describe('§4.9: removal', () => {
  it('most recently opened first; mappings zapped; old fds answer ENXIO/EINVAL; close has no op', async () => {
    const { engine, D1, P1, P2, O } = await setupA();
    const f1 = P1.open('/dev/zip-0');
    const f2 = P2.open('/dev/zip-0');
    expect(P1.ioctl(f1, START_Q)).toBe(0);
    const A = P1.mmapFd(f1, 0n, 4096);
    const h = engine.sva.bindDevice(D1, P1);
    O.length = 0;
    expect(D1.remove()).toBe(0);
    expect(O).toEqual([['put_queue', 1, 2], ['stop_queue', 0, 1], ['put_queue', 0, 1]]);
    expect(D1.removed).toBe(true);
    expect(() => P1.read(A, 1)).toThrow(RangeError);
    expect(() => P1.write(A, b(1))).toThrow(RangeError);
    expect(P1.ioctl(f1, START_Q)).toBe(-ENXIO);
    expect(P1.mmapFd(f1, 0x2000n, 4096)).toBe(-BigInt(EINVAL));
    expect(P1.mmapFd(f1, 0x1000n, 8192)).toBe(-BigInt(ENXIO));
    expect(P1.open('/dev/zip-0')).toBe(-ENOENT);
    for (const r of [D1.readAttr('api'), D1.dmaWrite(1, 0n, b(1)), D1.dmaRead(1, 0n, 1), D1.regionRead(0, 0, 0, 1),
      D1.regionWrite(0, 0, 0, b(1))]) expect(r).toBe(-ENODEV);
    expect(P1.close(f1)).toBe(0);
    expect(P1.munmap(A, 4096)).toBe(0);
    expect(P2.close(f2)).toBe(0);
    expect(O).toHaveLength(3);
    expect(D1.remove()).toBe(0);
    expect(engine.sva.unbindDevice(h as never)).toBe(0);
    const again = engine.createAccelerator({ name: 'zip' });
    expect(again.path).toBe('/dev/zip-0');
    expect(engine.sva.pasidOf(P1)).toBe(1);
  });

  it('dmaRead length <= 0 is EINVAL; a range past the mapping EFAULT', async () => {
    const { D1, P1, V1 } = await setupA();
    P1.open('/dev/zip-0');
    expect(D1.dmaRead(1, V1, 0)).toBe(-EINVAL);
    expect(D1.dmaRead(1, V1 + 0x3000n, 0x1001)).toBe(-EFAULT);
    expect(D1.dmaRead(1, V1 + 0x3000n, 0x1000)).toHaveLength(0x1000);
  });

  it('exit in a callback is EDEADLK; exit twice is 0; methods throw afterwards', async () => {
    const { P1 } = await setupA();
    expect(P1.exit()).toBe(0);
    expect(P1.exit()).toBe(0);
    expect(P1.exited).toBe(true);
    expect(() => P1.open('/dev/zip-0')).toThrow();
    expect(() => P1.softDirty(0n, 1)).toThrow();
    expect(() => P1.clearSoftDirty()).toThrow();
  });

  it('EBUSY when every hardware queue is held, and queues 0 answers EBUSY at once', async () => {
    const engine = await createEngine();
    const A = engine.createAccelerator({ queues: 0 });
    const P = engine.createProcess();
    expect(P.open(A.path)).toBe(-EBUSY);
    expect(A.readAttr('available_instances')).toBe('0\n');
  });
});
