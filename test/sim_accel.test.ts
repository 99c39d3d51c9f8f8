// The shared accelerator's blind spot, with exact counts: its writes by PASID reach guest RAM but
// no harvest (GET_BITMAP merged with the CPU log) reports them; the mark-buffers fallback makes
// every harvest carry the buffers, at the cost of sending them every round.
import { describe, expect, it } from 'vitest';
import { createEngine } from '../src/index.js';
import { defaultConfig } from '../src/cli/options.js';
import type { SimConfig } from '../src/sim/config.js';
import { simulate } from '../src/sim/simulator.js';
import type { AccelFallback } from '../src/sim/accel_workload.js';

const MiB = 2 ** 20;

/**
 * 64 MiB of low RAM, no vGPU, no CPU writes, a 64 MiB/s link: the bulk round takes 16384 x 4104
 * / 2^26 = 1.001953125 s, in which the accelerator (16 MiB/s, 256 jobs of 64 KiB a second) runs
 * floor(256 x 1.001953125) = 256 jobs over 4 MiB of buffers (64 chunks): every buffer page.
 */
function config(fallback: AccelFallback, o: Partial<SimConfig> = {}): SimConfig {
  return {
    ...defaultConfig(), memory: 64 * MiB, lowMemory: 64 * MiB, vgpu: false, dirtyRate: 0, zeroFraction: 0, bandwidth: 64 * MiB,
    accelerator: { enabled: true, rate: 16 * MiB, buffers: 4 * MiB, fallback }, ...o,
  };
}

describe('an SVA accelerator writing guest RAM by PASID', () => {
  it('writes 1024 pages no harvest sees: the migration converges at once and loses them', async () => {
    const s = simulate(await createEngine(), config('none')).summary;
    expect(s.roundsDetail.map((r) => [r.phase, r.dirtyPages, r.accelPages, r.accelUnseen])).toEqual([
      ['bulk', 16384, 0, 0], ['stop-copy', 0, 1024, 1024],
    ]);
    expect(s.accelerator).toEqual({ pasid: 1, jobs: 256, fallback: 'none', pagesWritten: 1024, unseenAtEnd: 1024, lost: 1024 });
  });

  it('with mark-buffers, sends the buffers in the harvest and loses nothing', async () => {
    const s = simulate(await createEngine(), config('mark-buffers')).summary;
    // Harvest 1 carries the 1024 buffer pages: 4 MiB <= 300 ms x 64 MiB/s, stop-copy.
    expect(s.roundsDetail.map((r) => [r.phase, r.dirtyPages, r.accelPages, r.accelUnseen])).toEqual([
      ['bulk', 16384, 0, 0], ['stop-copy', 1024, 1024, 0],
    ]);
    expect(s.accelerator).toMatchObject({ jobs: 256, pagesWritten: 1024, unseenAtEnd: 0, lost: 0 });
    expect(s.roundsDetail[1].bytesSent).toBe(1024 * 4104);
  });

  it('with mark-buffers and a tight limit, pays with the buffers every round', async () => {
    // A 10 ms limit (671,088 bytes, 163 pages): 1024 marked pages never fit. Round 1 sends them in
    // 1024 x 4104 / 2^26 s, in which floor(256 x (t0 + t1)) - 256 = 16 jobs write 256 pages.
    const s = simulate(await createEngine(), config('mark-buffers', { downtimeLimit: 0.01, maxRounds: 3 })).summary;
    const t0 = (16384 * 4104) / (64 * MiB);
    const t1 = (1024 * 4104) / (64 * MiB);
    expect(Math.floor(256 * (t0 + t1)) - 256).toBe(16);
    expect(s.roundsDetail.map((r) => [r.phase, r.dirtyPages, r.accelPages, r.accelUnseen])).toEqual([
      ['bulk', 16384, 0, 0], ['precopy', 1024, 1024, 0], ['precopy', 1024, 256, 0], ['unconverged', 1024, 256, 0],
    ]);
    expect(s.converged).toBe(false);
    const none = simulate(await createEngine(), config('none', { downtimeLimit: 0.01, maxRounds: 3 })).summary;
    expect(none.converged).toBe(true);
    expect(none.accelerator!.lost).toBe(1024);
  });

  it('counts a buffer page the CPU also wrote as seen', async () => {
    // A sweep at 64 MiB/s covers the whole guest in the bulk round: harvest 1 reports every page,
    // the buffers included, so nothing the accelerator wrote is unseen.
    const s = simulate(await createEngine(), config('none', { dirtyRate: 64 * MiB, workload: 'sweep', maxRounds: 1 })).summary;
    expect(s.roundsDetail[1]).toMatchObject({ dirtyPages: 16384, accelPages: 1024, accelUnseen: 0 });
  });
});
