// No runtime import cycle under src/: a module graph with a cycle evaluates one of its members
// before the other has run, so a value imported across the cycle can be undefined at load time.
// Only imports that survive compilation count: `import type` and `export type` do not, nor does an
// import whose every name is marked `type`.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (f.endsWith('.ts') && !f.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The relative modules `text` imports or re-exports at run time. */
function runtimeImports(text: string): string[] {
  const out: string[] = [];
  const re = /^\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]/gm;
  for (const m of text.matchAll(re)) {
    const spec = m[4] ?? m[5];
    if (!spec.startsWith('.')) continue;
    if (m[2]) continue; // import type / export type
    const clause = (m[3] ?? '').trim();
    const braces = /^\{([\s\S]*)\}$/.exec(clause);
    if (braces) {
      const names = braces[1].split(',').map((s) => s.trim()).filter(Boolean);
      if (names.length && names.every((n) => n.startsWith('type '))) continue;
    }
    out.push(spec);
  }
  return out;
}

/** Every cycle's first member path, found by depth-first search; [] when the graph is acyclic. */
function findCycle(graph: Map<string, string[]>): string[] {
  const state = new Map<string, 1 | 2>(); // 1 on the stack, 2 done
  const stack: string[] = [];
  const visit = (n: string): string[] | null => {
    state.set(n, 1);
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      if (state.get(m) === 1) return [...stack.slice(stack.indexOf(m)), m];
      if (!state.has(m)) {
        const c = visit(m);
        if (c) return c;
      }
    }
    stack.pop();
    state.set(n, 2);
    return null;
  };
  for (const n of graph.keys()) {
    if (state.has(n)) continue;
    const c = visit(n);
    if (c) return c;
  }
  return [];
}

function graphOf(files: string[]): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const f of files) {
    const deps = runtimeImports(readFileSync(f, 'utf8')).map((s) =>
      relative(root, resolve(dirname(f), s.replace(/\.js$/, '.ts'))),
    );
    g.set(relative(root, f), deps);
  }
  return g;
}

describe('runtime imports under src/', () => {
  it('form no cycle', () => {
    expect(findCycle(graphOf(sources(join(root, 'src'))))).toEqual([]);
  });

  it('the parser skips type-only imports and the search finds a cycle', () => {
    const text = [
      "import type { A } from './a.js';",
      "import { type B, type C } from './b.js';",
      "import { D, type E } from './d.js';",
      "export { F } from './f.js';",
      "export type { G } from './g.js';",
      "import {\n  H,\n  I,\n} from './h.js';",
      "import { readFileSync } from 'node:fs';",
    ].join('\n');
    expect(runtimeImports(text)).toEqual(['./d.js', './f.js', './h.js']);
    const g = new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', []]]);
    expect(findCycle(g)).toEqual(['a', 'b', 'c', 'a']);
    expect(findCycle(new Map([['a', ['b']], ['b', []]]))).toEqual([]);
  });
});
