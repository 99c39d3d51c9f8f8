// The charting library the report inlines: uPlot (MIT), its minified script, style sheet and
// licence read from node_modules when a report is written, so the page needs no network.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** What the page embeds of uPlot. */
export interface UplotAssets {
  /** uPlot's version, from its package.json. */
  version: string;
  /** The minified IIFE build: defines the global `uPlot`. */
  js: string;
  /** uPlot's own style sheet. */
  css: string;
  /** The licence notice the MIT licence asks to keep with copies. */
  licence: string;
}

let cached: UplotAssets | null = null;

/**
 * Reads uPlot's files once per process.
 * @throws Error when the `uplot` package is not installed, or its script could end a <script>
 */
export function uplotAssets(): UplotAssets {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const dir = dirname(require.resolve('uplot/package.json'));
  const read = (p: string) => readFileSync(join(dir, p), 'utf8');
  const js = read('dist/uPlot.iife.min.js');
  const css = read('dist/uPlot.min.css');
  // Inlined as is: a '</script' or '</style' inside would end the element early.
  if (/<\/script/i.test(js) || /<\/style/i.test(css)) throw new Error('uplot: its files cannot be inlined as they are');
  cached = { version: (JSON.parse(read('package.json')) as { version: string }).version, js, css, licence: read('LICENSE').trim() };
  return cached;
}
