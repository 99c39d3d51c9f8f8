// Seeded random operations on device cdev files as KVM-VFIO tokens, against a plain model of the
// KVM-VFIO rules (docs/conformance.md §19.9): open and close cdev fds, FILE_ADD, FILE_DEL, BIND,
// close and re-create the KVM-VFIO device. After every step: the answer, dev.kvm, the unlink calls,
// the VM's users and the binding agree with the model.
import { describe, expect, it } from 'vitest';
import { errno, type Kvm } from '../../src/index.js';
import { bind } from '../devdirty/helpers.js';
import { rng } from '../helpers/rng.js';
import { newKvmVfio, setupKC } from './setup_cdev.js';

/** A cdev file in the model. */
interface MFile {
  fd: number | null;
  entry: boolean;
  kvm: boolean;
  bound: boolean;
}

async function run(seed: number, steps: number): Promise<void> {
  const s = await setupKC();
  const r = rng(seed);
  const files: MFile[] = [];
  let entries: MFile[] = []; // list order of the KVM-VFIO device
  let kvOpen = true;
  let devKvm = false;
  let unlinks = 0;
  let expectedUnlinks = 0;
  s.D.registerKvmUnlink((v: Kvm) => {
    expect(v).toBe(s.kvm);
    unlinks++;
  });
  const withFd = (): MFile | undefined => {
    const open = files.filter((f) => f.fd !== null);
    return open.length ? open[r(open.length)] : undefined;
  };
  /** The file's KVM is cleared: its bound device is told when it holds the VM. */
  const clearKvm = (f: MFile): void => {
    if (f.kvm && f.bound && devKvm) expectedUnlinks++;
    f.kvm = false;
  };
  /** Nothing holds the file any more: a bound one unbinds and its device drops the VM. */
  const releaseIfUnused = (f: MFile): void => {
    if (f.fd !== null || f.entry) return;
    if (f.bound) {
      f.bound = false;
      devKvm = false;
    }
    files.splice(files.indexOf(f), 1);
  };
  for (let step = 0; step < steps; step++) {
    const op = r(6);
    const f = withFd();
    const ctx = `seed ${seed} step ${step} op ${op}`;
    if (op === 0 && files.length < 3) {
      const fd = s.cdev();
      expect(fd, ctx).toBeGreaterThan(0);
      files.push({ fd, entry: false, kvm: false, bound: false });
    } else if (op === 1 && f) {
      expect(s.P.close(f.fd!), ctx).toBe(0);
      f.fd = null;
      releaseIfUnused(f);
    } else if (op === 2 && f && kvOpen) {
      expect(s.ADD(f.fd!), ctx).toBe(f.entry ? -errno.EEXIST : 0);
      if (!f.entry) {
        f.entry = true;
        f.kvm = true;
        entries.push(f);
      }
    } else if (op === 3 && f && kvOpen) {
      expect(s.DEL(f.fd!), ctx).toBe(f.entry ? 0 : -errno.ENOENT);
      if (f.entry) {
        entries = entries.filter((x) => x !== f);
        clearKvm(f);
        f.entry = false;
      }
    } else if (op === 4 && f) {
      const other = files.some((x) => x.bound);
      const want = f.bound || other ? -errno.EINVAL : 0;
      const got = bind(s.P, f.fd!, s.I);
      expect(got < 0 ? got : 0, ctx).toBe(want);
      if (want === 0) {
        f.bound = true;
        devKvm = f.kvm;
      }
    } else if (op === 5) {
      if (kvOpen) {
        expect(s.P.close(s.kv), ctx).toBe(0);
        kvOpen = false;
        for (const e of entries) {
          clearKvm(e);
          e.entry = false;
          releaseIfUnused(e);
        }
        entries = [];
      } else {
        s.kv = newKvmVfio(s);
        kvOpen = true;
      }
    }
    expect(s.D.kvm, ctx).toBe(devKvm ? s.kvm : null);
    expect(unlinks, ctx).toBe(expectedUnlinks);
    expect(s.kvm.usersCount, ctx).toBe(1 + (kvOpen ? 1 : 0) + (devKvm ? 1 : 0));
    expect(s.D.state.binding !== null, ctx).toBe(files.some((x) => x.bound));
    expect(s.P.open(`/dev/vfio/${s.G.id}`) === -errno.EBUSY, ctx).toBe(files.some((x) => x.bound));
    for (const fd of [...s.P.fds.keys()]) if (s.P.fds.get(fd)?.kind === 'vfio-group') s.P.close(fd);
  }
}

describe('random operations on cdev KVM-VFIO files against the model', () => {
  it('16 seeds × 300 operations agree with the model', async () => {
    for (let seed = 1; seed <= 16; seed++) await run(seed * 104729, 300);
  });

});
