// A short run of every benchmark group, so the benchmarks keep working as the code changes. It
// checks that each group measures its cases and its baseline, not speed (speed is for `npm run
// bench`, never for tests).
import { describe, expect, it } from 'vitest';
import { runBenchmarks } from '../bench/run.js';

describe('benchmarks (smoke run)', () => {
  it('every group runs in quick mode and reports a ratio for each case', async () => {
    const log = console.log;
    console.log = () => {};
    try {
      const results = await runBenchmarks(['--quick']);
      expect(results.length).toBeGreaterThanOrEqual(10);
      // The KVM groups (bench/kvm.bench.ts): dirty log, ring harvest, guest stores.
      expect(results.filter((r) => r.group.startsWith('kvm:')).length).toBe(3);
      for (const r of results) {
        expect(r.cases.length, r.group).toBeGreaterThan(0);
        for (const c of r.cases) {
          expect(Number.isFinite(c.mean) && c.mean > 0, `${r.group}: ${c.name}`).toBe(true);
          expect(Number.isFinite(c.ratio), `${r.group}: ${c.name}`).toBe(true);
        }
      }
    } finally {
      console.log = log;
    }
  }, 240_000);
});
