// The Wasm exports and the host's one typed table of them (src/wasm.ts) name the same functions
// with the same arity, in both builds.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const table = readFileSync(new URL('../src/wasm.ts', import.meta.url), 'utf8');
const body = table.slice(table.indexOf('export interface CoreExports'), table.indexOf('\n}\n', table.indexOf('export interface CoreExports')));
// name(args): ret;  possibly wrapped over several lines
const declared = new Map<string, number>();
for (const m of body.matchAll(/^\s{2}([a-z][a-z0-9_]*)\(([^)]*)\)\s*:/gms)) {
  const params = m[2].split(',').map((p) => p.trim()).filter(Boolean);
  declared.set(m[1], params.length);
}

describe.each(['release', 'debug'])('%s build', (flavour) => {
  it('exports exactly the functions CoreExports declares, with their arity', async () => {
    const bytes = readFileSync(new URL(`../build/${flavour}.wasm`, import.meta.url));
    const mod = await WebAssembly.compile(bytes);
    const inst = new WebAssembly.Instance(mod, { env: { memory: new WebAssembly.Memory({ initial: 1, maximum: 32767 }), abort: () => {} } });
    const fns = Object.entries(inst.exports).filter(([, v]) => typeof v === 'function') as [string, (...a: unknown[]) => unknown][];
    expect(new Set(fns.map(([k]) => k))).toEqual(new Set(declared.keys()));
    for (const [k, f] of fns) expect([k, f.length]).toEqual([k, declared.get(k)]);
  });
});
