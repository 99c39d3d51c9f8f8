// Seeded random operations on the engine and on the plain-TS model of the IOASID rules
// (test/ioasid/ model.ts): every result, every notification and the whole observable state agree
// after each step. Also the safety property of docs/conformance.md §16.8: no PASID is handed out
// again while a queue, a bond or a reference still holds it.
import { describe, expect, it } from 'vitest';
import { createEngine, type Process, type SvaHandle } from '../../src/index.js';
import { rng } from '../helpers/rng.js';
import { Model, RESULT, type Ev } from './model.js';

const CAP = 60;
const SYSQ = 12;
const MAXP = 24;
const QUEUES = 3;
const NPROC = 3;
const IDS = 48;

async function run(seed: number, steps: number) {
  const e = await createEngine({ ioasidCapacity: CAP, ioasidSystemQuota: SYSQ });
  const io = e.ioasid;
  const D = e.createAccelerator({ queues: QUEUES, maxPasids: MAXP });
  const m = new Model(CAP, SYSQ, MAXP, QUEUES);
  const log: Ev[] = [];
  const tag = new Map<object, string>();
  const subs: Record<string, (ev: number, a: { id: number; sid: number; pdata: object | null }) => number | void> = {};
  for (const name of ['a', 'b', 'c']) {
    subs[name] = (ev, a) => {
      log.push([name, ev, a.id, a.sid, a.pdata === null ? 'null' : tag.get(a.pdata) ?? '?']);
      return RESULT[name];
    };
  }
  // Process slots: k -> the live engine process (a fresh one replaces an exited one).
  const procs: Process[] = [];
  const handles = new Map<number, SvaHandle>();
  let generation = 0;
  const fresh = (k: number) => {
    const p = e.createProcess();
    procs[k] = p;
    tag.set(p, `P${generation * NPROC + k}`);
    return p;
  };
  const modelKey = new Map<Process, number>();
  for (let k = 0; k < NPROC; k++) modelKey.set(fresh(k), k);
  const refs = new Map<number, number>(); // get() references the test holds, by id
  const r = rng(seed);
  const sid = () => r(8) - 1;
  const id = () => r(IDS);

  /** IDs a queue, a bond or a test reference holds now. */
  const held = () => {
    const h = new Set<number>(D.queues().map((q) => q.pasid));
    for (const [i, n] of refs) if (n > 0) h.add(i);
    for (const [, hd] of handles) if (e.sva.getPasid(hd) >= 0) h.add(e.sva.getPasid(hd));
    for (const p of procs) if (!p.exited && e.sva.pasidOf(p) !== 0xffff_ffff) h.add(e.sva.pasidOf(p));
    return h;
  };
  for (let step = 0; step < steps; step++) {
    const op = r(17);
    const heldBefore = held();
    const pasidsBefore = procs.map((p) => e.sva.pasidOf(p));
    const k = r(NPROC);
    const P = procs[k];
    const mk = modelKey.get(P)!;
    let got: unknown;
    let want: unknown;
    switch (op) {
      case 0: {
        const q = r(7) - 1;
        got = io.allocSet(`T${step}`, q);
        want = m.allocSet(`T${step}`, q);
        break;
      }
      case 1: {
        const s = sid();
        const q = r(9) - 1;
        got = io.adjustSet(s, q);
        want = m.adjustSet(s, q);
        break;
      }
      case 2: {
        const s = sid();
        const d = r(2) === 0;
        got = io.freeSet(s, d);
        want = m.freeSet(s, d);
        break;
      }
      case 3:
      case 4: {
        const s = sid();
        const min = r(IDS);
        const max = min + r(12) - 2;
        got = io.alloc(s, min, Math.max(0, max));
        want = m.alloc(s, min, Math.max(0, max), null);
        break;
      }
      case 5: {
        const i = id();
        const s = r(3) === 0 ? sid() : -1;
        got = io.free(i, s);
        want = m.free(i, s);
        break;
      }
      case 6: {
        const i = id();
        got = io.get(i);
        want = m.get(i, -1);
        if (got === 0) refs.set(i, (refs.get(i) ?? 0) + 1);
        break;
      }
      case 7: {
        const i = id();
        got = io.put(i);
        want = m.put(i, -1);
        if (typeof got === 'number' && got >= 0) refs.set(i, refs.get(i)! - 1);
        break;
      }
      case 8: {
        const name = 'abc'[r(3)];
        const pr = r(4);
        const s = sid();
        got = io.addNotifier(subs[name], { priority: pr, sid: s });
        want = m.addNotifier(name, pr, s);
        break;
      }
      case 9: {
        const name = 'abc'[r(3)];
        const s = sid();
        got = io.removeNotifier(subs[name], { sid: s });
        want = m.removeNotifier(name, s);
        break;
      }
      case 10: {
        const i = id();
        const cmd = 2 + r(4);
        got = io.notify(i, cmd);
        want = m.notify(i, cmd);
        break;
      }
      case 11:
        got = P.exited ? 'exited' : P.open(D.path);
        want = P.exited ? 'exited' : m.open(mk);
        break;
      case 12:
      case 13:
      case 14: {
        if (P.exited) break;
        const fds = [...P.fds.keys()];
        if (!fds.length) break;
        const fd = fds[r(fds.length)];
        if (op === 12) [got, want] = [P.ioctl(fd, 0x5700), m.start(mk, fd)];
        else if (op === 13) [got, want] = [P.ioctl(fd, 0x5701), m.putQ(mk, fd)];
        else [got, want] = [P.close(fd), m.close(mk, fd)];
        break;
      }
      case 15: {
        if (r(2) === 0) {
          const h = e.sva.bindDevice(D, P);
          if (typeof h !== 'number') handles.set(mk, h);
          got = typeof h === 'number' ? h : 0;
          want = m.bindApi(mk);
        } else {
          const h = handles.get(mk);
          if (!h) break;
          got = e.sva.unbindDevice(h);
          want = m.unbindApi(mk);
        }
        break;
      }
      case 16: {
        if (P.exited || r(3) !== 0) break;
        got = P.exit();
        m.exit(mk);
        want = 0;
        generation++;
        const np = fresh(k);
        modelKey.set(np, NPROC * generation + k);
        break;
      }
    }
    const ctx = `seed ${seed} step ${step} op ${op}`;
    // No PASID reused while held: what this step handed out was held by nobody before it.
    if ((op === 3 || op === 4) && got !== 0xffff_ffff) expect(heldBefore.has(got as number), ctx).toBe(false);
    procs.forEach((p, i) => {
      const now = e.sva.pasidOf(p);
      if (now !== 0xffff_ffff && now !== pasidsBefore[i]) expect(heldBefore.has(now), ctx).toBe(false);
    });
    expect(got, ctx).toEqual(want);
    expect(log, ctx).toEqual(m.log);
    // The whole observable state.
    expect(io.getAvailable(), ctx).toBe(m.avail);
    let quotas = 0; // capacity = avail + the quotas of every set
    for (let s = 0; s < CAP; s++) quotas += io.setInfo(s)?.quota ?? 0;
    expect(io.getAvailable() + quotas, ctx).toBe(CAP);
    for (let s = -1; s < 8; s++) {
      const info = io.setInfo(s);
      const ms = m.sets.get(s);
      expect(info && [info.quota, info.used, info.destroying, info.owner], ctx)
        .toEqual(ms ? [ms.quota, ms.members.size, ms.destroying, ms.owner] : null);
    }
    for (let i = 0; i < IDS; i++) {
      const info = io.idInfo(i);
      const mi = m.ids.get(i);
      expect(info && [info.sid, info.state, info.users, info.owner], `${ctx} id ${i}`)
        .toEqual(mi ? [mi.sid, mi.pending ? 'free-pending' : 'active', mi.users, mi.owner] : null);
    }
    expect(D.queues().map((q) => [q.qid, q.pasid, q.state]), ctx)
      .toEqual(m.hw.flatMap((q) => (q ? [[q.qid, q.pasid, q.state]] : [])));
    // Never reused while held, never lost: every PASID a queue, a bond or a test reference holds is still allocated, and
    // held by the process it was given to.
    for (const q of D.queues()) expect(io.idInfo(q.pasid)?.pdata, ctx).toBe(q.proc);
    for (const [i, n] of refs) if (n > 0) expect(io.idInfo(i), `${ctx} ref ${i}`).not.toBe(null);
    for (const [, h] of handles) {
      const p = e.sva.getPasid(h);
      if (p >= 0) expect(io.idInfo(p)?.owner, ctx).toBe('sva');
    }
  }
}

describe('random operations against the model of the IOASID rules', () => {
  it.each([1, 2, 3, 4, 5, 6])('seed %i: 1500 steps agree', async (seed) => {
    await run(seed, 1500);
  });
});
