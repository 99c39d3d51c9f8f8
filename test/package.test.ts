// What the published package holds: the documents that the command line's help text points to,
// the README (whose links lead into docs/) and the licence that package.json names. Lists the
// tarball with `npm pack --dry-run` (scripts skipped, so nothing is built: about a second).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Every file under `dir`, as paths relative to the repository root. */
function walk(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(`${dir}/${e.name}`) : [`${dir}/${e.name}`],
  );
}

/** The docs/ paths that the command line's sources (its help text) mention, sorted, unique. */
function docsNamedByCli(): string[] {
  const found = new Set<string>();
  for (const f of walk('src/cli').filter((p) => p.endsWith('.ts'))) {
    for (const m of readFileSync(join(root, f), 'utf8').matchAll(/\bdocs\/[\w./-]*\w/g)) found.add(m[0]);
  }
  return [...found].sort();
}

let packed: Set<string>;

beforeAll(() => {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const [entry] = JSON.parse(out) as { files: { path: string }[] }[];
  packed = new Set(entry.files.map((f) => f.path));
});

describe('the npm package', () => {
  it('holds every docs/ file the command-line help points to', () => {
    const named = docsNamedByCli();
    expect(named).toContain('docs/simulate.md'); // the --json schema reference of `simulate --help`
    for (const p of named) {
      expect(existsSync(join(root, p)), `${p} is named by src/cli but does not exist`).toBe(true);
      expect(packed.has(p), `${p} is named by src/cli but left out of the package`).toBe(true);
    }
  });

  it('holds the README, the licence and every document under docs/', () => {
    expect(packed.has('README.md')).toBe(true);
    expect(packed.has('LICENSE')).toBe(true);
    expect(packed.has('docs/conformance.md')).toBe(true); // the README's reference for behaviour
    const missing = walk('docs').filter((p) => !packed.has(p));
    expect(missing).toEqual([]);
  });

  it('licenses itself as package.json says: MIT, the vfio-dirty authors', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { license: string };
    expect(pkg.license).toBe('MIT');
    const text = readFileSync(join(root, 'LICENSE'), 'utf8');
    expect(text.split('\n')[0]).toBe('MIT License');
    expect(text).toContain('Copyright (c) 2026 the vfio-dirty authors');
  });
});
