// The version of vfio-dirty, from its package.json: the nearest one above this file (src/cli in
// a checkout, dist/src/cli once built) whose name is vfio-dirty.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

/** The package version, e.g. "0.1.0". @throws Error when no package.json of vfio-dirty is found */
export function packageVersion(): string {
  if (cached) return cached;
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'vfio-dirty' && typeof pkg.version === 'string') return (cached = pkg.version);
    } catch {
      // none here, or not readable: look further up
    }
    if (dirname(dir) === dir) throw new Error('cannot find the package.json of vfio-dirty');
  }
}
