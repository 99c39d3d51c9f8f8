// Fail-the-Nth sweeps over the calls of a cdev KVM-VFIO association (docs/conformance.md §19.9,
// with a device cdev): for n = 1, 2, … the nth core allocation fails; a call that answers -ENOMEM
// has changed nothing (file KVM, entry references, binding, dev.kvm, VM users, iommufd objects,
// core heap).
import { describe, expect, it } from 'vitest';
import { errno } from '../../src/index.js';
import { CdevFile } from '../../src/iommufd/device.js';
import { attach, bind } from '../devdirty/helpers.js';
import { setupKC, type KC } from './setup_cdev.js';

const { ENOMEM } = errno;
type S = KC & { C: number };

/** Everything the calls could change, as plain data. */
function observe(s: S): unknown {
  const f = s.P.fds.get(s.C) instanceof CdevFile ? s.file(s.C) : null;
  const b = s.D.state.binding;
  return {
    fds: [...s.P.fds.keys()],
    file: f ? [f.kvm === s.kvm, f.kvmRefs] : null,
    binding: b ? [b.id, b.hwpt?.id ?? null, [...b.ctx.objects.keys()]] : null,
    devKvm: s.D.kvm === s.kvm,
    users: s.kvm.usersCount,
  };
}

/**
 * Sweeps `op` after `prep`: returns how many allocations it made before succeeding. `op` may
 * return a thunk: its own preparation (writing an argument to user memory) then runs unarmed.
 */
async function sweep(prep: (s: S) => void, op: (s: S) => number | (() => number), after: (s: S) => void): Promise<number> {
  for (let n = 1; n < 64; n++) {
    const kc = await setupKC();
    const s: S = { ...kc, C: kc.cdev() };
    prep(s);
    const call = op(s);
    const before = observe(s);
    const live = s.engine.core.x.heap_live();
    s.engine.failNthAllocation(n);
    const r = typeof call === 'number' ? call : call();
    s.engine.failNthAllocation(0);
    if (r === -ENOMEM) {
      expect(observe(s), `n=${n}`).toEqual(before);
      expect(s.engine.core.x.heap_live(), `n=${n}`).toBe(live);
      continue;
    }
    expect(r, `n=${n}`).toBeGreaterThanOrEqual(0);
    after(s);
    return n - 1;
  }
  throw new Error('the call never succeeded');
}

describe('fail-the-Nth: a device cdev as the KVM-VFIO file', () => {
  it('FILE_ADD: only the staging copy of the fd allocates', async () => {
    const n = await sweep(() => {}, (s) => s.attrCall(s.kv, 1, s.C), (s) => expect(observe(s)).toMatchObject({ file: [true, 1] }));
    expect(n).toBe(1);
  });

  it('BIND of an added cdev allocates nothing and takes the KVM', async () => {
    const n = await sweep((s) => expect(s.ADD(s.C)).toBe(0), (s) => bind(s.P, s.C, s.I),
      (s) => expect(observe(s)).toMatchObject({ devKvm: true, users: 3 }));
    expect(n).toBe(0);
  });

  it('IOAS_MAP into a dirty-tracking HWPT of a KVM-linked device: a failure keeps the link', async () => {
    const n = await sweep((s) => {
      expect(s.ADD(s.C)).toBe(0);
      expect(bind(s.P, s.C, s.I)).toBe(2);
      expect(s.fd.hwptAlloc(2, 2, s.ioas)).toBe(3);
      expect(attach(s.P, s.C, 3)).toBe(3);
    }, (s) => {
      const va = s.P.mmap(0x10000);
      return () => s.fd.map(s.ioas, 0x100000n, 0x10000n, va, 7).ret;
    }, (s) => expect(observe(s)).toMatchObject({ binding: [2, 3, [1, 2, 3]], devKvm: true }));
    expect(n).toBeGreaterThan(0);
  });

  it('ATTACH of a KVM-linked bound cdev to an IOAS (an automatic HWPT without dirty bits) allocates nothing', async () => {
    const n = await sweep((s) => {
      expect(s.ADD(s.C)).toBe(0);
      expect(bind(s.P, s.C, s.I)).toBe(2);
    }, (s) => attach(s.P, s.C, s.ioas), (s) => expect(observe(s)).toMatchObject({ binding: [2, 3, [1, 2, 3]], devKvm: true }));
    expect(n).toBe(0);
  });

  it('FILE_DEL allocates only the staging copy; the release nothing', async () => {
    const prep = (s: S): void => {
      expect(s.ADD(s.C)).toBe(0);
      expect(bind(s.P, s.C, s.I)).toBe(2);
      expect(attach(s.P, s.C, s.ioas)).toBe(3);
    };
    expect(await sweep(prep, (s) => s.attrCall(s.kv, 2, s.C), (s) => expect(observe(s)).toMatchObject({ file: [false, 0], devKvm: true }))).toBe(1);
    expect(await sweep((s) => {
      prep(s);
      expect(s.P.close(s.C)).toBe(0);
    }, (s) => s.P.close(s.kv), (s) => expect([s.D.kvm, s.D.state.binding, s.kvm.usersCount]).toEqual([null, null, 1]))).toBe(0);
  });
});
