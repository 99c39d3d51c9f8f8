// Acceptance vectors of KVM, device dirty tracking and PASID/accelerators through the Python and
// the Node client: the same rows, bytes and events as the in-process engine, and the vectors'
// bytes.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createEngine } from '../../src/index.js';
import { Client } from '../../src/server/client.js';
import { testServer } from './helpers.js';
import { runInProcess, runWithClient, type Result, type Step } from './script.js';
import { accelV34, deviceV21, iommufdV52, kvmV54, pasidV21 } from './subsystem_scripts.js';

const here = new URL('.', import.meta.url).pathname;

/** Runs `steps` through Python, then the Node client, each on a fresh server; and in process. */
async function threeWays(steps: Step[]): Promise<{ py: Result[]; node: Result[]; local: Result[] }> {
  const local = runInProcess(await createEngine(), steps);
  let srv = await testServer();
  let py: Result[];
  try {
    const file = join(srv.dir, 'steps.json');
    writeFileSync(file, JSON.stringify(steps));
    const { stdout } = await promisify(execFile)('python3', [join(here, 'run_script.py'), srv.path, file], { timeout: 20_000 });
    py = JSON.parse(stdout) as Result[];
  } finally {
    await srv.stop();
  }
  srv = await testServer();
  try {
    const c = await Client.connect(srv.path);
    const node = await runWithClient(c, steps);
    await c.end();
    return { py, node, local };
  } finally {
    await srv.stop();
  }
}

describe('the other subsystems\' vectors through the server', () => {
  it('KVM V54: node, tracking and unlink through dev.kvm; the unlink callback untracks and unregisters', async () => {
    const { py, node, local } = await threeWays(kvmV54('vgpu54'));
    expect(py).toEqual(local);
    expect(node).toEqual(local);
    const rows = py.map((r) => r.join(' '));
    const write = rows.indexOf('track_write vgpu54 1069064 01 02 03 04 05 06 07 08'); // 0x105008
    expect(write).toBeGreaterThan(0);
    expect(rows[write + 1]).toBe('8');
    expect(rows[write + 3]).toBe('0 20 00 00 00 00 00 00 00');
    // DEL(gfd): the unlink event, the two calls made inside it, then the ioctl's own row
    const unlink = rows.indexOf('unlink vgpu54');
    expect(py.slice(unlink + 1, unlink + 3)).toEqual([['0'], ['0']]);
    expect(py[unlink + 3][0]).toBe('0');
    expect(py[unlink + 4]).toEqual(['0']); // writeTrackCount(0x105) = 0
    expect(py[unlink + 5]).toEqual(['8']); // no trackWrite any more
    expect(rows.filter((r) => r.startsWith('track_write'))).toHaveLength(2);
    expect(py[unlink + 7]).toEqual(['0', '20 00 00 00 00 00 00 00']);
    // the batch: one store notified (page 0x101 tracked), both made; then the slot's removal
    expect(rows.slice(-7)).toEqual(['0', '0', 'track_write vgpu54 1052672 05 06 07 08', '2',
      'remove_region vgpu54 256 16', expect.stringMatching(/^0 /), '-22']);
  });

  it('device-dirty V21: a tracker made with dmaLogging in CREATE_GROUP records dev.dmaWrite', async () => {
    const { py, node, local } = await threeWays(deviceV21('d21'));
    expect(py).toEqual(local);
    expect(node).toEqual(local);
    expect(py.at(-6)).toEqual(['0', '09 00 00 00 00 00 00 00 02 00 00 00 00 00 00 00']);
    expect(py.at(-3)).toEqual(['0', '00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00']);
    expect(py.at(-1)).toEqual(['-14']); // outside the mapping: an IOMMU fault
  });

  it('device-dirty V52: a cdev bound to iommufd, HWPT dirty bits of dev.dmaWrite, harvested twice', async () => {
    const steps = iommufdV52('f52');
    const { py, node, local } = await threeWays(steps);
    expect(py).toEqual(local);
    expect(node).toEqual(local);
    expect(py[4]).toEqual(['0', '10 00 00 00 00 00 00 00 03 00 00 00 02 00 00 00']); // BIND wrote devid 2 at @12
    expect(py.at(-4)).toEqual(['0', '05 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00']);
    expect(py.at(-1)).toEqual(['0', '00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00']);
  });

  it('PASID V21: the VM set notifier as events, FREE [1,3] notifies 1, 2, 3', async () => {
    const { py, node, local } = await threeWays(pasidV21('p21'));
    expect(py).toEqual(local);
    expect(node).toEqual(local);
    expect(py[3]).toEqual(['-2']); // no VM set before SET_IOMMU
    expect(py.filter((r) => r[0] === 'ioasid').map((r) => r.slice(1).join(','))).toEqual(
      ['1,1,1', '1,2,1', '1,3,1', '3,2,1', '2,1,1', '2,2,1', '2,3,1']);
    expect(py.at(-6)).toEqual(['1']); // notify(2, BIND): the set chain's result, our EVENT_DONE value
  });

  it('accelerator V34/V33 and accel.queues(): accelerator DMA with the connection\'s PASID, SVA bind and unbind, a queue job', async () => {
    const { py, node, local } = await threeWays(accelV34());
    expect(py).toEqual(local);
    expect(node).toEqual(local);
    expect(py.slice(0, 2)).toEqual([['accel', '/dev/zip-0'], ['accel', '/dev/sec-1']]);
    expect(py.slice(-18, -9)).toEqual([['1'], ['1'], ['1'], ['0'], ['0'], ['0'], ['-2'], ['-22'], ['-22']]);
    // the job written through the DUS mapping is what the device reads; its MMIO write is seen
    expect(py.slice(-6)).toEqual([['0'], ['0', 'de ad be ef'], ['0'], ['0', '01'], ['-6'], ['-22']]);
  });
});
