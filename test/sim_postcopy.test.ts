// Postcopy as a comparison, on a case worked out by hand: the stop is the device's stop-copy data
// alone, the dirty pages are streamed, and the guest's writes to pages not yet streamed fault.
import { describe, expect, it } from 'vitest';
import { createEngine } from '../src/index.js';
import { defaultConfig } from '../src/cli/options.js';
import type { SimConfig } from '../src/sim/config.js';
import { simulate } from '../src/sim/simulator.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

/** 1 GiB, no vGPU, the sweep rewriting all RAM every round (it never converges in pre-copy). */
function config(o: Partial<SimConfig> = {}): SimConfig {
  return {
    ...defaultConfig(), memory: GiB, vgpu: false, workload: 'sweep', zeroFraction: 0, bandwidth: GiB, dirtyRate: GiB,
    postcopyAfter: 2, postcopyRtt: 1e-4, ...o,
  };
}

describe('postcopy after N rounds', () => {
  it('streams the dirty pages while the sweep faults on the ones ahead of the stream', async () => {
    // Harvest 2 finds all 262,144 pages dirty: postcopy, with 8 MiB of device stop-copy data as the
    // downtime. The stream sends the pages in order in 262144 x 4104 / 2^30 = 1.001953125 s, in
    // 11 steps of --step 100 ms. The sweep (262,144 pages/s) wrote floor(262144 x 2.00390625) =
    // 525,312 pages in two rounds: two laps and 1024, so its cursor is at page 1024, ahead of the
    // stream, and stays ahead (it gains 46 pages a step): each page it writes up to the end of RAM
    // is missing, 262,144 - 1024 = 261,120 faults. Then it wraps to pages 0 .. 1535, which the
    // stream has sent by then: no fault. (It writes 787,968 - 525,312 = 262,656 pages in all.)
    const dev = { precopyInitial: 0, precopyDirtyRate: 0, stopCopy: 8 * MiB };
    const s = simulate(await createEngine(), config({ deviceState: dev })).summary;
    expect(s.roundsDetail.map((r) => r.phase)).toEqual(['bulk', 'precopy', 'postcopy']);
    const streamS = (262144 * 4104) / GiB;
    expect(s.postcopy).toMatchObject({ round: 2, pages: 262144, streamS });
    expect(s.downtimeS).toBe((8 * MiB) / GiB);
    expect(s.migrate.downtimeS).toBe((8 * MiB) / GiB);
    expect(s.migrate.downtimeBytes).toBe(8 * MiB);
    expect(s.migrate.postcopyBytes).toBe(262144 * 4104);
    expect(s.migrate.status).toBe('completed');
    const faults = s.postcopy!.faults;
    expect(s.postcopy!.waitS).toBe(faults * (1e-4 + 4104 / GiB));
    expect(faults).toBe(262144 - 1024);
    expect(Math.floor(262144 * 2 * 1.001953125)).toBe(2 * 262144 + 1024);
  });

  it('has no faults when the guest does not write', async () => {
    const s = simulate(await createEngine(), config({ dirtyRate: 0, downtimeLimit: 0.001, postcopyAfter: 1, vgpu: true, vgpuRegion: 64 * MiB, vgpuPinned: 16 * MiB, vgpuChurn: 0, vgpuDmaRate: 0 })).summary;
    // The vGPU's 4096 pinned pages are dirty at every harvest: streamed, never written by the guest.
    expect(s.postcopy).toMatchObject({ round: 1, pages: 4096, faults: 0, waitS: 0 });
  });
});
