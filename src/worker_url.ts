// Where a worker thread's module is. Once compiled, it sits next to the module that starts it
// (dist/src/<folder>/worker.js); the build may also bundle it into one file,
// dist/<folder>-bundle/<name>.mjs (npm run bundle-workers), which a new thread loads several times
// faster than the hundred modules it imports one by one. The bundle is taken only when it is at
// least as new as the compiled module, so a compile without it never runs stale code. When running
// from the TypeScript sources (the test runner), the module is bundled on first use with esbuild,
// a development dependency, into dist/<folder>-dev/. Both bundles sit two levels below the package
// root like dist/src/<folder>/, so the Wasm core resolves as from dist.
import { existsSync, rmSync, statSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const bundled = new Map<string, Promise<URL>>();

/**
 * The URL of the worker module `name` (without suffix) beside the module whose URL is `from`
 * (its `import.meta.url`).
 */
export function workerModuleUrl(from: string, name: string): Promise<URL> {
  const here = new URL(`./${name}.js`, from);
  const folder = fileURLToPath(new URL('.', from)).split(/[\\/]/).filter(Boolean).pop();
  if (!from.endsWith('.ts') && existsSync(fileURLToPath(here))) {
    const bundle = new URL(`../${folder}-bundle/${name}.mjs`, import.meta.url);
    const fresh = existsSync(fileURLToPath(bundle)) && statSync(bundle).mtimeMs >= statSync(here).mtimeMs;
    return Promise.resolve(fresh ? bundle : here);
  }
  const src = fileURLToPath(new URL(`./${name}.ts`, from));
  let url = bundled.get(src);
  if (!url) {
    url = (async () => {
      const esbuild = (await import('esbuild' as string)) as {
        build(o: Record<string, unknown>): Promise<unknown>;
      };
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
