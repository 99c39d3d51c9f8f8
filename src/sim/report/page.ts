// What every report page shares: HTML escaping, the data embedded as JSON, uPlot inlined (its
// style sheet, its script and the licence notice in the footer), the base style, and the head
// and tail of a page.
import { uplotAssets } from './vendor.js';
import { CLIENT_COMMON } from './client_common.js';

/** Text as HTML: `&`, `<`, `>` and `"` escaped. */
export function esc(s: string): string {
  return s.replace(/[&<>"]/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[ch] as string);
}

/** `data` as JSON for a <script type="application/json" id="report-data"> element. */
export function embeddedJson(data: unknown): string {
  // JSON inside <script>: escape '<' so no '</script>' can end the element early.
  return JSON.stringify(data).replace(/</g, '\\u003c');
}

/** uPlot's parts of a page: a <style>, a <script>, and the licence notice for the footer. */
export interface UplotInline {
  version: string;
  style: string;
  script: string;
  licence: string;
}

/**
 * uPlot, inlined as a page embeds it.
 * @throws Error when the `uplot` package cannot be read
 */
export function uplotInline(): UplotInline {
  const u = uplotAssets();
  return {
    version: u.version,
    style: `<style>\n/* uPlot ${u.version} (MIT), inlined */\n${u.css}\n</style>`,
    script: `<script>\n/*! uPlot ${u.version} (MIT licence, see the page's footer) */\n${u.js}\n</script>`,
    licence: `<details><summary>Charts drawn with uPlot ${u.version}, inlined in this page, under the MIT licence.</summary>\n<pre id="licence-uplot">${esc(u.licence)}</pre></details>`,
  };
}

/** The style every report page starts from. */
export const BASE_CSS = `
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2230; background: #fff; }
  main { max-width: 1100px; margin: 24px auto; padding: 0 20px; }
  h1 { font-size: 20px; margin: 0 0 4px; }
  h2 { font-size: 16px; margin: 28px 0 4px; }
  .note { font-size: 12px; color: #556; margin: 0 0 8px; max-width: 980px; }
  .figure { position: relative; }
  .tip { position: absolute; z-index: 10; pointer-events: none; background: rgba(29,34,48,0.92); color: #fff;
         font-size: 12px; padding: 5px 8px; border-radius: 4px; white-space: nowrap; }
  .tip-head { font-weight: 600; }
  .uplot .u-legend { font-size: 12px; text-align: left; }
  footer { margin-top: 28px; font-size: 12px; color: #556; }
  footer pre { white-space: pre-wrap; max-width: 760px; }
`;

/**
 * The start of a report page, up to and including its title heading: the document head with
 * uPlot's style, the shared CSS and the page's own (`css`), then `<body><main><h1>`.
 */
export function pageHead(title: string, uplotStyle: string, css: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
${uplotStyle}
<style>
${BASE_CSS}${css}
</style>
</head>
<body>
<main>
<h1>${esc(title)}</h1>`;
}

/**
 * The end of a report page: the licence footer, the embedded data (`json`, from embeddedJson),
 * uPlot, then the shared client code and the page's own `scripts`.
 */
export function pageTail(uplot: UplotInline, json: string, scripts: readonly string[]): string {
  return `<footer>
${uplot.licence}
</footer>
</main>
<script type="application/json" id="report-data">${json}</script>
${uplot.script}
<script>
${[CLIENT_COMMON, ...scripts].join('\n')}
</script>
</body>
</html>
`;
}
