// Layers that exist: the type1 model (src/vfio) reaches the Wasm core only through the typed
// wrappers of src/core (DirtyBitmap, IovaTree, PinTable, UserMemory, the report calls) and the
// Core class, never through the raw export table.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const dir = resolve(dirname(fileURLToPath(import.meta.url)), '../src/vfio');

describe('src/vfio goes through src/core', () => {
  it('no raw export call (core.x.*) in src/vfio', () => {
    const raw = readdirSync(dir)
      .filter((f) => f.endsWith('.ts'))
      .flatMap((f) =>
        readFileSync(join(dir, f), 'utf8')
          .split('\n')
          .map((line, i) => [line, `${f}:${i + 1}`] as const)
          .filter(([line]) => /\.x\b|\bx\.[a-z]+_[a-z_]*\(/.test(line))
          .map(([, at]) => at),
      );
    expect(raw).toEqual([]);
  });
});
