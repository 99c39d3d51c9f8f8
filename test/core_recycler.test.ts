// A core instance passed from a disposed core to the next one (CoreRecycler, src/core_recycler.ts): the
// same instance and memory, made new: memory zeroed, static data written back, every mutable
// global reset. The whole-simulation check is in compare_run.test.ts.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Core, type CoreFlavour } from '../src/wasm.js';
import { CoreRecycler } from '../src/core_recycler.js';
import { Engine } from '../src/engine.js';
import { ENOMEM } from '../assembly/constants.js';

/** The heap's figures and switches, which live in the core's globals. */
function heapState(core: Core) {
  const x = core.x;
  return { used: x.heap_used(), live: x.heap_live(), calls: x.heap_alloc_calls(), failPending: x.heap_fail_pending() };
}

/** Leaves state everywhere a core keeps it: blocks, a grown memory, counters, an armed failure, bytes. */
function scribble(core: Core): void {
  for (const size of [40, 5000, 3 << 20]) expect(core.x.heap_alloc(size)).toBeGreaterThan(0);
  core.x.heap_fail_nth(3);
  const bytes = core.u8();
  bytes.fill(0xa5, 0, core.x.heap_static_end()); // the static data: free-list heads, scratch, the debug build's strings
  bytes.fill(0x5a, bytes.length - 4096);
}

describe('a recycled core instance', () => {
  it.each<CoreFlavour>(['release', 'debug'])('is the same instance, as a new one (%s)', async (flavour) => {
    const fresh = await Core.create({ flavour });
    const freshState = heapState(fresh);
    const staticData = fresh.u8().slice(0, fresh.x.heap_static_end());
    const recycler = new CoreRecycler();
    const first = await Core.create({ flavour, recycler });
    const { memory, x } = { memory: first.memory, x: first.x };
    scribble(first);
    first.dispose('gone');
    const second = await Core.create({ flavour, recycler });
    expect(second.memory).toBe(memory);
    expect(second.x).toBe(x);
    expect(heapState(second)).toEqual(freshState);
    expect(second.u8().slice(0, second.x.heap_static_end())).toEqual(staticData);
    expect(second.u8().subarray(second.x.heap_static_end()).every((b) => b === 0)).toBe(true);
    // The heap starts again: the armed failure is gone, the first allocations succeed.
    for (let i = 0; i < 4; i++) expect(second.x.heap_alloc(64)).toBeGreaterThan(0);
    second.x.heap_fail_nth(1);
    expect(second.x.heap_alloc(64)).toBe(-ENOMEM);
  });

  it('holds static data in the debug build (the strings of its assertions), which comes back', async () => {
    const core = await Core.create({ flavour: 'debug' });
    const end = core.x.heap_static_end();
    expect(core.u8().subarray(0, end).some((b) => b !== 0)).toBe(true);
  });

  it('is let go for another build or another memory limit, and a disposed core keeps none', async () => {
    const recycler = new CoreRecycler();
    const a = await Core.create({ recycler });
    const memory = a.memory;
    a.dispose('gone');
    const b = await Core.create({ recycler, memoryLimit: 64 << 20 });
    const bMemory = b.memory;
    expect(bMemory).not.toBe(memory);
    b.dispose('gone');
    const c = await Core.create({ recycler, flavour: 'debug' });
    const cMemory = c.memory;
    expect(cMemory).not.toBe(bMemory);
    c.dispose('gone');
    c.dispose('again'); // the instance is given once
    const d = await Core.create({ recycler, flavour: 'debug' });
    const e = await Core.create({ recycler, flavour: 'debug' });
    expect(d.memory).toBe(cMemory);
    expect(e.memory).not.toBe(cMemory);
    // The disposed core throws as before; it no longer holds the instance its successor runs on.
    expect(() => c.x.heap_used()).toThrow('again');
    expect(() => c.memory).toThrow('again');
  });

  it('gives an engine the figures of a fresh engine', async () => {
    const recycler = new CoreRecycler();
    const first = await Engine.create(undefined, recycler);
    const inUse = first.memoryInUse();
    const proc = first.createProcess();
    proc.mmap(1n << 30n);
    first.dispose();
    const second = await Engine.create(undefined, recycler);
    const fresh = await Engine.create();
    expect(second.memoryInUse()).toBe(inUse);
    expect(heapState(second.core)).toEqual(heapState(fresh.core));
    second.dispose();
    fresh.dispose();
  });
});

describe('the build', () => {
  it.each<CoreFlavour>(['release', 'debug'])('resets every mutable global of the %s core', (flavour) => {
    const wat = readFileSync(new URL(`../build/${flavour}.wat`, import.meta.url), 'utf8');
    const mutable = new Set([...wat.matchAll(/^ \(global (\S+) \(mut /gm)].map((m) => m[1]));
    const body = /\(func \$core_reset_globals\n([\s\S]*?)\n \)\n/.exec(wat);
    expect(body).not.toBe(null);
    const reset = new Set([...(body as RegExpExecArray)[1].matchAll(/global\.set (\S+)/g)].map((m) => m[1]));
    expect(mutable.size).toBeGreaterThan(20);
    expect([...mutable].filter((g) => !reset.has(g))).toEqual([]);
  });
});

describe('a core without core_reset_globals (built without the transform)', () => {
  it('is not kept: the next core is a new instance', async () => {
    const recycler = new CoreRecycler();
    const a = await Core.create({ recycler });
    const memory = a.memory;
    const raw = a.x as unknown as Record<string, unknown>;
    const reset = raw.core_reset_globals;
    delete raw.core_reset_globals;
    try {
      a.dispose('gone');
      const b = await Core.create({ recycler });
      expect(b.memory).not.toBe(memory);
      expect(typeof b.x.core_reset_globals).toBe('function');
      b.dispose('gone');
    } finally {
      raw.core_reset_globals = reset;
    }
  });
});
