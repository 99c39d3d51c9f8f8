// Every call of the public surface through the Python and the Node client gives the bytes the
// in-process engine gives.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine } from '../../src/index.js';
import { Client } from '../../src/server/client.js';
import { contractScript } from './contract_script.js';
import { testServer, type TestServer } from './helpers.js';
import { runInProcess, runWithClient } from './script.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await testServer();
});
afterAll(async () => srv.stop());

const here = new URL('.', import.meta.url).pathname;

describe('the walk over the public surface through the server', () => {
  it('the Python client gives the same results, bytes and events as the in-process engine', async () => {
    const steps = contractScript('mdev-py');
    const expected = runInProcess(await createEngine(), steps);
    const file = join(srv.dir, 'contract.json');
    writeFileSync(file, JSON.stringify(steps));
    const { stdout } = await promisify(execFile)('python3', [join(here, 'run_script.py'), srv.path, file], { timeout: 20_000 });
    const got = JSON.parse(stdout);
    expect(got).toEqual(expected);
    // the walk did what it says: a callback ran, the bitmap came back dirty, errors are errnos
    expect(expected.filter((r) => r[0] === 'event')).toEqual([['event', 'mdev-py', '0', '4194304']]);
    const ev = expected.findIndex((r) => r[0] === 'event');
    expect(expected[ev + 1][0]).toBe('0'); // the unmap succeeded once the callback unpinned
    expect(expected.map((r) => r[0]).slice(-11, -3)).toEqual(['-9', '-14', '-25', '-2', '-9', '-14', '-14', '-22']);
  });

  it('the Node client gives the same results', async () => {
    const steps = contractScript('mdev-node');
    const expected = runInProcess(await createEngine(), steps);
    const c = await Client.connect(srv.path);
    expect(await runWithClient(c, steps)).toEqual(expected);
    await c.end();
  });
});
