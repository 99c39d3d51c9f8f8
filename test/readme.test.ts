// Every fenced code block of README.md runs, as written, against the built package.
//
// - ```ts blocks are type-checked together and then each runs alone under plain `node`. They sit
//   in a scratch directory inside build/ (ignored by git, and only build/*.wasm is packed), so
//   `import ... from 'vfio-dirty'` resolves by the package's self-reference to its own `exports`:
//   dist/src/index.js and its .d.ts, exactly what a user's `import` gets. No prelude is added; a
//   block that needs an engine makes one. A line `console.log(...); //=> TEXT` states what it
//   prints: the block's output must be exactly those TEXTs, in order, one line each, and every
//   block must state at least one.
// - ```sh blocks: every command either runs (and must exit 0; its output is not compared, and
//   progress may go to stderr) or is listed in NOT_RUN with the reason. `vfio-dirty` is on the PATH as `npm link` would put it (package.json's bin).
// - ```text blocks are transcripts: `$ COMMAND` and then its output, where a line `...` stands for
//   any number of lines and the values measured on a real clock (MEASURED) are not compared.
//
// dist/ is rebuilt first (tsc, about ten seconds) when a TypeScript source is newer than it, so the
// test follows src/ after `npm install`, after a pull and while editing.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Shell commands of README.md that the test does not run, with the reason. */
const NOT_RUN: Record<string, string> = {
  'npm install': 'installs the dependencies and builds the package: this test runs after it',
  'npm test': 'runs the whole test suite, this file included',
  'vfio-dirty serve --listen /tmp/vfio-dirty.sock --group kind=emulated,devices=vgpu0 &':
    'starts a daemon that runs until SIGTERM (test/server/ runs the server and both clients)',
  'npm run bench': 'runs every benchmark, about twenty minutes',
  'npm run bench -- --filter vfio': 'runs a group of benchmarks, minutes',
  'npm run bench -- get': 'runs the GET_BITMAP matrix and the runs group, minutes',
};

/** Values in transcripts that are measured on a real clock: compared as `#`. */
const MEASURED: RegExp[] = [
  /(engine +)[\d.]+( ms)/g, // a round's engine time
  /(engine time: +)[\d.]+( ms real)/g,
  /(mean )[\d.]+( ms)/g,
  /(max )[\d.]+( ms)/g,
  /(guest and device activity )[\d.]+( ms)/g,
  /(wall time: +)[\d.]+( s)/g,
];

interface Block {
  lang: string;
  /** Line number of the opening fence (1-based). */
  line: number;
  code: string;
}

/** The fenced blocks of a Markdown text, in order. */
function fencedBlocks(md: string): Block[] {
  const lines = md.split('\n');
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]);
    if (!open) continue;
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && lines[j].trimEnd() !== '```') body.push(lines[j++]);
    if (j === lines.length) throw new Error(`README.md:${i + 1}: unterminated code block`);
    out.push({ lang: open[1], line: i + 1, code: body.join('\n') + '\n' });
    i = j;
  }
  return out;
}

/** The lines a ts block says it prints (`//=> TEXT`), in order. */
function expectedOutput(code: string): string[] {
  return code
    .split('\n')
    .map((l) => /console\.log\(.*\/\/=> ?(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => m[1].trimEnd());
}

/** The commands of a sh block: one per line, comments and blank lines left out. */
function shellCommands(code: string): string[] {
  return code
    .split('\n')
    .map((l) => l.replace(/(^|\s)#.*$/, '').trim())
    .filter((l) => l.length > 0);
}

/** Whether `actual` matches `expected`, where an expected line `...` matches any run of lines. */
function matchTranscript(expected: string[], actual: string[]): boolean {
  if (expected.length === 0) return actual.length === 0;
  if (expected[0] === '...') {
    for (let k = 0; k <= actual.length; k++) if (matchTranscript(expected.slice(1), actual.slice(k))) return true;
    return false;
  }
  return actual.length > 0 && expected[0] === actual[0] && matchTranscript(expected.slice(1), actual.slice(1));
}

function masked(text: string): string[] {
  let t = text;
  for (const re of MEASURED) t = t.replace(re, '$1#$2');
  return t.split('\n').map((l) => l.trimEnd());
}

function newestMtime(dir: string, accept: (p: string) => boolean): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestMtime(p, accept));
    else if (accept(p)) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** Rebuilds dist/ with tsc when a source it is built from is newer than its entry point. */
function ensureBuilt(): void {
  const entry = join(root, 'dist/src/index.js');
  let built = 0;
  try {
    built = statSync(entry).mtimeMs;
  } catch {
    // not built yet
  }
  const sources = Math.max(
    newestMtime(join(root, 'src'), (p) => p.endsWith('.ts')),
    statSync(join(root, 'assembly/constants.ts')).mtimeMs,
  );
  if (sources > built) {
    execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
      cwd: root,
      stdio: 'pipe',
    });
  }
}

const readme = readFileSync(join(root, 'README.md'), 'utf8');
const blocks = fencedBlocks(readme);
const tsBlocks = blocks.filter((b) => b.lang === 'ts');
const shBlocks = blocks.filter((b) => b.lang === 'sh');
const pyBlocks = blocks.filter((b) => b.lang === 'python');
const transcripts = blocks.filter((b) => b.lang === 'text');

let scratch = '';
let binDir = '';
const ran = new Map<string, { status: number | null; stdout: string; stderr: string }>();

/** Runs a shell command as a reader would, from the repository root; each command runs once. */
function shell(cmd: string): { status: number | null; stdout: string; stderr: string } {
  let r = ran.get(cmd);
  if (!r) {
    const p = spawnSync('sh', ['-c', cmd], {
      cwd: root,
      encoding: 'utf8',
      // npm's own banner ("> vfio-dirty@0.1.0 start") is not part of what a transcript shows.
      env: { ...process.env, PATH: `${binDir}:${process.env.PATH}`, npm_config_loglevel: 'silent' },
      timeout: 60_000,
    });
    r = { status: p.status, stdout: p.stdout, stderr: p.stderr };
    ran.set(cmd, r);
  }
  return r;
}

let compileProblems: string[] = [];

/** Type-checks the ts blocks together and emits each beside itself as block-LINE.mjs. */
function compileBlocks(): string[] {
  const files = tsBlocks.map((b) => {
    const f = join(scratch, `block-${b.line}.mts`);
    writeFileSync(f, b.code);
    return f;
  });
  const program = ts.createProgram(files, {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2022.d.ts'],
    types: ['node'],
    strict: true,
    skipLibCheck: true,
  });
  const emitted = program.emit();
  return [...ts.getPreEmitDiagnostics(program), ...emitted.diagnostics].map((d) => {
    const where = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : undefined;
    const fence = d.file ? /block-(\d+)\.mts$/.exec(d.file.fileName)?.[1] : undefined;
    // README line = fence line + 1 + line within the block (0-based)
    const at = fence && where ? `README.md:${Number(fence) + 1 + where.line}` : (d.file?.fileName ?? '');
    return `${at}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
}

beforeAll(() => {
  ensureBuilt();
  mkdirSync(join(root, 'build'), { recursive: true });
  scratch = mkdtempSync(join(root, 'build', 'readme-'));
  // `vfio-dirty` on the PATH, as `npm link` or a global install would provide it.
  binDir = join(scratch, 'bin');
  mkdirSync(binDir);
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  for (const [name, target] of Object.entries(pkg.bin)) {
    const shim = join(binDir, name);
    writeFileSync(shim, `#!/bin/sh\nexec "${process.execPath}" "${join(root, target)}" "$@"\n`);
    chmodSync(shim, 0o755);
  }
  compileProblems = compileBlocks();
});

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('README.md', () => {
  it('has only blocks this test knows how to run', () => {
    expect(tsBlocks.length).toBeGreaterThanOrEqual(3);
    expect(blocks.filter((b) => !['ts', 'sh', 'text', 'python'].includes(b.lang)).map((b) => `line ${b.line}: '${b.lang}'`)).toEqual([]);
  });

  it('type-checks every ts block against the package as a user imports it', () => {
    expect(compileProblems).toEqual([]);
  });

  describe.each(tsBlocks.map((b) => [b.line, b] as const))('the ts block at line %i', (_line, b) => {
    it('runs under node and prints what its //=> comments say', () => {
      const expected = expectedOutput(b.code);
      expect(expected.length, 'the block states no output (console.log(...); //=> TEXT)').toBeGreaterThan(0);
      const js = join(scratch, `block-${b.line}.mjs`);
      const p = spawnSync(process.execPath, [js], { cwd: scratch, encoding: 'utf8', timeout: 30_000 });
      expect(p.stderr).toBe('');
      expect(p.status).toBe(0);
      expect(p.stdout.split('\n').slice(0, -1)).toEqual(expected);
    });
  });

  describe.each(pyBlocks.map((b) => [b.line, b] as const))('the python block at line %i', (_line, b) => {
    it('runs against `vfio-dirty serve` and prints what its #=> comments say', async () => {
      const expected = b.code
        .split('\n')
        .map((l) => /print\(.*#=> ?(\S*)/.exec(l))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => m[1]);
      expect(expected.length, 'the block states no output (print(...)  #=> TEXT)').toBeGreaterThan(0);
      const sock = join(scratch, `serve-${b.line}.sock`);
      // The server as the README's sh block starts it, on a socket of this test's own.
      const server = spawn(join(binDir, 'vfio-dirty'), ['serve', '--listen', sock, '--group', 'kind=emulated,devices=vgpu0'], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      try {
        for (let i = 0; i < 300 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
        expect(existsSync(sock), 'the server did not start listening').toBe(true);
        const py = join(scratch, `block-${b.line}.py`);
        writeFileSync(py, b.code);
        const p = spawnSync('python3', [py], {
          encoding: 'utf8',
          timeout: 30_000,
          env: { ...process.env, PYTHONPATH: join(root, 'clients/python'), VFIO_DIRTY_SOCK: sock },
        });
        expect(p.stderr).toBe('');
        expect(p.status).toBe(0);
        expect(p.stdout.split('\n').slice(0, -1)).toEqual(expected);
      } finally {
        server.kill('SIGTERM');
      }
    });
  });

  it('runs every sh command or says why not', () => {
    const listed = new Set<string>();
    for (const b of shBlocks) {
      for (const cmd of shellCommands(b.code)) {
        if (cmd in NOT_RUN) {
          listed.add(cmd);
          continue;
        }
        const r = shell(cmd);
        expect(r.status, `${cmd} exited with ${r.status}: ${r.stderr}`).toBe(0);
      }
    }
    // The list holds no command the README no longer shows.
    expect([...listed].sort()).toEqual(Object.keys(NOT_RUN).sort());
  });

  it('cites only sections that docs/conformance.md has', () => {
    const conformance = readFileSync(join(root, 'docs/conformance.md'), 'utf8');
    const sections = new Set([...conformance.matchAll(/^#{2,3} (\d+(?:\.\d+)?)\.? /gm)].map((m) => m[1]));
    expect(sections.has('10.1')).toBe(true);
    const cited = [...readme.matchAll(/§(\d+(?:\.\d+)?)/g)].map((m) => m[1]);
    expect(cited.length).toBeGreaterThan(0);
    expect(cited.filter((c) => !sections.has(c))).toEqual([]);
  });

  it.each(transcripts.map((b) => [b.line, b] as const))('the transcript at line %i is what its command prints', (_line, b) => {
    const [first, ...shown] = b.code.trimEnd().split('\n');
    expect(first.startsWith('$ '), 'a text block starts with "$ COMMAND"').toBe(true);
    const r = shell(first.slice(2));
    expect(r.status).toBe(0);
    const actual = masked(r.stdout.trimEnd());
    const expected = masked(shown.join('\n'));
    if (!matchTranscript(expected, actual)) expect(actual.join('\n')).toBe(expected.join('\n'));
  });
});
