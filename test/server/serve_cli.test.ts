// `vfio-dirty serve` as a process: socket permissions, JSON logs, and a graceful SIGTERM that
// answers every request it received and removes its socket.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Client } from '../../src/server/client.js';
import { uapi } from '../../src/uapi.js';
import { bundledCli } from './cli_bundle.js';
import { spawnServe, type Serving } from './serve_child.js';

const dir = mkdtempSync(join(tmpdir(), 'vfd-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Running = Serving;

function serve(args: string[]): Promise<Running> {
  return spawnServe(args);
}

describe('vfio-dirty serve', () => {
  it('listens with the operator\'s mode, logs JSON lines, and stops gracefully on SIGTERM', async () => {
    const sock = join(dir, 's1');
    const s = await serve(['--listen', sock, '--mode', '0660', '--group', 'kind=emulated,devices=v0', '--profile', 'linux-6.6']);
    expect(statSync(sock).mode & 0o777).toBe(0o660);
    expect(s.logs[0]).toMatchObject({ level: 'info', event: 'listen', path: sock, groups: [{ id: 1, devices: ['v0'] }] });
    const c = await Client.connect(sock);
    expect(await c.open('/dev/vfio/vfio')).toBe(3);
    // a burst of pipelined requests, then SIGTERM: every one is answered (0, or ESHUTDOWN if it
    // arrived after the signal), none is dropped
    const burst = Array.from({ length: 500 }, () => c.ioctl(3, uapi.VFIO_GET_API_VERSION));
    await new Promise((res) => setImmediate(res)); // the burst is written
    s.child.kill('SIGTERM');
    const answers = await Promise.all(burst);
    expect(answers.every((a) => a === 0 || a === -108)).toBe(true);
    expect(answers[0]).toBe(0);
    expect(await s.exited).toBe(0);
    expect(existsSync(sock)).toBe(false);
    const events = s.logs.map((l) => l.event);
    expect(events).toEqual(expect.arrayContaining(['connect', 'hello', 'shutdown', 'disconnect', 'stopped']));
  });

  it('defaults to mode 0600 and refuses a path where a server answers', async () => {
    const sock = join(dir, 's2');
    const s = await serve(['--listen', sock]);
    expect(statSync(sock).mode & 0o777).toBe(0o600);
    const second = spawn(process.execPath, [await bundledCli(), 'serve', '--listen', sock], { stdio: 'ignore' });
    expect(await new Promise((res) => second.once('exit', res))).toBe(1);
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
  });
});

describe('vfio-dirty serve options', () => {
  it('help lists the options; a bad value is exit status 2 with the option named', async () => {
    const { main } = await import('../../src/cli/main.js');
    let out = '';
    let err = '';
    const io = { out: { write: (s: string) => (out += s) }, err: { write: (s: string) => (err += s) } };
    expect(await main(['help', 'serve'], io)).toBe(0);
    expect(out).toContain('--listen PATH');
    expect(await main(['serve'], io)).toBe(2);
    expect(err).toContain('--listen: a socket path is required');
    expect(await main(['serve', '--listen', join(dir, 'x'), '--profile', 'linux-5.8'], io)).toBe(2);
    expect(err).toContain('--profile: must be one of linux-6.18, linux-6.6');
    expect(await main(['serve', '--listen', join(dir, 'x'), '--mode', '999'], io)).toBe(2);
    expect(err).toContain('--mode: expected octal like 0600');
    expect(await main(['serve', '--listen', join(dir, 'x'), '--group', 'kind=vfio'], io)).toBe(2);
    expect(err).toContain('--group: kind: iommu or emulated, not "vfio"');
    const { parseServeOptions } = await import('../../src/server/cli.js');
    const o = parseServeOptions(['--listen', 'S', '--group', 'devices=a', '--group=kind=emulated', '--mode', '0640',
      '--profile', 'linux-6.6', '--dma-entry-limit', '7', '--ioasid-capacity', '16', '--callback-timeout', '250ms']);
    expect(o).toMatchObject({
      listen: 'S', groups: ['devices=a', 'kind=emulated'], mode: 0o640, callbackTimeoutMs: 250,
      engine: { profile: 'linux-6.6', dmaEntryLimit: 7, ioasidCapacity: 16 },
    });
  });
});
