// The command line, run in-process through main(argv, io): help, usage errors that name the
// option, the JSON summary's schema (as the README documents it), the report and export files,
// and replay's output and exit status; `simulate --trace` then `replay` giving the same bitmaps.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { decodeRunsBin } from '../src/export/runs_bin.js';
import { SUMMARY_SCHEMA } from '../src/sim/summary.js';

function io(tty = false) {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { out: { write: (s: string) => out.push(s), isTTY: tty, columns: 120 }, err: { write: (s: string) => err.push(s) } },
    out: () => out.join(''),
    err: () => err.join(''),
  };
}

const small = ['--memory', '512MiB', '--vgpu-region', '64MiB', '--vgpu-pinned', '8MiB', '--max-rounds', '5'];
const tmp = () => mkdtempSync(join(tmpdir(), 'vfio-dirty-cli-'));

describe('vfio-dirty', () => {
  it('prints the commands for --help and a usage error without a command', async () => {
    const a = io();
    expect(await main(['--help'], a.io)).toBe(0);
    expect(a.out()).toContain('simulate');
    expect(a.out()).toContain('replay TRACE.jsonl');
    const b = io();
    expect(await main([], b.io)).toBe(2);
    const c = io();
    expect(await main(['simulat'], c.io)).toBe(2);
    expect(c.err()).toContain('unknown command "simulat"');
  });

  it('explains every simulate option with its default', async () => {
    const a = io();
    expect(await main(['simulate', '--help'], a.io)).toBe(0);
    for (const s of ['--memory SIZE', '(default 16GiB)', '--bandwidth RATE', '(default 10Gbit/s)', '--downtime-limit TIME', '(default 300ms)', '--workload KIND', '(default mixed)', '--seed N', '--json', '--report FILE', '--export DIR', '--config FILE']) {
      expect(a.out()).toContain(s);
    }
    const b = io();
    expect(await main(['help', 'replay'], b.io)).toBe(0);
    expect(b.out()).toContain('--export DIR');
  });

  it('rejects a bad option with a message naming it, before running anything', async () => {
    const a = io();
    expect(await main(['simulate', '--downtime-limit', 'soon'], a.io)).toBe(2);
    expect(a.err()).toBe('vfio-dirty: simulate: --downtime-limit: expected a time like 300ms or 0.5s, got "soon"\n' +
      'Run `vfio-dirty simulate --help` for the options and their defaults.\n');
    expect(a.out()).toBe('');
  });

  it('prints plain progress lines and a summary when not on a terminal', async () => {
    const a = io(false);
    expect(await main(['simulate', ...small], a.io)).toBe(0);
    const text = a.out();
    expect(text).toMatch(/^round {2}0 bulk {8}sent {3}385 MiB in {3}323 ms\n/);
    expect(text).toContain('result:          converged');
    expect(text).toContain('engine time:');
    expect(text).not.toContain('\r');
  });

  it('draws a bar in place on a terminal', async () => {
    const a = io(true);
    expect(await main(['simulate', ...small], a.io)).toBe(0);
    expect(a.out()).toContain('\r\x1b[2Kround 0 bulk [');
    expect(a.out()).toContain('##############################]');
  });

  it('prints the JSON summary with the documented schema', async () => {
    const a = io();
    expect(await main(['simulate', ...small, '--json', '--progress', 'lines'], a.io)).toBe(0);
    const s = JSON.parse(a.out());
    expect(a.err()).toContain('round  0 bulk'); // progress goes to stderr with --json
    expect(Object.keys(s).sort()).toEqual(
      ['accelerator', 'allDirtyRounds', 'bytesSent', 'config', 'converged', 'cpuLog', 'downtimeS', 'engine', 'migrate', 'postcopy', 'rounds', 'roundsDetail', 'schema', 'slots', 'totalTimeS', 'wallMs'],
    );
    expect(s.schema).toBe(SUMMARY_SCHEMA);
    expect(Object.keys(s.engine).sort()).toEqual(['activityMs', 'harvests', 'maxMs', 'meanMs', 'peakHeapBytes', 'totalMs']);
    expect(Object.keys(s.roundsDetail[0]).sort()).toEqual([
      'accelPages', 'accelUnseen', 'allDirty', 'bytesSent', 'deviceBytes', 'devicePages', 'devicePendingBytes', 'dirtyLimit', 'dirtyPages', 'dirtyPagesRate', 'dirtyRate',
      'dirtySyncCount', 'durationS', 'expectedDowntimeS', 'harvestMs', 'mbps', 'normalPages', 'pagesPerSecond', 'pagesSent', 'pendingBytes',
      'phase', 'round', 'runs', 'startS', 'throttlePct', 'transferredBytes', 'zeroPages',
    ]);
    expect(Object.keys(s.migrate).sort()).toEqual([
      'cpuThrottlePercentage', 'dirtyLimit', 'dirtyPagesRate', 'dirtySyncCount', 'downtimeBytes', 'downtimeS', 'duplicatePages',
      'expectedDowntimeS', 'mbps', 'normalBytes', 'normalPages', 'pagesPerSecond', 'postcopyBytes', 'precopyBytes', 'remainingBytes', 'setupTimeS',
      'status', 'thresholdBytes', 'totalBytes', 'totalTimeS', 'transferredBytes',
    ]);
    expect(Object.keys(s.config).sort()).toEqual([
      'accelerator', 'bandwidth', 'clearBitmapShift', 'cpuLog', 'deviceState', 'dirtyRate', 'dirtyRingSize', 'downtimeLimit', 'gpuPtPages', 'gpuPtRate', 'heatmapColumns', 'hotFraction', 'hotWeight', 'lowMemory', 'maxRounds',
      'memory', 'passthrough', 'postcopyAfter', 'postcopyRtt', 'seed', 'step', 'throttle', 'trackerRanges', 'tracking', 'trackingPageSize', 'vcpus', 'vgpu', 'vgpuChurn', 'vgpuDmaRate', 'vgpuPinned', 'vgpuRegion', 'workload',
      'zeroFraction',
    ]);
    expect(s.config.memory).toBe(512 * 2 ** 20);
    expect(s.roundsDetail[0].phase).toBe('bulk');
    expect(s.roundsDetail.at(-1).phase).toBe(s.converged ? 'stop-copy' : 'unconverged');
    expect(s.engine.harvests).toBe(s.roundsDetail.length - 1);
  });

  it('writes the HTML report and the per-round exports', async () => {
    const dir = tmp();
    const a = io();
    expect(await main(['simulate', ...small, '--report', join(dir, 'r.html'), '--export', join(dir, 'x'), '--progress', 'none'], a.io)).toBe(0);
    const html = readFileSync(join(dir, 'r.html'), 'utf8');
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).not.toMatch(/<(script|link|img)[^>]+(src|href)=/); // nothing external
    const files = readdirSync(join(dir, 'x'));
    expect(files.filter((f) => f.endsWith('.bitmap')).length).toBe(files.length / 2);
    expect(a.out()).toContain(`report:          ${join(dir, 'r.html')}`);
  });

  it('exports a 1 TiB guest in every format, files of the exact sizes', async () => {
    // A sweep at 1 MiB/s: each harvest is one run, whatever the size of the guest.
    const dir = tmp();
    const a = io();
    const argv = ['simulate', '--memory', '1TiB', '--no-vgpu', '--workload', 'sweep', '--dirty-rate', '1MiB/s', '--zero-fraction', '0',
      '--export', dir, '--export-format', 'all', '--json', '--progress', 'none'];
    expect(await main(argv, a.io)).toBe(0);
    const s = JSON.parse(a.out());
    // The bulk round: 2^28 pages of 4104 bytes on the wire at 1.25e9 B/s; the sweep writes 256 pages a second.
    const t1 = (2 ** 28 * 4104) / 1.25e9;
    const p1 = Math.floor(256 * t1);
    const p2 = Math.floor(256 * (t1 + (p1 * 4104) / 1.25e9)) - p1;
    expect([p1, p2]).toEqual([225619, 190]);
    expect(s.roundsDetail.map((r: { phase: string; dirtyPages: number; runs: number }) => [r.phase, r.dirtyPages, r.runs])).toEqual([
      ['bulk', 2 ** 28, 2], ['precopy', p1, 1], ['stop-copy', p2, 1],
    ]);
    expect(readdirSync(dir).sort()).toEqual(['round-001.bitmap', 'round-001.runs.bin', 'round-001.runs.json', 'round-002.bitmap', 'round-002.runs.bin', 'round-002.runs.json']);
    const gpaPages = (2 ** 40 + 2 ** 30) / 4096; // 1 TiB from 4 GiB up, above 3 GiB of low RAM and the hole
    for (const f of ['round-001.bitmap', 'round-002.bitmap']) expect(statSync(join(dir, f)).size).toBe(gpaPages / 8);
    const bin1 = readFileSync(join(dir, 'round-001.runs.bin'));
    expect(bin1.length).toBe(56 + 1 + 3); // one run: gap 0 (1 byte), 225619 pages (3 bytes)
    expect(decodeRunsBin(bin1)).toEqual({ pgsize: 4096n, iova: 0n, pages: BigInt(gpaPages), dirty: BigInt(p1), runs: [[0, p1]] });
    expect(decodeRunsBin(readFileSync(join(dir, 'round-002.runs.bin'))).runs).toEqual([[p1, p2]]);
    expect(readFileSync(join(dir, 'round-002.runs.json'), 'utf8')).toBe(
      `{"format":"vfio-dirty/runs/v1","round":2,"iova":"0x0","size":"0x${(gpaPages * 4096).toString(16)}","pgsize":4096,"pages":${gpaPages},"dirty":${p2},` +
      `"runs":[{"iova":"0x${(p1 * 4096).toString(16)}","length":"0x${(p2 * 4096).toString(16)}"}]}\n`,
    );
  });

  it('writes only the export formats asked for', async () => {
    const dir = tmp();
    expect(await main(['simulate', ...small, '--export', dir, '--export-format', 'runs-bin', '--progress', 'none'], io().io)).toBe(0);
    expect(readdirSync(dir).every((f) => f.endsWith('.runs.bin'))).toBe(true);
  });

  it('accepts the sample config in examples/', async () => {
    const a = io();
    expect(await main(['simulate', '--config', 'examples/simulate.json', '--help'], a.io)).toBe(0);
    const { parseSimulateOptions } = await import('../src/cli/options.js');
    const ac = parseSimulateOptions(['--config', 'examples/auto-converge.json']).config;
    expect([ac.throttle.autoConverge, ac.dirtyRate, ac.deviceState.precopyInitial, ac.deviceState.stopCopy]).toEqual([true, 1536 * 2 ** 20, 64 * 2 ** 20, 16 * 2 ** 20]);
    const o = parseSimulateOptions(['--config', 'examples/simulate.json']);
    expect(o.config).toMatchObject({ memory: 32 * 2 ** 30, workload: 'hotcold', passthrough: 'pinning', seed: 7, downtimeLimit: 0.2 });
  });

  it('takes options from a config file', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'c.json'), JSON.stringify({ memory: '512MiB', 'vgpu-region': '64MiB', 'vgpu-pinned': '8MiB', workload: 'sweep', json: true }));
    const a = io();
    expect(await main(['simulate', '--config', join(dir, 'c.json'), '--progress', 'none'], a.io)).toBe(0);
    expect(JSON.parse(a.out()).config.workload).toBe('sweep');
  });
});

describe('vfio-dirty replay', () => {
  const trace = [
    '{"op":"map","iova":"0x0","size":"0x100000"}',
    '{"op":"start"}',
    '{"op":"pin","iova":"0x3000","npage":2}',
    '{"op":"read","iova":"0x0","size":"0x100000"}',
    '{"op":"unpin","iova":"0x3000","npage":2}',
    '{"op":"read","iova":"0x0","size":"0x100000","label":"after unpin"}',
  ];

  it('prints each read and a count', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 't.jsonl'), `${trace.join('\n')}\n`);
    const a = io();
    expect(await main(['replay', join(dir, 't.jsonl')], a.io)).toBe(0);
    expect(a.out()).toBe(
      'read 1 (line 4) [0x0, +0x100000) pgsize 4096: 2 dirty pages in 1 run\n  0x3000 +0x2000\n' +
      'read 2 (line 6, after unpin) [0x0, +0x100000) pgsize 4096: 2 dirty pages in 1 run\n  0x3000 +0x2000\n' +
      'replayed 6 events, 2 reads\n',
    );
  });

  it('prints JSON lines and exports bitmaps', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 't.jsonl'), trace.join('\n'));
    const a = io();
    expect(await main(['replay', join(dir, 't.jsonl'), '--json', '--export', join(dir, 'x')], a.io)).toBe(0);
    const lines = a.out().trim().split('\n').map((l) => JSON.parse(l));
    expect(lines[0]).toEqual({
      format: 'vfio-dirty/runs/v1', read: 1, line: 4, iova: '0x0', size: '0x100000', pgsize: 4096, pages: 256, dirty: 2,
      runs: [{ iova: '0x3000', length: '0x2000' }], bitmap: `18${'0'.repeat(62)}`,
    });
    expect(readdirSync(join(dir, 'x')).sort()).toEqual(['read-001.bitmap', 'read-001.runs.json', 'read-002.bitmap', 'read-002.runs.json']);
    expect([...readFileSync(join(dir, 'x', 'read-001.bitmap'))]).toEqual([0x18, ...new Array(31).fill(0)]);
  });

  it('stops at a bad line with its number and reason, running nothing after it', async () => {
    const dir = tmp();
    const bad = [...trace.slice(0, 4), '{"op":"pin","iova":"0x3000","npage":"two"}', ...trace.slice(5)];
    writeFileSync(join(dir, 't.jsonl'), bad.join('\n'));
    const a = io();
    expect(await main(['replay', join(dir, 't.jsonl')], a.io)).toBe(1);
    expect(a.out()).toBe('read 1 (line 4) [0x0, +0x100000) pgsize 4096: 2 dirty pages in 1 run\n  0x3000 +0x2000\n');
    expect(a.err()).toBe(`vfio-dirty: ${join(dir, 't.jsonl')}:5: "npage" must be a number or a "0x..." / decimal string, got "two"\n`);
  });

  it('replays the sample trace in examples/', async () => {
    const a = io();
    expect(await main(['replay', 'examples/trace.jsonl'], a.io)).toBe(0);
    expect(a.err()).toBe('');
    expect(a.out()).toContain('read 4 (line 15, round 3 at 2 MiB pages) [0x0, +0x4000000) pgsize 2097152: 1 dirty page in 1 run\n  0x3e00000 +0x200000\n');
    expect(a.out().endsWith('replayed 17 events, 5 reads\n')).toBe(true);
  });

  it('needs exactly one trace file that exists', async () => {
    const a = io();
    expect(await main(['replay'], a.io)).toBe(2);
    expect(a.err()).toContain('--trace: give the trace file: vfio-dirty replay TRACE.jsonl');
    const b = io();
    expect(await main(['replay', join(tmp(), 'none.jsonl')], b.io)).toBe(2);
    expect(b.err()).toMatch(/--trace: cannot read .*none\.jsonl/);
    expect(existsSync('none.jsonl')).toBe(false);
  });
});

describe('simulate --trace', () => {
  it('writes a trace that replay turns into the same bitmaps, round by round', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vfio-dirty-trace-'));
    const trace = join(dir, 'run.jsonl');
    const a = io();
    const argv = ['simulate', '--memory', '64MiB', '--low-memory', '40MiB', '--vgpu-region', '16MiB', '--vgpu-pinned', '4MiB',
      '--bandwidth', '32MiB/s', '--dirty-rate', '24MiB/s', '--max-rounds', '6', '--trace', trace, '--export', join(dir, 'sim'), '--progress', 'none'];
    expect(await main(argv, a.io)).toBe(0);
    expect(a.out()).toContain(`trace:           ${trace}`);
    const b = io();
    expect(await main(['replay', trace, '--export', join(dir, 'rep'), '--export-format', 'bitmap'], b.io)).toBe(0);
    const rounds = readdirSync(join(dir, 'sim')).filter((f) => f.endsWith('.bitmap')).sort();
    expect(rounds.length).toBeGreaterThan(1);
    expect(readdirSync(join(dir, 'rep')).sort()).toEqual(rounds.map((f) => f.replace('round-', 'read-')));
    for (const f of rounds) {
      expect(Buffer.compare(readFileSync(join(dir, 'sim', f)), readFileSync(join(dir, 'rep', f.replace('round-', 'read-')))), f).toBe(0);
    }
    expect(b.out()).toMatch(new RegExp(`replayed \\d+ events, ${rounds.length} reads\\n$`));
  });

  it('refuses a trace path that is a directory before running, and leaves no file when refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vfio-dirty-trace-'));
    mkdirSync(join(dir, 'd'));
    const a = io();
    expect(await main(['simulate', '--trace', join(dir, 'd'), '--progress', 'none'], a.io)).toBe(2);
    expect(a.err()).toBe(`vfio-dirty: simulate: --trace: ${join(dir, 'd')} is a directory\n` +
      'Run `vfio-dirty simulate --help` for the options and their defaults.\n');
    expect(existsSync(join(dir, 'd', 'run.jsonl'))).toBe(false);
  });
});
