// Where the worker's module is: next to this file once compiled (dist/src/server/worker.js). When
// running from the TypeScript sources (the test runner), the worker is bundled on first use with
// esbuild, a development dependency, into dist/server-dev/ (so the Wasm core resolves as from dist).
import { existsSync, rmSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

let bundled: Promise<URL> | undefined;

/** The URL of the worker module to start. */
export function workerUrl(): Promise<URL> {
  const here = new URL('./worker.js', import.meta.url);
  if (!import.meta.url.endsWith('.ts') && existsSync(fileURLToPath(here))) return Promise.resolve(here);
  bundled ??= (async () => {
    const esbuild = (await import('esbuild' as string)) as {
      build(o: Record<string, unknown>): Promise<unknown>;
    };
    const src = fileURLToPath(new URL('./worker.ts', import.meta.url));
    const out = fileURLToPath(new URL(`../../dist/server-dev/worker-${process.pid}.mjs`, import.meta.url));
    await esbuild.build({
      entryPoints: [src], bundle: true, platform: 'node', format: 'esm', outfile: out,
      logLevel: 'silent', target: 'node20',
    });
    process.once('exit', () => rmSync(out, { force: true }));
    return pathToFileURL(out);
  })();
  return bundled;
}
