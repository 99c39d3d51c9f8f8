// The shared-accelerator acceptance vectors (group C), by name; the rules they check are in
// docs/conformance.md §16.
import { describe, expect, it } from 'vitest';
import { errno, uapi } from '../../src/index.js';
import type { IoasidNbArgs } from '../../src/ioasid/ioasid.js';
import { b, logger, setupA } from './setup.js';

const { ENOENT, EBUSY, EINVAL, ENXIO, EFAULT, ESRCH } = errno;
const { UACCE_CMD_START_Q: START_Q, UACCE_CMD_PUT_Q: PUT_Q, INVALID_IOASID: INV } = uapi;

describe('accelerator vectors C', () => {
  it('V26. Attributes and paths', async () => {
    const { engine, D1, D2 } = await setupA();
    expect([D1.devId, D1.path, D2.devId, D2.path]).toEqual([0, '/dev/zip-0', 1, '/dev/sec-1']);
    expect(D1.readAttr('api')).toBe('hisi_qm_v2\n');
    expect(D1.readAttr('flags')).toBe('1\n');
    expect(D1.readAttr('available_instances')).toBe('2\n');
    expect(D1.readAttr('algorithms')).toBe('zlib\ngzip\n');
    expect(D1.readAttr('region_mmio_size')).toBe('4096\n');
    expect(D1.readAttr('region_dus_size')).toBe('8192\n');
    for (const a of ['isolate', 'isolate_strategy', 'nope']) expect(D1.readAttr(a)).toBe(-ENOENT);
    expect(D2.readAttr('api')).toBe('accel_v1\n');
    expect(D2.readAttr('algorithms')).toBe('\n');
    expect(D2.readAttr('available_instances')).toBe('4\n');
    expect(D2.readAttr('region_dus_size')).toBe(-ENOENT);
    const D3 = engine.createAccelerator({ sva: false });
    expect([D3.path, D3.readAttr('flags')]).toEqual(['/dev/accel-2', '0\n']);
    const D4 = engine.createAccelerator({ maxPasids: 0 });
    expect([D4.path, D4.readAttr('flags')]).toEqual(['/dev/accel-3', '0\n']);
    expect(() => engine.createAccelerator({ name: 'a/b' })).toThrow();
    expect(() => engine.createAccelerator({ mmioSize: 100 })).toThrow();
  });

  it('V27. One PASID per process', async () => {
    const { engine, D1, D2, P1, V1, P2 } = await setupA();
    const S: [number, IoasidNbArgs][] = [];
    const G: [number, IoasidNbArgs][] = [];
    engine.ioasid.addNotifier(logger(S), { sid: 0 });
    engine.ioasid.addNotifier(logger(G));
    const fd1 = P1.open('/dev/zip-0');
    expect(fd1).toBeGreaterThanOrEqual(3);
    expect(engine.sva.pasidOf(P1)).toBe(1);
    expect(S).toEqual([[1, { id: 1, sid: 0, token: engine.ioasid.systemToken, pdata: P1 }]]);
    expect(G).toEqual([]);
    expect(D1.queues()).toEqual([{ qid: 0, pasid: 1, state: 1, proc: P1 }]);
    expect(D1.readAttr('available_instances')).toBe('1\n');
    P1.open('/dev/sec-1');
    expect(D2.queues()[0].pasid).toBe(1);
    expect(S).toHaveLength(1);
    const fd3 = P1.open('/dev/zip-0');
    expect(D1.queues()[1]).toEqual({ qid: 1, pasid: 1, state: 1, proc: P1 });
    expect(D1.readAttr('available_instances')).toBe('0\n');
    expect(P1.open('/dev/zip-0')).toBe(-EBUSY);
    P2.open('/dev/sec-1');
    expect(engine.sva.pasidOf(P2)).toBe(2);
    expect(P1.close(fd1)).toBe(0);
    expect(D1.dmaWrite(1, V1, b(7))).toBe(0);
    expect(P1.close(fd3)).toBe(0);
    expect(D1.dmaWrite(1, V1, b(7))).toBe(-ENOENT);
    expect(D2.dmaWrite(1, V1, b(7))).toBe(0);
    expect(engine.sva.pasidOf(P1)).toBe(1);
  });

  it('V28. Queue life cycle', async () => {
    const { D1: d, P1: p, V1: v, O: log } = await setupA();
    const fd = p.open('/dev/zip-0');
    expect(log).toEqual([['get_queue', 0, 1]]);
    expect(p.ioctl(fd, 0x1234)).toBe(-EINVAL);
    expect(p.ioctl(fd, START_Q)).toBe(0);
    expect(log.at(-1)).toEqual(['start_queue', 0, 1]);
    expect(d.queues()[0].state).toBe(2);
    expect(p.ioctl(fd, START_Q)).toBe(-EINVAL);
    const A1 = p.mmapFd(fd, 0n, 4096);
    expect(A1).toBeGreaterThan(0n);
    expect(p.mmapFd(fd, 0n, 4096)).toBe(-17n);
    expect(p.mmapFd(fd, 0x2000n, 4096)).toBe(-22n);
    expect(p.mmapFd(fd, 0x1000n, 4096)).toBe(-22n);
    const A2 = p.mmapFd(fd, 0x1000n, 8192);
    expect(A2).toBeGreaterThan(0n);
    expect(p.ioctl(fd, PUT_Q)).toBe(0);
    expect(log.slice(2)).toEqual([['stop_queue', 0, 1], ['put_queue', 0, 1]]);
    expect(d.readAttr('available_instances')).toBe('2\n');
    expect(d.queues()).toEqual([]);
    for (const r of [PUT_Q, START_Q, 0x1234]) expect(p.ioctl(fd, r)).toBe(-ENXIO);
    expect(p.mmapFd(fd, 0x1000n, 8192)).toBe(-6n);
    expect(p.mmapFd(fd, 0x2000n, 4096)).toBe(-22n);
    expect(d.dmaWrite(1, v, b(1))).toBe(0);
    expect(p.close(fd)).toBe(0);
    expect(log).toHaveLength(4);
    expect(d.dmaWrite(1, v, b(1))).toBe(0);
    expect(p.munmap(A1, 4096)).toBe(0);
    expect(d.dmaWrite(1, v, b(1))).toBe(0);
    expect(p.munmap(A2, 8192)).toBe(0);
    expect(log).toHaveLength(4);
    expect(d.dmaWrite(1, v, b(1))).toBe(-ENOENT);
    expect(p.munmap(A2, 8192)).toBe(-EINVAL);
  });

  it('V32. Exit with a started queue', async () => {
    const { engine, D1, P1, V1, P2, O } = await setupA();
    const fd = P1.open('/dev/zip-0');
    expect(P1.ioctl(fd, START_Q)).toBe(0);
    const A1 = P1.mmapFd(fd, 0n, 4096);
    expect(A1).toBeGreaterThan(0n);
    expect(D1.dmaWrite(1, V1, b(0xaa))).toBe(0);
    expect(P1.read(V1, 1)).toEqual(b(0xaa));
    const G: [number, IoasidNbArgs][] = [];
    const rec: unknown[] = [];
    let oAtG = -1;
    engine.ioasid.addNotifier(logger(G, () => {
      rec.push(D1.dmaWrite(1, V1, b(1)), D1.queues().length, engine.sva.pasidOf(P1));
      oAtG = O.length;
    }));
    expect(P1.exit()).toBe(0);
    expect(O.slice(2)).toEqual([['stop_queue', 0, 1], ['put_queue', 0, 1]]);
    expect(oAtG).toBe(4);
    expect(G).toEqual([[2, { id: 1, sid: 0, token: engine.ioasid.systemToken, pdata: P1 }]]);
    expect(rec).toEqual([-ENOENT, 0, INV]);
    expect(engine.ioasid.idInfo(1)).toBe(null);
    expect(() => P1.read(V1, 1)).toThrow();
    P2.open('/dev/zip-0');
    expect(engine.sva.pasidOf(P2)).toBe(1);
  });

  it('V33. A bond held past exit', async () => {
    const { engine, D1, D2, P1, V1, P2, P3 } = await setupA();
    const G: [number, IoasidNbArgs][] = [];
    engine.ioasid.addNotifier(logger(G));
    P1.open('/dev/zip-0');
    const h = engine.sva.bindDevice(D2, P1);
    expect(typeof h).toBe('object');
    if (typeof h === 'number') return;
    expect(engine.sva.getPasid(h)).toBe(1);
    expect(engine.sva.bindDevice(D2, P1)).toBe(h);
    expect(engine.sva.unbindDevice(h)).toBe(0);
    expect(D2.dmaWrite(1, V1, b(5))).toBe(0);
    expect(P1.exit()).toBe(0);
    expect(G).toEqual([]);
    expect(engine.ioasid.idInfo(1)!.state).toBe('active');
    expect(D2.dmaWrite(1, V1, b(5))).toBe(-EFAULT);
    expect(D1.dmaWrite(1, V1, b(5))).toBe(-ENOENT);
    P2.open('/dev/sec-1');
    expect(engine.sva.pasidOf(P2)).toBe(2);
    expect(engine.sva.unbindDevice(h)).toBe(0);
    expect(G).toEqual([[2, { id: 1, sid: 0, token: engine.ioasid.systemToken, pdata: P1 }]]);
    expect(D2.dmaWrite(1, V1, b(5))).toBe(-ENOENT);
    expect(engine.sva.unbindDevice(h)).toBe(-EINVAL);
    expect(engine.sva.getPasid(h)).toBe(-EINVAL);
    expect(engine.sva.bindDevice(D2, P1)).toBe(-ESRCH);
    P3.open('/dev/sec-1');
    expect(engine.sva.pasidOf(P3)).toBe(1);
  });

  it('V34. Device writes through a PASID', async () => {
    const { D1, D2, P1, V1 } = await setupA();
    const fd = P1.open('/dev/zip-0');
    expect(D1.dmaWrite(1, V1 + 0x1000n, b(1, 2))).toBe(0);
    expect(P1.read(V1 + 0x1000n, 2)).toEqual(b(1, 2));
    expect(D1.dmaWrite(1, V1 + 0x3fffn, b(3, 4))).toBe(-EFAULT);
    expect(P1.read(V1 + 0x3fffn, 1)).toEqual(b(0));
    expect(D1.dmaWrite(2, V1, b(1))).toBe(-ENOENT);
    expect(D1.dmaWrite(0, V1, b(1))).toBe(-ENOENT);
    expect(D1.dmaWrite(1, V1, b())).toBe(-EINVAL);
    expect(D2.dmaWrite(1, V1, b(1))).toBe(-ENOENT);
    expect(D1.dmaRead(1, V1 + 0x1000n, 2)).toEqual(b(1, 2));
    expect(D1.dmaRead(1, 0x7ffffffff000n, 1)).toBe(-EFAULT);
    const A1 = P1.mmapFd(fd, 0n, 4096);
    expect(D1.dmaWrite(1, A1, b(1))).toBe(-EFAULT);
    expect(D1.dmaWrite(1, 0xffffffffffffffffn, b(1, 2))).toBe(-EFAULT);
  });

  it('V35. A device without SVA', async () => {
    const { engine, P1, V1 } = await setupA();
    const D3 = engine.createAccelerator({ sva: false });
    const S: [number, IoasidNbArgs][] = [];
    engine.ioasid.addNotifier(logger(S), { sid: 0 });
    const fd = P1.open('/dev/accel-2');
    expect(fd).toBeGreaterThanOrEqual(3);
    expect(engine.sva.pasidOf(P1)).toBe(INV);
    expect(S).toEqual([]);
    expect(D3.queues()[0].pasid).toBe(0);
    expect(D3.dmaWrite(0, V1, b(1))).toBe(-ENOENT);
    expect(P1.ioctl(fd, START_Q)).toBe(0);
    expect(P1.mmapFd(fd, 0n, 4096)).toBeGreaterThan(0n);
    const h = engine.sva.bindDevice(D3, P1);
    if (typeof h === 'number') throw new Error(`bind ${h}`);
    expect(engine.sva.getPasid(h)).toBe(1);
    expect(D3.dmaWrite(1, V1, b(1))).toBe(0);
  });
});
