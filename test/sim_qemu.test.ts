// The simulator as QEMU counts: the `info migrate` figures checked against their definitions on
// a small run, zero pages and VFIO device state in the transfer arithmetic and the switch-over
// rule, and the convergence aids (auto-converge, tailslow, dirty-limit) on cases worked out by
// hand, first on the rule alone, then on real engine runs.
import { describe, expect, it } from 'vitest';
import { createEngine } from '../src/index.js';
import { defaultConfig } from '../src/cli/options.js';
import type { SimConfig, ThrottleConfig } from '../src/sim/config.js';
import { simulate } from '../src/sim/simulator.js';
import { Throttle } from '../src/sim/throttle.js';
import { NORMAL_PAGE_WIRE, ZERO_PAGE_WIRE, ramWireBytes } from '../src/sim/transfer.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const WIRE = 4104;

/** 1 GiB, no vGPU, no zero RAM, a sweep: only the CPU dirty log dirties pages. */
function config(o: Partial<SimConfig> = {}): SimConfig {
  const d = defaultConfig();
  return { ...d, memory: GiB, vgpu: false, workload: 'sweep', zeroFraction: 0, bandwidth: GiB, dirtyRate: 512 * MiB, downtimeLimit: 0.3, ...o };
}

async function run(c: SimConfig) {
  return simulate(await createEngine(), c).summary;
}

describe('the wire', () => {
  it('sends a normal page as an 8-byte header and 4 KiB, a zero page as its header and one byte', () => {
    expect([NORMAL_PAGE_WIRE, ZERO_PAGE_WIRE]).toEqual([4104, 9]);
    expect(ramWireBytes(3, 2)).toBe(3 * 4104 + 2 * 9);
  });

  it('sends the zero share of RAM as headers in the bulk round and counts it as duplicate', async () => {
    // 1 GiB with a quarter zero: 65,536 zero pages of 9 bytes and 196,608 normal ones of 4104.
    const s = await run(config({ zeroFraction: 0.25, dirtyRate: 0 }));
    const bulk = s.roundsDetail[0];
    expect([bulk.zeroPages, bulk.normalPages, bulk.pagesSent]).toEqual([65536, 196608, 262144]);
    expect(bulk.bytesSent).toBe(196608 * 4104 + 65536 * 9);
    expect(bulk.durationS).toBe((196608 * 4104 + 65536 * 9) / GiB);
    expect(s.migrate.duplicatePages).toBe(65536);
    expect(s.migrate.normalPages).toBe(196608);
    expect(s.migrate.transferredBytes).toBe(196608 * 4104 + 65536 * 9);
  });
});

describe('info migrate', () => {
  it('gives each figure by its definition on the run worked out by hand', async () => {
    // sim.test.ts works this run out: 262,144 then 131,328 pages sent while the guest runs, 65,792
    // with it stopped; rounds of (pages x 4104) / 2^30 s.
    const s = await run(config());
    const m = s.migrate;
    const [t0, t1, t2] = [262144, 131328, 65792].map((p) => (p * WIRE) / GiB);
    const total = t0 + t1 + t2;
    expect(m.status).toBe('completed');
    expect(m.setupTimeS).toBe(0);
    expect(m.totalTimeS).toBe(total);
    expect(m.downtimeS).toBe(t2);
    expect(m.expectedDowntimeS).toBe((65792 * 4096) / GiB);
    expect(m.transferredBytes).toBe((262144 + 131328 + 65792) * WIRE);
    expect(m.remainingBytes).toBe(0);
    expect(m.totalBytes).toBe(GiB);
    expect([m.duplicatePages, m.normalPages, m.normalBytes]).toEqual([0, 459264, 459264 * 4096]);
    expect(m.mbps).toBeCloseTo((m.transferredBytes * 8) / total / 1e6, 9);
    expect(m.mbps).toBeCloseTo((GiB * 8) / 1e6, 9); // the link is never idle
    expect(m.pagesPerSecond).toBe(459264 / total);
    // Periods close at syncs more than 1 s apart: the first at 1.00195 s (131,328 pages); the
    // second sync comes 0.5 s later and leaves the period open.
    expect(m.dirtyPagesRate).toBe(131328 / t0);
    expect(m.dirtySyncCount).toBe(3); // the set-up's, then two harvests
    expect(m.precopyBytes).toBe((262144 + 131328) * WIRE);
    expect(m.downtimeBytes).toBe(65792 * WIRE);
    expect(m.thresholdBytes).toBe(0.3 * GiB);
    expect(s.roundsDetail.map((r) => r.transferredBytes)).toEqual([262144 * WIRE, (262144 + 131328) * WIRE, m.transferredBytes]);
    expect(s.roundsDetail.map((r) => r.dirtySyncCount)).toEqual([1, 2, 3]);
  });

  it('reports an unconverged run as active, with the RAM left and no downtime', async () => {
    const s = await run(config({ dirtyRate: GiB, maxRounds: 2 }));
    expect(s.migrate.status).toBe('active');
    expect(s.migrate.downtimeS).toBeNull();
    expect(s.migrate.remainingBytes).toBe(GiB);
    expect(s.migrate.downtimeBytes).toBe(0);
    expect(s.migrate.precopyBytes).toBe(s.migrate.transferredBytes);
  });
});

describe('VFIO device state', () => {
  it('counts stop_copy_length in the switch-over rule and sends it in the downtime', async () => {
    // Without device state harvest 2 (65,792 pages, 257 MiB) fits in 300 ms x 1 GiB/s = 307.2
    // MiB. A device with 64 MiB of stop-copy data makes it 321 MiB pending: one more round,
    // sending those pages in (65792 x 4104) / 2^30 s, by whose end the sweep has dirtied
    // floor(131072 x t3) - 197120 more; those and the 64 MiB go with the guest stopped.
    const dev = { precopyInitial: 0, precopyDirtyRate: 0, stopCopy: 64 * MiB };
    const s = await run(config({ deviceState: dev }));
    expect(s.roundsDetail.map((r) => r.phase)).toEqual(['bulk', 'precopy', 'precopy', 'stop-copy']);
    const r2 = s.roundsDetail[2];
    expect(r2.pendingBytes).toBe(65792 * 4096 + 64 * MiB);
    expect(r2.deviceBytes).toBe(0);
    const t3 = r2.startS + (65792 * WIRE) / GiB;
    const p3 = Math.floor(131072 * t3) - 197120;
    const last = s.roundsDetail[3];
    expect(last.dirtyPages).toBe(p3);
    expect(last.deviceBytes).toBe(64 * MiB);
    expect(last.bytesSent).toBe(p3 * WIRE + 64 * MiB);
    expect(s.downtimeS).toBe((p3 * WIRE + 64 * MiB) / GiB);
    expect(s.migrate.downtimeBytes).toBe(p3 * WIRE + 64 * MiB);
  });

  it('sends initial_bytes in the bulk round and the dirty_bytes grown since each sync in the next round', async () => {
    // 16 MiB of initial data lengthens the bulk round; the device dirties 8 MiB/s of pre-copy data.
    const dev = { precopyInitial: 16 * MiB, precopyDirtyRate: 8 * MiB, stopCopy: 0 };
    const s = await run(config({ deviceState: dev, dirtyRate: 0 }));
    const bulk = s.roundsDetail[0];
    expect(bulk.deviceBytes).toBe(16 * MiB);
    expect(bulk.bytesSent).toBe(262144 * WIRE + 16 * MiB);
    const h1 = s.roundsDetail[1];
    expect(h1.devicePendingBytes).toBe(Math.floor(8 * MiB * bulk.durationS));
    expect(h1.pendingBytes).toBe(h1.devicePendingBytes); // no RAM dirty
    expect(h1.phase).toBe('stop-copy');
  });

  it('never converges when stop_copy_length alone is over the threshold', async () => {
    const s = await run(config({ deviceState: { precopyInitial: 0, precopyDirtyRate: 0, stopCopy: 400 * MiB }, dirtyRate: 0, maxRounds: 3 }));
    expect(s.converged).toBe(false);
    expect(s.roundsDetail.slice(1).map((r) => [r.dirtyPages, r.pendingBytes])).toEqual([[0, 400 * MiB], [0, 400 * MiB], [0, 400 * MiB]]);
  });
});

const AC: ThrottleConfig = { autoConverge: true, initial: 20, increment: 10, max: 99, tailslow: false, triggerThreshold: 50, dirtyLimit: false, vcpuDirtyLimit: MiB };

describe('the throttle rule (migration_trigger_throttle)', () => {
  it('steps on the second period over the threshold, and a period under it does not reset the count', () => {
    const t = new Throttle(AC, 4, GiB);
    // 1000 bytes sent per period: the threshold is 500 bytes; 1 page (4096) is over, 0 under.
    const steps = [
      t.sync(1.5, 1, 1000), // over: count 1
      t.sync(3, 0, 2000), // under: count stays 1
      t.sync(4.5, 1, 3000), // over: count 2 -> 20 %
      t.sync(6, 1, 4000), // count 1
      t.sync(7.5, 1, 5000), // count 2 -> 30 %
    ];
    expect(steps).toEqual(['none', 'none', 'throttle', 'none', 'throttle']);
    expect(t.pct).toBe(30);
    expect(t.scale).toBeCloseTo(0.7, 12);
  });

  it('closes a period only at a sync more than 1 s after the last close, summing its syncs', () => {
    const t = new Throttle(AC, 4, GiB);
    expect(t.sync(0.5, 10, 100)).toBe('none'); // not closed: 10 pages carried
    expect(t.dirtyPagesRate).toBe(0);
    t.sync(1, 10, 200); // exactly 1 s: still open
    t.sync(2, 20, 300); // closes: 40 pages in 2 s
    expect(t.dirtyPagesRate).toBe(20);
  });

  it('caps at max-cpu-throttle and clamps to 1..99', () => {
    const t = new Throttle({ ...AC, initial: 60, increment: 30, max: 80 }, 4, GiB);
    for (let i = 1; i <= 6; i++) t.sync(1.5 * i, 1, 1000 * i);
    expect(t.pct).toBe(80); // 60, then 90 capped at 80, then 80
  });

  it('with tailslow, raises by the smaller of the increment and the step to the ideal share', () => {
    // One page (4096 bytes) dirty a period. Against 4096 bytes sent (threshold 2048): cpu now 80,
    // ideal trunc(80 x 0.5) = 40, step min(40, 10) = 10. Against 7450 sent (threshold 3725):
    // ideal trunc(80 x 3725 / 4096) = trunc(72.75) = 72, step min(8, 10) = 8.
    const a = new Throttle({ ...AC, tailslow: true }, 4, GiB);
    a.sync(1.5, 1, 4096);
    a.sync(3, 1, 8192); // 20 %
    a.sync(4.5, 1, 12288);
    a.sync(6, 1, 16384); // 30 %
    expect(a.pct).toBe(30);
    const b = new Throttle({ ...AC, tailslow: true }, 4, GiB);
    b.sync(1.5, 1, 7450);
    b.sync(3, 1, 14900); // 20 %
    b.sync(4.5, 1, 22350);
    b.sync(6, 1, 29800); // 20 + 8
    expect(b.pct).toBe(28);
  });

  it('with dirty-limit, caps the guest at vCPUs x the limit once, on the same trigger', () => {
    const t = new Throttle({ ...AC, autoConverge: false, dirtyLimit: true, vcpuDirtyLimit: 16 * MiB }, 4, 256 * MiB);
    expect([t.sync(1.5, 1, 1000), t.sync(3, 1, 2000), t.sync(4.5, 1, 3000), t.sync(6, 1, 4000)]).toEqual(['none', 'limit', 'none', 'none']);
    expect(t.guestLimit).toBe(64 * MiB);
    expect(t.scale).toBe(0.25);
    expect(t.pct).toBe(0);
  });
});

describe('convergence aids on the engine', () => {
  it('makes a guest that dirties as fast as the link converge with auto-converge', async () => {
    // The sweep rewrites all RAM every round: never converges without help (sim.test.ts). With
    // auto-converge: syncs 1 and 2 close 1 s periods over the threshold -> 20 % from round 2, so
    // the guest writes floor(0.8 x 262144 x 1.001953125) = 210,124 pages in it; each later round is
    // shorter. The period from sync 3 (3.006 s) stays open at sync 4 (3.809 s) and closes at sync 5
    // (4.453 s), the second over: 30 %. Rounds shrink by ~0.7 until 257 MiB fit in 300 ms.
    const s = await run(config({ dirtyRate: GiB, throttle: AC }));
    expect(s.roundsDetail.map((r) => r.throttlePct)).toEqual([0, 0, 20, 20, 20, 30, 30, 30]);
    expect(s.roundsDetail[3].dirtyPages).toBe(Math.floor(0.8 * 262144 * 1.001953125));
    expect(s.converged).toBe(true);
    expect(s.roundsDetail.at(-1)!.phase).toBe('stop-copy');
    expect(s.migrate.cpuThrottlePercentage).toBe(30);
    const without = await run(config({ dirtyRate: GiB }));
    expect(without.converged).toBe(false);
  });

  it('makes it converge with dirty-limit: 4 vCPUs at 32 MiB/s', async () => {
    // Triggered at sync 2 as above; from round 2 the guest writes 128 MiB/s: harvest 3 finds
    // floor(32768 x 1.001953125) = 32,832 pages, 128.25 MiB: stop-copy.
    const s = await run(config({ dirtyRate: GiB, throttle: { ...AC, autoConverge: false, dirtyLimit: true, vcpuDirtyLimit: 32 * MiB } }));
    expect(s.roundsDetail.map((r) => [r.phase, r.dirtyLimit])).toEqual([
      ['bulk', 0], ['precopy', 0], ['precopy', 128 * MiB], ['stop-copy', 128 * MiB],
    ]);
    expect(s.roundsDetail[3].dirtyPages).toBe(32832);
  });
});
