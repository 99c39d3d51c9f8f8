// vfio-dirty dirty-rate: QEMU's three modes on small seeded guests, each estimate checked against
// what it must be (the hashes of the sampled pages that were written, the ring entries per vCPU,
// the pages of the dirty log), the truth, the output fields, and the options' errors.
import { describe, expect, it } from 'vitest';
import { createEngine } from '../src/index.js';
import { dirtyRateCommand, formatDirtyRate, parseDirtyRateOptions, type DirtyRateOptions } from '../src/cli/dirty_rate.js';
import { GuestLayout } from '../src/sim/guest_layout.js';
import { measureDirtyRate, pagesToRate, samplePages, type DirtyRateResult } from '../src/sim/dirty_rate.js';

const MiB = 2 ** 20;

async function measure(argv: string[]): Promise<DirtyRateResult> {
  const o = parseDirtyRateOptions(argv);
  return measureDirtyRate(await createEngine(), o.config, o.request);
}

const SMALL = ['--memory', '64MiB', '--workload', 'uniform', '--dirty-rate', '8MiB/s'];

describe('dirty-rate page-sampling', () => {
  it('counts exactly the sampled pages the guest wrote, from their hashes', async () => {
    const r = await measure([...SMALL, '--sample-pages', '4096', '--workload', 'sweep']);
    // A sweep at 8 MiB/s writes RAM pages 0 .. 2047 in one second.
    const sampled = samplePages(new GuestLayout(64 * MiB, 3 * 1024 * MiB), 4096, 1);
    const written = sampled.filter((p) => p < 2048).length;
    expect(r.sampling).toEqual({ sampled: 256, changed: written });
    expect(written).toBe(41);
    // changed x 64 MB x 1000 / (256 x 1000 ms)
    expect(r['query-dirty-rate']['dirty-rate']).toBe(Math.floor((written * 64 * 1000) / (256 * 1000)));
    expect(r.truth).toEqual({ pages: 2048, dirtyRate: 8, pageWrites: 2048 });
  });

  it('sees every sample change when the guest rewrites all of RAM', async () => {
    const r = await measure(['--memory', '64MiB', '--workload', 'sweep', '--dirty-rate', '128MiB/s', '--calc-time', '500', '--calc-time-unit', 'millisecond']);
    expect(r.sampling).toEqual({ sampled: 32, changed: 32 });
    expect(r['query-dirty-rate']).toEqual({
      status: 'measured', 'dirty-rate': 128, 'start-time': 0, 'calc-time': 500, 'calc-time-unit': 'millisecond', 'sample-pages': 512, mode: 'page-sampling',
    });
    expect(r.truth.pages).toBe(16384);
    expect(r.error).toEqual({ dirtyRate: 0, relative: 0 });
  });
});

describe('dirty-rate dirty-ring', () => {
  it('sums per-vCPU rates from the entries reaped; with rings that never fill they count each page once', async () => {
    const r = await measure([...SMALL, '--mode', 'dirty-ring', '--dirty-ring-size', '65536', '--vcpus', '2']);
    const q = r['query-dirty-rate'];
    expect(q['sample-pages']).toBe(0);
    expect(q['vcpu-dirty-rate']!.map((v) => v.id)).toEqual([0, 1]);
    expect(q['dirty-rate']).toBe(q['vcpu-dirty-rate']!.reduce((a, v) => a + v['dirty-rate'], 0));
    expect(r.truth.pages).toBe(1914);
    expect(q['vcpu-dirty-rate']).toEqual([{ id: 0, 'dirty-rate': 3 }, { id: 1, 'dirty-rate': 3 }]);
    expect(r.guest.cpuLog).toBe('ring');
  });

  it('over-reports when small rings fill: a reap re-protects pages the guest writes again', async () => {
    const r = await measure(['--memory', '64MiB', '--workload', 'hotcold', '--dirty-rate', '64MiB/s', '--mode', 'dirty-ring', '--dirty-ring-size', '256']);
    expect(r['query-dirty-rate']['dirty-rate']).toBeGreaterThan(r.truth.dirtyRate);
    expect(r.error.dirtyRate).toBeGreaterThan(0);
  });
});

describe('dirty-rate dirty-bitmap', () => {
  it('reports the distinct pages dirtied, as QEMU rounds them', async () => {
    for (const log of ['manual', 'bitmap']) {
      const r = await measure([...SMALL, '--mode', 'dirty-bitmap', '--cpu-log', log, '--seed', '7']);
      expect(r['query-dirty-rate']['dirty-rate']).toBe(pagesToRate(r.truth.pages, 1000));
      expect(r.truth.pages).toBe(1917);
      expect(r['query-dirty-rate']['dirty-rate']).toBe(7);
      expect(r['query-dirty-rate']['sample-pages']).toBe(0);
    }
  });
});

describe('dirty-rate output', () => {
  it('prints the fields as text and as JSON', async () => {
    const chunks: string[] = [];
    const io = { out: { write: (s: string) => chunks.push(s) }, err: { write: () => true } } as never;
    const o: DirtyRateOptions = parseDirtyRateOptions([...SMALL, '--mode', 'dirty-ring', '--vcpus', '1', '--json']);
    expect(await dirtyRateCommand.run(o, io)).toBe(0);
    const j = JSON.parse(chunks.join(''));
    expect(Object.keys(j)).toEqual(['schema', 'query-dirty-rate', 'truth', 'error', 'sampling', 'guest']);
    expect(j.schema).toBe('vfio-dirty/dirty-rate/v1');
    expect(Object.keys(j['query-dirty-rate'])).toEqual(['status', 'start-time', 'calc-time', 'calc-time-unit', 'mode', 'dirty-rate', 'sample-pages', 'vcpu-dirty-rate']);
    const text = formatDirtyRate(j);
    expect(text.split('\n').slice(1)).toEqual([
      '  status:          measured',
      '  mode:            dirty-ring',
      '  start-time:      0 s',
      '  calc-time:       1 second',
      `  dirty-rate:      ${j['query-dirty-rate']['dirty-rate']} MB/s`,
      `  vcpu-dirty-rate: vCPU 0 ${j['query-dirty-rate']['dirty-rate']} MB/s`,
      '  truth:           1914 distinct pages dirtied in the period, 7.5 MB/s (2048 page writes)',
      `  error:           ${(j['query-dirty-rate']['dirty-rate'] - 7.4765625).toFixed(1)} MB/s (${(100 * (j['query-dirty-rate']['dirty-rate'] / 7.4765625 - 1)).toFixed(1)} %)`,
    ]);
  });
});

describe('dirty-rate options', () => {
  const bad: [string[], string][] = [
    [['--calc-time', '0'], '--calc-time: is out of range [50ms, 60000ms], got 0ms'],
    [['--calc-time', '61'], '--calc-time: is out of range [50ms, 60000ms], got 61000ms'],
    [['--calc-time', '49', '--calc-time-unit', 'millisecond'], '--calc-time: is out of range [50ms, 60000ms], got 49ms'],
    [['--calc-time-unit', 'minute'], '--calc-time-unit: must be one of second, millisecond, got "minute"'],
    [['--mode', 'pml'], '--mode: must be one of page-sampling, dirty-ring, dirty-bitmap, got "pml"'],
    [['--sample-pages', '127'], '--sample-pages: must be between 128 and 16384, got 127'],
    [['--sample-pages', '16385'], '--sample-pages: must be between 128 and 16384, got 16385'],
    [['--mode', 'dirty-ring', '--sample-pages', '512'], '--sample-pages: applies to --mode page-sampling only (QEMU: either sample-pages or dirty-ring)'],
    [['--memory', '16GiB', '--sample-pages', '16384'], '--sample-pages: 16384 per GiB of 16.0 GiB is 262144 pages, more than the 131072 the simulator samples (their bytes are real)'],
    [['--mode', 'dirty-ring', '--cpu-log', 'manual'], '--mode: dirty-ring is not enabled with --cpu-log manual, use other method instead'],
    [['--mode', 'dirty-bitmap', '--cpu-log', 'ring'], '--mode: dirty-bitmap is not enabled with --cpu-log ring, use other method instead'],
    [['--memory', '8MiB'], '--memory: must be between 16MiB and 1TiB'],
    [['--bandwidth', '1GiB/s'], '--bandwidth: unknown option (see --help)'],
  ];
  for (const [argv, message] of bad) {
    it(`refuses ${argv.join(' ')}`, () => {
      expect(() => parseDirtyRateOptions(argv)).toThrow(message);
    });
  }

  it('defaults to QEMU\'s: page-sampling, 1 second, 512 pages per GiB, a manual-protect VM', () => {
    const o = parseDirtyRateOptions([]);
    expect(o.request).toEqual({ calcTime: 1, calcTimeUnit: 'second', samplePages: 512, mode: 'page-sampling' });
    expect([o.config.cpuLog, o.config.memory, o.config.workload]).toEqual(['manual', 16 * 2 ** 30, 'mixed']);
    expect(parseDirtyRateOptions(['--mode', 'dirty-ring']).config.cpuLog).toBe('ring');
  });
});
