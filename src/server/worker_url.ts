// Where the server's worker module is: src/worker_url.ts finds it next to this file once
// compiled (dist/src/server/worker.js), or bundles it from the sources under the test runner.
import { workerModuleUrl } from '../worker_url.js';

/** The URL of the worker module to start. */
export function workerUrl(): Promise<URL> {
  return workerModuleUrl(import.meta.url, 'worker');
}
