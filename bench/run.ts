// `npm run bench`: runs every bench/*.bench.ts module's groups in one process and prints a table.
//   --quick          short smoke run (used by the test suite so the benchmarks do not rot)
//   --json FILE      also write the results as JSON
//   --filter TEXT    only groups whose name contains TEXT
//   get              (a preset) the GET_BITMAP matrix and the runs group alone, their modules only
import { readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { formatTable, runGroup, type BenchGroup, type GroupResult } from './harness.js';

/** Named selections: the modules to load (their groups() may set up eagerly) and group names to keep. */
const PRESETS: Record<string, { modules: string[]; groups: string[] }> = {
  get: { modules: ['vfio.bench', 'export.bench'], groups: ['GET_BITMAP matrix', 'export: runs'] },
};

export async function runBenchmarks(argv: string[]): Promise<GroupResult[]> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      quick: { type: 'boolean', default: false },
      json: { type: 'string' },
      filter: { type: 'string' },
    },
  });
  const presets = positionals.map((p) => {
    const preset = PRESETS[p];
    if (!preset) throw new Error(`unknown benchmark preset '${p}' (known: ${Object.keys(PRESETS).join(', ')})`);
    return preset;
  });
  const here = dirname(fileURLToPath(import.meta.url));
  const files = readdirSync(here)
    .filter((f) => /\.bench\.(js|ts)$/.test(f) && !f.endsWith('.d.ts'))
    .filter((f) => !presets.length || presets.some((p) => p.modules.some((m) => f.startsWith(`${m}.`))))
    .sort();
  const wanted = (name: string): boolean =>
    (!values.filter || name.includes(values.filter)) &&
    (!presets.length || presets.some((p) => p.groups.some((g) => name.includes(g))));
  // Few samples: the plain-TS models take seconds per call at 1 TiB, and ratios settle fast.
  const opts = values.quick ? { maxTime: 0.05, minSamples: 2 } : { maxTime: 1, minSamples: 4 };
  const results: GroupResult[] = [];
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(here, f)).href)) as {
      groups: (quick: boolean) => Promise<BenchGroup[]> | BenchGroup[];
    };
    for (const g of await mod.groups(values.quick ?? false)) {
      if (!wanted(g.name)) continue;
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
