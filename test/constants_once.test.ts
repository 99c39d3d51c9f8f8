// Constants defined once (one implementation per rule): the page size, u64 bounds, the
// pin limit, struct sizes and the bitmap header each have one definition, which the code uses.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : f.endsWith('.ts') ? [p] : [];
  });
}

/** Lines of the engine's model and export layers (src/sim and src/cli are tools on top). */
const engineFiles = ['src/vfio', 'src/core', 'src/export']
  .flatMap((d) => files(join(root, d)))
  .concat(['src/u64.ts', 'src/uapi.ts', 'src/errors.ts', 'src/wasm.ts', 'src/engine.ts'].map((f) => join(root, f)));

/** `[file, line]` of every line (comments aside) of `list` matching `re`. */
function hits(list: string[], re: RegExp): string[] {
  return list.flatMap((f) =>
    readFileSync(f, 'utf8')
      .split('\n')
      .map((line, i) => [line.replace(/\/\/.*$/, '').replace(/^\s*\*.*$/, ''), i + 1] as const)
      .filter(([line]) => re.test(line))
      .map(([, n]) => `${relative(root, f)}:${n}`),
  );
}

describe('constants used once', () => {
  it('the page size is PAGE_SHIFT / PAGE_SIZE, never 12 or 4096 by hand', () => {
    expect(hits(engineFiles, /(>>|<<)\s*12n\b|\b4096n\b|pgshift\s*-\s*12\b|\b0x1000n\b|\b0xfffn\b/)).toEqual([]);
  });

  it('U64_MAX is defined in src/u64.ts only', () => {
    expect(hits(engineFiles, /U64_MAX\s*=/)).toEqual(['src/u64.ts:7']);
  });

  it('the pin limit is defined in assembly/constants.ts only', () => {
    expect(hits(engineFiles, /PIN_PAGES_MAX_ENTRIES\s*[:=]\s*\d/)).toEqual([]);
  });

  it('the ioctl decoder takes struct sizes from uapi', () => {
    expect(hits([join(root, 'src/vfio/ioctl.ts')], /[<>]=?\s*(8|16|20|24|32|40|48)\b|Math\.min\([^)]*\b24\b|Uint8Array\(\d+\)/)).toEqual([]);
  });

  it('the dirty bitmap header size is known in assembly/dirty_bitmap.ts only', () => {
    const asm = files(join(root, 'assembly'));
    // (heap.ts has a HEADER of its own: the allocator's block header.)
    const found = hits(asm, /HEADER\s*:\s*usize\s*=|BITMAP_WORDS|bm \+ 16\b/).filter((h) => !h.startsWith('assembly/heap.ts'));
    expect(found.map((h) => h.replace(/:\d+$/, ''))).toEqual(['assembly/dirty_bitmap.ts']); // one definition
  });
});
