// The CLI and the server's worker bundled with esbuild, so a test can run `vfio-dirty serve` as a
// child process from the TypeScript sources. Placed two levels below the repository so the Wasm
// core resolves as from dist/.
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

let built: Promise<string> | undefined;

/** The path of the bundled CLI (built once per test process). */
export function bundledCli(): Promise<string> {
  built ??= (async () => {
    const esbuild = (await import('esbuild' as string)) as { build(o: Record<string, unknown>): Promise<unknown> };
    const root = fileURLToPath(new URL('../../', import.meta.url));
    const dir = `${root}dist/sd-${process.pid}`;
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const common = { bundle: true, platform: 'node', format: 'esm', logLevel: 'silent', target: 'node20' };
    await esbuild.build({ ...common, entryPoints: [`${root}src/cli/main.ts`], outfile: `${dir}/cli.mjs` });
    await esbuild.build({ ...common, entryPoints: [`${root}src/server/worker.ts`], outfile: `${dir}/worker.js` });
    return `${dir}/cli.mjs`;
  })();
  return built;
}
