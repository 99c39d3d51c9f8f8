// `npm run bench`: runs every bench/*.bench.ts module's groups in one process and prints a table.
//   --quick          short smoke run (used by the test suite so the benchmarks do not rot)
//   --json FILE      also write the results as JSON
//   --filter TEXT    only groups whose name contains TEXT
import { readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { formatTable, runGroup, type BenchGroup, type GroupResult } from './harness.js';

export async function runBenchmarks(argv: string[]): Promise<GroupResult[]> {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      json: { type: 'string' },
      filter: { type: 'string' },
    },
  });
  const here = dirname(fileURLToPath(import.meta.url));
  const files = readdirSync(here)
    .filter((f) => /\.bench\.(js|ts)$/.test(f) && !f.endsWith('.d.ts'))
    .sort();
  // Few samples: the plain-TS models take seconds per call at 1 TiB, and ratios settle fast.
  const opts = values.quick ? { maxTime: 0.05, minSamples: 2 } : { maxTime: 1, minSamples: 4 };
  const results: GroupResult[] = [];
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(here, f)).href)) as {
      groups: (quick: boolean) => Promise<BenchGroup[]> | BenchGroup[];
    };
    for (const g of await mod.groups(values.quick ?? false)) {
      if (values.filter && !g.name.includes(values.filter)) continue;
      const r = await runGroup(g, opts);
      results.push(r);
      console.log(formatTable([r]));
      (globalThis as { gc?: () => void }).gc?.();
    }
  }
  if (values.json) writeFileSync(values.json, JSON.stringify(results, null, 2));
  return results;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  runBenchmarks(process.argv.slice(2)).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
