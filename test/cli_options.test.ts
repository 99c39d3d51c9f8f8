import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultConfig, parseSimulateOptions, SIM_OPTIONS, simulateHelp } from '../src/cli/options.js';
import { OptionError, parseRate, parseSize, parseTime, UsageError } from '../src/cli/units.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

function fails(argv: string[]): string {
  try {
    parseSimulateOptions(argv);
  } catch (e) {
    expect(e).toBeInstanceOf(OptionError);
    return (e as Error).message;
  }
  throw new Error(`no error for ${argv.join(' ')}`);
}

describe('units', () => {
  it('parses sizes, rates and times in base units', () => {
    expect(parseSize('m', '16GiB')).toBe(16 * GiB);
    expect(parseSize('m', '512')).toBe(512 * MiB);
    expect(parseSize('m', '4 KiB')).toBe(4096);
    expect(parseSize('m', '1.5G')).toBe(1.5 * GiB);
    expect(parseRate('r', '10Gbit/s')).toBe(1.25e9);
    expect(parseRate('r', '512MiB/s')).toBe(512 * MiB);
    expect(parseRate('r', '100')).toBe(100 * MiB);
    expect(parseRate('r', '1GB')).toBe(1e9);
    expect(parseTime('t', '300ms')).toBeCloseTo(0.3, 12);
    expect(parseTime('t', '2s')).toBe(2);
    expect(parseTime('t', '50')).toBeCloseTo(0.05, 12);
  });

  it('names the option and the expected form on bad input', () => {
    expect(() => parseSize('memory', 'lots')).toThrow('--memory: expected a size like 16GiB or 512MiB, got "lots"');
    expect(() => parseSize('memory', '3PiB')).toThrow('--memory: unknown size unit "pib"');
    expect(() => parseRate('bandwidth', '10Gbps')).toThrow('--bandwidth: unknown rate unit "gbps"');
    expect(() => parseSize('memory', '0.3B')).toThrow('--memory: "0.3B" is not a whole number of bytes');
  });
});

describe('simulate options', () => {
  it('has the documented defaults', () => {
    const c = defaultConfig();
    expect(c).toEqual({
      memory: 16 * GiB, lowMemory: 3 * GiB, bandwidth: 1.25e9, downtimeLimit: 0.3, maxRounds: 30,
      workload: 'mixed', dirtyRate: 512 * MiB, hotFraction: 0.1, hotWeight: 0.9, vgpu: true,
      vgpuPinned: 64 * MiB, vgpuChurn: 32 * MiB, vgpuDmaRate: 16 * MiB, vgpuRegion: GiB,
      passthrough: 'none', tracking: 'type1', trackerRanges: 4, trackingPageSize: 4096, seed: 1, step: 0.1, heatmapColumns: 512, zeroFraction: 0.25, vcpus: 4,
      cpuLog: 'manual', dirtyRingSize: 4096, clearBitmapShift: 18, gpuPtPages: 16, gpuPtRate: 0,
      throttle: { autoConverge: false, initial: 20, increment: 10, max: 99, tailslow: false, triggerThreshold: 50, dirtyLimit: false, vcpuDirtyLimit: MiB },
      deviceState: { precopyInitial: 0, precopyDirtyRate: 0, stopCopy: 0 },
      accelerator: { enabled: false, rate: 64 * MiB, buffers: 16 * MiB, fallback: 'none' }, postcopyAfter: 0, postcopyRtt: 1e-4,
    });
    expect(parseSimulateOptions([]).config).toEqual(c);
  });

  it('lists every option with its default in --help', () => {
    const help = simulateHelp();
    for (const o of SIM_OPTIONS) expect(help).toContain(`--${o.name} ${o.value}`), expect(help).toContain(`(default ${o.default})`);
    for (const f of ['--config FILE', '--no-vgpu', '--json', '--report FILE', '--export DIR', '--export-format LIST', '--progress MODE', '-h, --help', '--version']) {
      expect(help).toContain(f);
    }
    expect(parseSimulateOptions(['--help']).help).toBe(true);
  });

  it('applies flags and output options', () => {
    const o = parseSimulateOptions(['--memory', '8GiB', '--workload', 'sweep', '--no-vgpu', '--json', '--report', 'r.html', '--seed=5']);
    expect(o.config.memory).toBe(8 * GiB);
    expect(o.config.workload).toBe('sweep');
    expect(o.config.vgpu).toBe(false);
    expect(o.config.seed).toBe(5);
    expect(o.output).toEqual({ json: true, report: 'r.html', progress: 'auto', exportFormats: new Set(['bitmap', 'runs']) });
  });

  it.each([
    [['--memroy', '8GiB'], '--memroy: unknown option (see --help)'],
    [['--memory'], '--memory: needs a value (see --help)'],
    [['--memory', 'big'], '--memory: expected a size like 16GiB or 512MiB, got "big"'],
    [['--memory', '8MiB'], '--memory: must be between 16MiB and 1TiB'],
    [['--memory', '100000000B'], '--memory: must be a multiple of 4 KiB, got 100000000 bytes'],
    [['--workload', 'random'], '--workload: must be one of uniform, hotcold, sweep, mixed, got "random"'],
    [['--passthrough', 'yes'], '--passthrough: must be one of none, unpinned, pinning, got "yes"'],
    [['--max-rounds', '0'], '--max-rounds: must be between 1 and 10000, got 0'],
    [['--hot-weight', '1.5'], '--hot-weight: must be in [0, 1], got 1.5'],
    [['--hot-fraction', '0'], '--hot-fraction: must be in (0, 1], got 0'],
    [['--bandwidth', '0'], '--bandwidth: must be more than 0'],
    [['--downtime-limit', '0ms'], '--downtime-limit: must be more than 0'],
    [['--low-memory', '4GiB'], '--low-memory: must be more than 0 and at most 3.5GiB'],
    [['--vgpu-pinned', '3MiB'], '--vgpu-pinned: must be a multiple of 2MiB (the vGPU pins 2 MiB buffers)'],
    [['--vgpu-pinned', '1GiB'], '--vgpu-pinned: must be at most half of the vGPU region (the default 1GiB) less its 8 MiB ring, so that buffers can churn'],
    [['--vgpu-pinned', '1GiB', '--vgpu-region', '2GiB'], '--vgpu-pinned: must be at most half of --vgpu-region less its 8 MiB ring, so that buffers can churn'],
    [['--memory', '32MiB', '--vgpu-pinned', '16MiB'],
      '--vgpu-pinned: must be at most half of the vGPU region (32 MiB: the default 1GiB capped to the RAM slot at the top of guest memory) less its 8 MiB ring'],
    [['--memory', '3GiB', '--low-memory', '3068MiB'],
      '--memory: leaves 4 MiB in the RAM slot at the top of guest memory, where the vGPU needs a region of at least 16MiB; change --memory or --low-memory, or run with --no-vgpu'],
    [['--memory', '-4GiB'], '--memory: must be positive, got "-4GiB"'],
    [['--memory=-4GiB'], '--memory: must be positive, got "-4GiB"'],
    [['--dirty-rate', '-1'], '--dirty-rate: must be positive, got "-1"'],
    [['--zero-fraction', '1.5'], '--zero-fraction: must be in [0, 1], got 1.5'],
    [['--vcpus', '0'], '--vcpus: must be between 1 and 1024, got 0'],
    [['--cpu-throttle-initial', '0'], '--cpu-throttle-initial: must be between 1 and 99, got 0'],
    [['--cpu-throttle-increment', '100'], '--cpu-throttle-increment: must be between 1 and 99, got 100'],
    [['--max-cpu-throttle', '100'], '--max-cpu-throttle: must be between 1 and 99, got 100'],
    [['--throttle-trigger-threshold', '0'], '--throttle-trigger-threshold: must be between 1 and 100, got 0'],
    [['--auto-converge', '--dirty-limit'], '--dirty-limit: cannot be used with --auto-converge (QEMU refuses both)'],
    [['--dirty-limit', '--vcpu-dirty-limit', '0'], '--vcpu-dirty-limit: must be more than 0'],
    [['--device-stop-copy', 'lots'], '--device-stop-copy: expected a size like 16GiB or 512MiB, got "lots"'],
    [['--device-dirty-rate', '65GiB/s'], '--device-dirty-rate: must be at most 64GiB/s'],
    [['--accelerator', '--accel-buffers', '100KiB'], '--accel-buffers: must be a positive multiple of 64KiB'],
    [['--accelerator', '--memory', '40MiB', '--no-vgpu'], '--accel-buffers: must end in low RAM: 32 MiB + 16 MiB is past its 40 MiB (raise --memory or --low-memory)'],
    [['--accelerator', '--accel-rate', '5GiB/s'], '--accel-rate: must be at most 4GiB/s'],
    [['--accelerator-fallback', 'ignore'], '--accelerator-fallback: must be one of none, mark-buffers, got "ignore"'],
    [['--postcopy-after', '-1'], '--postcopy-after: must be between 0 and 10000, got -1'],
    [['--hot-weight', '-0.5'], '--hot-weight: must be positive, got "-0.5"'],
    [['--seed', '-3'], '--seed: must be between 0 and 9007199254740991, got -3'],
    [['--export-format', 'runs'], '--export-format: needs --export DIR'],
    [['--export', '/tmp', '--export-format', 'runs,csv'], '--export-format: must be all or a comma-separated list of bitmap, runs, runs-bin, got "csv"'],
    [['--vgpu-region', '32GiB'], '--vgpu-region: must be at least 16MiB and at most --memory'],
    [['--progress', 'fancy'], '--progress: must be one of auto, bar, lines, none, got "fancy"'],
    [['--step', '0'], '--step: must be between 1ms and 10s'],
    [['--vgpu', '--no-vgpu'], '--vgpu: cannot be given together with --no-vgpu'],
  ])('rejects %j naming the option', (argv, message) => {
    expect(fails(argv)).toContain(message);
  });

  it('rejects a positional argument, naming it', () => {
    expect(() => parseSimulateOptions(['extra'])).toThrow(new UsageError('unexpected argument "extra" (this command takes options only)'));
    expect(() => parseSimulateOptions(['--memory', '1GiB', 'extra'])).toThrow('unexpected argument "extra"');
  });

  it('derives the vGPU defaults from --memory, so the documented minimum runs', () => {
    const o = parseSimulateOptions(['--memory', '16MiB']);
    expect(o.config).toMatchObject({ memory: 16 * MiB, vgpuRegion: 16 * MiB, vgpuPinned: 4 * MiB });
    // Above 4 GiB the region is the default 1 GiB, or the high slot when that is smaller.
    expect(parseSimulateOptions(['--memory', '3584MiB', '--low-memory', '3GiB']).config).toMatchObject({ vgpuRegion: 512 * MiB, vgpuPinned: 64 * MiB });
    expect(parseSimulateOptions(['--memory', '40MiB', '--vgpu-region', '32MiB']).config).toMatchObject({ vgpuRegion: 32 * MiB, vgpuPinned: 12 * MiB });
    expect(parseSimulateOptions(['--memory', '16MiB', '--no-vgpu']).config.vgpu).toBe(false);
  });

  it('refuses runs too long to simulate, with the reason, before anything runs', () => {
    expect(() => parseSimulateOptions(['--accelerator', '--accel-rate', '4GiB/s', '--bandwidth', '100Mbit/s', '--dirty-rate', '1MiB/s', '--no-vgpu'])).toThrow(new UsageError(
      'run too long: the longest round sends all 16 GiB of RAM at 12500000 B/s, 1375 s of virtual time, in which the accelerator would run 90071993 jobs, ' +
      'more than the 4194304 a round may take; raise --bandwidth, or lower --accel-rate or --memory'));
    expect(() => parseSimulateOptions(['--bandwidth', '1kbit/s'])).toThrow(new UsageError(
      'run too long: the longest round sends all 16 GiB of RAM at 125 B/s, 137438954 s of virtual time, in which the guest would write ' +
      '1.44e+13 pages, more than the 268435456 a round may take; raise --bandwidth, or lower --dirty-rate or --memory'));
    expect(() => parseSimulateOptions(['--memory', '1TiB', '--dirty-rate', '64GiB/s'])).toThrow(new UsageError(
      'run too long: the longest round sends all 1024 GiB of RAM at 1250000000 B/s, 880 s of virtual time, in which the guest would write ' +
      '11805916208 pages, more than the 268435456 a round may take; raise --bandwidth, or lower --dirty-rate or --memory'));
    expect(() => parseSimulateOptions(['--bandwidth', '1kbit/s', '--dirty-rate', '0'])).toThrow(
      'in which the vGPU would pin 2199023256 buffers, more than the 4194304 a round may take; raise --bandwidth, or lower --vgpu-churn or --memory');
    expect(() => parseSimulateOptions(['--bandwidth', '1kbit/s', '--dirty-rate', '0', '--vgpu-churn', '0'])).toThrow(
      'in which the vGPU would make 35184372089 dmaRw writes, more than the 4194304 a round may take; raise --bandwidth, or lower --vgpu-dma-rate or --memory');
    // Without guest writes or a vGPU nothing grows with the round's length: the steps are bounded.
    expect(parseSimulateOptions(['--bandwidth', '1kbit/s', '--dirty-rate', '0', '--no-vgpu']).config.bandwidth).toBe(125);
  });

  it('reads a JSON config file, with flags taking precedence', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vfio-dirty-opts-'));
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ memory: '4GiB', 'dirty-rate': 100, vgpu: false, 'max-rounds': 5 }));
    const o = parseSimulateOptions(['--config', file, '--max-rounds', '7']);
    expect(o.config.memory).toBe(4 * GiB);
    expect(o.config.dirtyRate).toBe(100 * MiB);
    expect(o.config.vgpu).toBe(false);
    expect(o.config.maxRounds).toBe(7);
  });

  it('names the option and the file for bad config files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vfio-dirty-opts-'));
    const put = (name: string, text: string) => (writeFileSync(join(dir, name), text), join(dir, name));
    expect(fails(['--config', put('a.json', '{"memroy":"1GiB"}')])).toBe(`--memroy: unknown option in ${join(dir, 'a.json')}`);
    expect(fails(['--config', put('b.json', '{"memory":true}')])).toBe(`--memory: expected a string or a number in ${join(dir, 'b.json')}, got true`);
    expect(fails(['--config', put('c.json', '{"vgpu":"no"}')])).toBe(`--vgpu: expected true or false in ${join(dir, 'c.json')}, got "no"`);
    expect(fails(['--config', put('d.json', '[1]')])).toBe(`--config: ${join(dir, 'd.json')} must hold a JSON object of options`);
    expect(fails(['--config', put('e.json', '{')])).toMatch(/^--config: .*e\.json is not valid JSON/);
    expect(fails(['--config', join(dir, 'missing.json')])).toMatch(/^--config: cannot read .*missing\.json/);
    expect(fails(['--config', put('f.json', '{"memory":"12"}')])).toBe('--memory: must be between 16MiB and 1TiB');
  });
});
