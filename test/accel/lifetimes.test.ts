// The PASID side's share of the engine's lifetimes and ownership rules: dispose refused inside an
// IOASID callback, accelerators ended by dispose, another engine's process refused by SVA, and
// mmapFd of a queue region with a length past 2^53 pages answered by the region's own rule.
import { describe, expect, it } from 'vitest';
import { createEngine, errno, uapi } from '../../src/index.js';

describe('engine.dispose and the PASID side', () => {
  it('inside an IOASID notifier dispose throws and changes nothing', async () => {
    const e = await createEngine();
    const p = e.createProcess();
    const sid = e.ioasid.allocSet('vm', 10);
    const id = e.ioasid.alloc(sid, 1, 100);
    let inner: unknown = null;
    e.ioasid.addNotifier(() => {
      try {
        e.dispose();
      } catch (err) {
        inner = (err as Error).message;
      }
    });
    expect(e.ioasid.free(id)).toBe(0);
    expect(inner).toBe('engine.dispose() cannot run inside a callback');
    expect([e.isDisposed, p.exited, e.ioasid.idInfo(id)]).toEqual([false, false, null]);
    e.dispose();
    expect([e.isDisposed, p.exited]).toEqual([true, true]);
  });

  it('dispose removes every accelerator: its calls answer ENODEV and its path is gone', async () => {
    const e = await createEngine();
    const a = e.createAccelerator({ name: 'zip' });
    const p = e.createProcess();
    expect(p.open(a.path)).toBe(3);
    e.dispose();
    expect(a.removed).toBe(true);
    expect(a.dmaWrite(1, 0x10_0000_0000n, new Uint8Array([1]))).toBe(-errno.ENODEV);
    expect(a.readAttr('api')).toBe(-errno.ENODEV);
    expect(() => e.createAccelerator()).toThrow('engine disposed');
  });
});

describe('SVA refuses a process of another engine', () => {
  it('bindDevice and pasidOf throw TypeError, and no PASID is taken', async () => {
    const e1 = await createEngine();
    const e2 = await createEngine();
    const a = e1.createAccelerator();
    const stranger = e2.createProcess();
    const avail = e1.ioasid.getAvailable();
    expect(() => e1.sva.bindDevice(a, stranger)).toThrow(TypeError);
    expect(() => e1.sva.pasidOf(stranger)).toThrow(TypeError);
    expect(e1.ioasid.getAvailable()).toBe(avail);
  });
});

describe('mmapFd of a queue with a huge length', () => {
  it.each([[1n << 70n], [1n << 64n], [(1n << 53n) * 4096n]])('length %s: EINVAL from the region rule, nothing mapped', async (len) => {
    const e = await createEngine();
    const a = e.createAccelerator({ dusSize: 8192 });
    const p = e.createProcess();
    const fd = p.open(a.path);
    expect(p.ioctl(fd, uapi.UACCE_CMD_START_Q)).toBe(0);
    expect(p.mmapFd(fd, 0x1000n, len)).toBe(-BigInt(errno.EINVAL)); // DUS: the size must be dusSize
    expect(p.mmapFd(fd, 0n, len)).toBe(-BigInt(errno.EINVAL)); // MMIO: at most mmioSize
    expect(p.mmapFd(fd, 0x1000n, 8192) > 0n).toBe(true); // the region slot is still free
  });
});
