// The shipped clients' worked examples against a live server: the Python module and the C
// library (compiled with gcc into a temp dir).
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testServer, type TestServer } from './helpers.js';

const run = promisify(execFile);
const here = new URL('.', import.meta.url).pathname;
const clients = join(new URL('.', import.meta.url).pathname, '..', '..', 'clients');
// 'hello' at 0x5000 dirties page 5; 8 KiB at 0x200000 dirties pages 512 and 513.
const DIRTY = 'dirty pages: 5 512 513\n';

let srv: TestServer;
beforeAll(async () => {
  srv = await testServer();
});
afterAll(async () => srv.stop());

describe('shipped clients', () => {
  it('the Python example maps, tracks, writes through a device and harvests the bitmap', async () => {
    const { stdout } = await run('python3', [join(clients, 'python', 'example.py'), srv.path, 'py-vgpu'], { timeout: 20_000 });
    expect(stdout).toBe(DIRTY);
  });

  it('the C example, compiled with gcc, does the same', async () => {
    const exe = join(srv.dir, 'example');
    await run('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-std=c11', '-o', exe,
      join(clients, 'c', 'example.c'), join(clients, 'c', 'vfio_dirty.c')], { timeout: 60_000 });
    const { stdout } = await run(exe, [srv.path, 'c-vgpu'], { timeout: 20_000 });
    expect(stdout).toBe(DIRTY);
  });

  it('a C vendor driver unpins from inside its dma_unmap callback; the unmap then succeeds', async () => {
    const exe = join(srv.dir, 'c_callback');
    await run('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-std=c11', '-I', join(clients, 'c'), '-o', exe,
      join(here, 'c_callback.c'), join(clients, 'c', 'vfio_dirty.c')], { timeout: 60_000 });
    const { stdout } = await run(exe, [srv.path], { timeout: 20_000 });
    // the kernel writes back the unmapped size into the struct
    expect(stdout).toBe('setup 0 pin 4\nevent c-cb 0 1048576 unpin 0\nunmap 0 size 1048576 events 1\n');
  });

  it('a C VMM and device model: a vCPU store notifies its page-track node; a device DMA write is logged', async () => {
    const exe = join(srv.dir, 'c_subsystems');
    await run('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-std=c11', '-I', join(clients, 'c'), '-o', exe,
      join(here, 'c_subsystems.c'), join(clients, 'c', 'vfio_dirty.c')], { timeout: 60_000 });
    const { stdout } = await run(exe, [srv.path], { timeout: 20_000 });
    expect(stdout).toBe([
      'setup 0 count 1', 'track 0x4002 gpa 0x105008 bytes 8', 'vcpu_write 8',
      'dirty log 20 00 00 00 00 00 00 00', 'guest 01 02 03 04 05 06 07 08',
      'device setup 0 dma 0 unmapped -14', 'report 20 00 00 00 00 00 00 00', 'dma read 0 hi', '',
    ].join('\n'));
  });
});
