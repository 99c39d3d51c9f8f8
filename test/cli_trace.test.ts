// `simulate --trace FILE` then `replay FILE`: the command line's round trip, every round's exported
// bitmap identical, and the trace path checked before the run.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { out: { write: (s: string) => out.push(s), isTTY: false, columns: 120 }, err: { write: (s: string) => err.push(s) } },
    out: () => out.join(''),
    err: () => err.join(''),
  };
}

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
