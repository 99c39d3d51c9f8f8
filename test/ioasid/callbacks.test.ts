// What a callback may call, deferred work and exceptions (docs/conformance.md §15.5).
import { describe, expect, it } from 'vitest';
import { errno, uapi, type Engine, type Process } from '../../src/index.js';
import { setupA } from '../accel/setup.js';

const { EDEADLK } = errno;
const INV = uapi.INVALID_IOASID;

/** Every call that refuses inside a callback, made from inside one, with what it must answer. */
function k1Calls(engine: Engine, P: Process, fd: number, handle: object, accel: ReturnType<Engine['createAccelerator']>) {
  const io = engine.ioasid;
  return {
    installCapacity: () => io.installCapacity(5),
    allocSystemSet: () => io.allocSystemSet(5),
    allocSet: () => io.allocSet('t', 5),
    alloc: () => io.alloc(0, 1, 10),
    free: () => io.free(1),
    freeSet: () => io.freeSet(0, false),
    adjustSet: () => io.adjustSet(0, 5),
    attachData: () => io.attachData(1, null),
    addNotifier: () => io.addNotifier(() => 0),
    removeNotifier: () => io.removeNotifier(() => 0),
    notify: () => io.notify(1, 3),
    bindDevice: () => engine.sva.bindDevice(accel, P),
    unbindDevice: () => engine.sva.unbindDevice(handle as never),
    open: () => P.open('/dev/zip-0'),
    ioctl: () => P.ioctl(fd, uapi.UACCE_CMD_START_Q),
    close: () => P.close(fd),
    mmapFd: () => P.mmapFd(fd, 0n, 4096),
    munmap: () => P.munmap(0n, 4096),
    exit: () => P.exit(),
    remove: () => accel.remove(),
  };
}

const WANT: Record<string, unknown> = { alloc: INV, mmapFd: -BigInt(EDEADLK) };

describe('mutating calls answer EDEADLK in every kind of callback', () => {
  it.each(['notifier', 'getter', 'observer'])('inside a %s', async (kind) => {
    const { engine, D1, D2, P1, V1 } = await setupA();
    const io = engine.ioasid;
    const fd = P1.open('/dev/sec-1'); // PASID 1
    const h = engine.sva.bindDevice(D2, P1) as object;
    const got: Record<string, unknown> = {};
    let allowed: unknown[] = [];
    const inside = () => {
      for (const [name, f] of Object.entries(k1Calls(engine, P1, fd, h, D2))) got[name] = f();
      allowed = [io.get(1), io.put(1), io.findSid(1), io.setInfo(0)!.used, io.queueWork(() => {}),
        P1.write(V1, new Uint8Array([9])), P1.read(V1, 1)[0], D2.dmaWrite(1, V1, new Uint8Array([8])),
        P1.softDirty(V1, 4096)[0], typeof P1.mmap(4096)];
    };
    if (kind === 'notifier') {
      io.addNotifier(() => inside(), { sid: 0 });
      expect(io.notify(1, 3)).toBe(0);
    } else if (kind === 'getter') {
      io.find(-1, 1, () => {
        inside();
        return true;
      });
    } else {
      const D3 = engine.createAccelerator({ name: 'obs', observe: () => inside() });
      expect(P1.open(D3.path)).toBeGreaterThan(0);
    }
    for (const [name, r] of Object.entries(got)) expect([name, r]).toEqual([name, WANT[name] ?? -EDEADLK]);
    expect(allowed).toEqual([0, 0, 0, 1, 0, undefined, 9, 0, 1, 'bigint']);
    expect(P1.exited).toBe(false);
    expect(D2.removed).toBe(false);
    expect(engine.sva.getPasid(h as never)).toBe(1);
  });
});

describe('references in a FREE, and the work queue', () => {
  it('a put inside the FREE of a referenced ID does not reclaim it until the free drops it', async () => {
    const { engine } = await setupA();
    const io = engine.ioasid;
    expect(io.allocSet('t', 5)).toBe(1);
    expect(io.alloc(1, 1, 5)).toBe(1);
    expect(io.get(1)).toBe(0);
    const seen: unknown[] = [];
    io.addNotifier(() => {
      seen.push(io.put(1), io.idInfo(1)?.state);
    });
    expect(io.free(1)).toBe(0);
    expect(seen).toEqual([0, 'free-pending']);
    expect(io.idInfo(1)).toBe(null);
  });

  it('the work queue is FIFO; work queued while draining runs in the same drain; nested calls do not drain', async () => {
    const { engine } = await setupA();
    const io = engine.ioasid;
    const order: string[] = [];
    expect(io.allocSet('t', 5)).toBe(1);
    io.addNotifier((e, a) => {
      order.push(`nb${e}:${a.id}`);
      io.queueWork(() => order.push(`w-after-${e}:${a.id}`));
    }, { sid: 1 });
    io.queueWork(() => order.push('top')); // a top-level queueWork is outermost: runs now
    expect(order).toEqual(['top']);
    order.length = 0;
    expect(io.queueWork(() => {
      order.push('A');
      expect(io.alloc(1, 1, 5)).toBe(1); // nested: its work waits for this drain
      order.push('A-end');
      io.queueWork(() => order.push('C'));
    })).toBe(0);
    expect(order).toEqual(['A', 'nb1:1', 'A-end', 'w-after-1:1', 'C']);
  });

  it('a throwing subscriber counts as NOTIFY_DONE; the outermost call completes, then rethrows', async () => {
    const { engine } = await setupA();
    const io = engine.ioasid;
    expect(io.allocSet('t', 5)).toBe(1);
    const calls: string[] = [];
    io.addNotifier(() => {
      calls.push('first');
      throw new Error('boom1');
    }, { sid: 1, priority: 5 });
    io.addNotifier(() => {
      calls.push('second');
      throw new Error('boom2');
    }, { sid: 1 });
    expect(() => io.alloc(1, 1, 5)).toThrow('boom1');
    expect(calls).toEqual(['first', 'second']);
    expect(io.idInfo(1)!.state).toBe('active');
    let inner: unknown;
    expect(() => io.queueWork(() => {
      inner = io.alloc(1, 1, 5);
    })).toThrow('boom1');
    expect(inner).toBe(2);
  });
});
