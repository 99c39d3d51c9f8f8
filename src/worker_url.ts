// Where a worker thread's module is. Once compiled, it sits next to the module that starts it
// (dist/src/<folder>/worker.js). When running from the TypeScript sources (the test runner), it is
// bundled on first use with esbuild, a development dependency, into dist/<folder>-dev/, two levels
// below the package root like dist/src/<folder>/, so the Wasm core resolves as from dist.
import { existsSync, rmSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const bundled = new Map<string, Promise<URL>>();

/**
 * The URL of the worker module `name` (without suffix) beside the module whose URL is `from`
 * (its `import.meta.url`).
 */
export function workerModuleUrl(from: string, name: string): Promise<URL> {
  const here = new URL(`./${name}.js`, from);
  if (!from.endsWith('.ts') && existsSync(fileURLToPath(here))) return Promise.resolve(here);
  const src = fileURLToPath(new URL(`./${name}.ts`, from));
  let url = bundled.get(src);
  if (!url) {
    url = (async () => {
      const esbuild = (await import('esbuild' as string)) as {
        build(o: Record<string, unknown>): Promise<unknown>;
      };
      const folder = fileURLToPath(new URL('.', from)).split(/[\\/]/).filter(Boolean).pop();
      const out = fileURLToPath(new URL(`../dist/${folder}-dev/${name}-${process.pid}.mjs`, import.meta.url));
      await esbuild.build({
        entryPoints: [src], bundle: true, platform: 'node', format: 'esm', outfile: out,
        logLevel: 'silent', target: 'node20',
      });
      process.once('exit', () => rmSync(out, { force: true }));
      return pathToFileURL(out);
    })();
    bundled.set(src, url);
  }
  return url;
}
