// The command line's edges: help and version everywhere, output paths checked before a run, one
// line `vfio-dirty: ...` for every error (never a stack trace) with exit 2 for usage and 1 at run
// time, a closed stdout ending quietly, and user text escaped before it reaches a terminal.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { guardStream, printable } from '../src/cli/terminal.js';

const VERSION = JSON.parse(readFileSync('package.json', 'utf8')).version as string;
const tmp = () => mkdtempSync(join(tmpdir(), 'vfio-dirty-errors-'));

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { out: { write: (s: string) => out.push(s) }, err: { write: (s: string) => err.push(s) } },
    out: () => out.join(''),
    err: () => err.join(''),
  };
}

async function run(argv: string[]) {
  const a = io();
  const code = await main(argv, a.io);
  return { code, out: a.out(), err: a.err() };
}

const HINT = (cmd: string) => `Run \`vfio-dirty ${cmd} --help\` for the options and their defaults.\n`;
const small = ['--memory', '64MiB', '--vgpu-pinned', '8MiB', '--max-rounds', '3', '--progress', 'none'];

describe('help and version', () => {
  it.each([[['--version']], [['simulate', '--version']], [['replay', '--version']]])('%j prints the version of package.json', async (argv) => {
    expect(await run(argv)).toEqual({ code: 0, out: `vfio-dirty ${VERSION}\n`, err: '' });
  });

  it('takes -h as --help, at the top level and per command', async () => {
    const top = await run(['-h']);
    expect(top.code).toBe(0);
    expect(top.out).toContain('  simulate            run a pre-copy live migration');
    expect(top.out).toContain('  replay TRACE.jsonl  replay a recorded trace');
    expect(top.out).toContain('Options: -h, --help (this help), --version (the version of vfio-dirty).');
    const sim = await run(['simulate', '-h']);
    expect(sim.code).toBe(0);
    expect(sim.out.startsWith('Usage: vfio-dirty simulate [options]\n')).toBe(true);
    expect(sim.out).toContain('  -h, --help ');
    const rep = await run(['replay', '-h']);
    expect(rep.out.startsWith('Usage: vfio-dirty replay TRACE.jsonl [options]\n')).toBe(true);
    expect((await run(['help', 'nothing'])).err).toBe(`vfio-dirty: help: unknown command "nothing"\n${HINT('').replace('vfio-dirty  ', 'vfio-dirty ')}`);
  });
});

describe('usage errors: one line, exit 2, before anything runs', () => {
  it.each([
    [['simulate', 'extra'], 'simulate: unexpected argument "extra" (this command takes options only)'],
    [['simulate', '--memory', '-4GiB'], 'simulate: --memory: must be positive, got "-4GiB"'],
    [['simulate', '--memory'], 'simulate: --memory: needs a value (see --help)'],
    [['replay', 'a.jsonl', 'b.jsonl'], 'replay: unexpected argument "b.jsonl"'],
    [['replay', 'a.jsonl', '--max-runs', '-1'], 'replay: --max-runs: must be between 0 and 2147483648, got -1'],
    [['simulate', '--bandwidth', '1kbit/s'],
      'simulate: run too long: the longest round sends all 16 GiB of RAM at 125 B/s, 137438954 s of virtual time, in which the guest would write ' +
      '1.44e+13 pages, more than the 268435456 a round may take; raise --bandwidth, or lower --dirty-rate or --memory'],
  ])('%j', async (argv, message) => {
    expect(await run(argv)).toEqual({ code: 2, out: '', err: `vfio-dirty: ${message}\n${HINT(argv[0])}` });
  });

  it('checks --report and --export before the run', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'file'), 'x');
    mkdirSync(join(dir, 'sub'));
    const cases: [string[], string][] = [
      [['--report', join(dir, 'sub')], `--report: ${join(dir, 'sub')} is a directory`],
      [['--report', join(dir, 'file', 'r.html')], `--report: cannot create ${join(dir, 'file', 'r.html')}: ${join(dir, 'file')} is a file`],
      [['--export', join(dir, 'file')], `--export: ${join(dir, 'file')} is a file, not a directory`],
      [['--export', join(dir, 'file', 'x', 'y')], `--export: cannot create ${join(dir, 'file', 'x', 'y')}: ${join(dir, 'file')} is a file`],
      [['--export', ''], '--export: needs a directory, got an empty path'],
    ];
    for (const [argv, message] of cases) {
      expect(await run(['simulate', ...argv])).toEqual({ code: 2, out: '', err: `vfio-dirty: simulate: ${message}\n${HINT('simulate')}` });
    }
    expect(await run(['replay', 'x.jsonl', '--export', join(dir, 'file')])).toMatchObject({ code: 2, err: `vfio-dirty: replay: --export: ${join(dir, 'file')} is a file, not a directory\n${HINT('replay')}` });
    expect(readdirSync(dir).sort()).toEqual(['file', 'sub']); // nothing created
  });

  it('runs the documented minimum guest, --memory 16MiB, with the vGPU defaults derived from it', async () => {
    const r = await run(['simulate', '--memory', '16MiB', '--json', '--progress', 'none']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).config).toMatchObject({ memory: 16 * 2 ** 20, vgpuRegion: 16 * 2 ** 20, vgpuPinned: 4 * 2 ** 20 });
  });
});

describe('runtime errors: one line, exit 1, no stack trace', () => {
  it('names the file an export could not write', async () => {
    const dir = tmp();
    mkdirSync(join(dir, 'x', 'round-001.runs.json'), { recursive: true }); // a directory in the way
    const r = await run(['simulate', ...small, '--export', join(dir, 'x')]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(new RegExp(`^vfio-dirty: simulate: cannot write ${join(dir, 'x', 'round-001.runs.json').replace(/[.]/g, '\\.')}: EISDIR \\([^\\n]*\\)\\n$`));
    expect(r.err).not.toMatch(/\n\s+at /);
    expect(readdirSync(join(dir, 'x')).sort()).toEqual(['round-001.bitmap', 'round-001.runs.json']); // no temporary file left
  });
});

describe('terminal output', () => {
  it('escapes control characters and escape sequences', () => {
    expect(printable('a\u001b[31mred\u0007\n\r\t\u009b\u202eb')).toBe('a\\x1b[31mred\\x07\\n\\r\\t\\x9b\\u202eb');
    expect(printable('plain, ünïcode ✓')).toBe('plain, ünïcode ✓');
  });

  it('prints trace labels and trace errors escaped', async () => {
    const dir = tmp();
    const trace = join(dir, 't.jsonl');
    writeFileSync(trace, [
      '{"op":"map","iova":0,"size":65536}',
      '{"op":"start"}',
      '{"op":"read","iova":0,"size":65536,"label":"\\u001b]0;pwned\\u0007\\u001b[2J"}',
      '{"op":"device","name":"\\u001b[31mgpu"}',
      '{"op":"device","name":"\\u001b[31mgpu"}',
    ].join('\n'));
    const r = await run(['replay', trace]);
    expect(r.code).toBe(1);
    expect(r.out).toBe('read 1 (line 3, \\x1b]0;pwned\\x07\\x1b[2J) [0x0, +0x10000) pgsize 4096: 0 dirty pages in 0 runs\n');
    expect(r.err).toBe(`vfio-dirty: ${trace}:5: device failed: device "\\x1b[31mgpu" is already declared\n`);
    expect(r.out + r.err).not.toContain('\u001b');
  });

  it('ends quietly when the reader of stdout goes away (EPIPE)', async () => {
    // A real pipe to `head -c 1`: it exits after one byte, and the writes after it fail with EPIPE.
    const head = spawn('head', ['-c', '1'], { stdio: ['pipe', 'ignore', 'ignore'] });
    const errors: Error[] = [];
    const out = guardStream(head.stdin, (e) => errors.push(e));
    const closed = new Promise((resolve) => head.on('close', resolve));
    const a = io();
    const code = await main(['simulate', ...small.slice(0, -2), '--progress', 'lines'], { out, err: a.io.err });
    await closed;
    for (let i = 0; i < 50; i++) out.write('more output after the reader has gone\n');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(code).toBe(0);
    expect(errors).toEqual([]);
    expect(a.err()).toBe('');
  });
});
