// simulate's trace replayed: every harvest's bitmap, byte for byte, for runs with the vGPU's pins,
// churn and dmaRw writes, each workload's CPU writes, and the passthrough device both ways.
import { describe, expect, it } from 'vitest';
import { createEngine } from '../src/index.js';
import { defaultConfig } from '../src/cli/options.js';
import type { SimConfig } from '../src/sim/config.js';
import { replayTrace } from '../src/sim/replay.js';
import { simulate } from '../src/sim/simulator.js';
import { formatTraceEvent, parseTraceLine, type TraceEvent } from '../src/sim/trace.js';

const MiB = 2 ** 20;

/** A 64 MiB guest with the vGPU churning and writing, above and below the hole. */
function config(o: Partial<SimConfig> = {}): SimConfig {
  return {
    ...defaultConfig(), memory: 64 * MiB, lowMemory: 40 * MiB, vgpuRegion: 16 * MiB, vgpuPinned: 4 * MiB, vgpuChurn: 16 * MiB,
    vgpuDmaRate: 8 * MiB, bandwidth: 32 * MiB, dirtyRate: 24 * MiB, maxRounds: 6, ...o,
  };
}

async function roundTrip(c: SimConfig) {
  const lines: string[] = [];
  const harvests: Buffer[] = [];
  const { summary } = simulate(await createEngine(), c, {
    trace: (l) => lines.push(l),
    onHarvest: (_round, report) => harvests.push(Buffer.from(report.bytes())),
  });
  const reads: Buffer[] = [];
  const labels: string[] = [];
  const n = replayTrace(await createEngine(), lines.join('\n'), (r) => {
    reads.push(Buffer.from(r.report.bytes()));
    labels.push(r.label ?? '');
  });
  return { summary, lines, harvests, reads, labels, n };
}

describe('simulate --trace, then replay', () => {
  it.each([
    ['mixed workload, vGPU', config()],
    ['uniform workload, passthrough pinning', config({ workload: 'uniform', passthrough: 'pinning' })],
    ['sweep, no vGPU, passthrough never pinning (all-dirty)', config({ workload: 'sweep', vgpu: false, passthrough: 'unpinned', maxRounds: 2 })],
    ['hotcold with auto-converge', config({ workload: 'hotcold', dirtyRate: 64 * MiB, throttle: { ...defaultConfig().throttle, autoConverge: true } })],
  ])('reproduces every harvest byte for byte: %s', async (_name, c) => {
    const t = await roundTrip(c);
    expect(t.harvests.length).toBe(t.summary.roundsDetail.length - 1);
    expect(t.reads.length).toBe(t.harvests.length);
    expect(t.n.reads).toBe(t.harvests.length);
    for (let i = 0; i < t.harvests.length; i++) expect(Buffer.compare(t.reads[i], t.harvests[i]), `harvest ${i + 1}`).toBe(0);
    expect(t.labels).toEqual(t.harvests.map((_, i) => `round ${i + 1}`));
    // Each line parses back to an event; the run's device events are there.
    const ops = new Set(t.lines.map((l, i) => parseTraceLine(l, i + 1)!.op));
    expect(ops.has('read') && ops.has('map') && ops.has('start') && ops.has('stop')).toBe(true);
  });

  it('records the vGPU\'s pins, churn and ring writes, and the CPU log as runs', async () => {
    const t = await roundTrip(config());
    const count = (op: string) => t.lines.filter((l) => l.startsWith(`{"op":"${op}"`)).length;
    expect(count('device')).toBe(1);
    expect(count('map')).toBe(2); // low RAM and RAM above 4 GiB
    expect(count('pin')).toBeGreaterThan(2); // the 2 initial buffers and the churn
    expect(count('write')).toBeGreaterThan(0);
    expect(count('cpu-dirty')).toBeGreaterThanOrEqual(t.harvests.length);
    expect(t.lines[0]).toBe('{"op":"device","name":"vgpu0","kind":"emulated","pins":true}');
    expect(t.lines[1]).toBe('{"op":"map","iova":"0x0","size":"0x2800000"}');
    expect(t.lines[2]).toBe('{"op":"map","iova":"0x100000000","size":"0x1800000"}');
    expect(t.lines[3]).toBe('{"op":"start"}');
  });
});

describe('the CPU dirty log in a trace', () => {
  it('merges the log into a read with "cpu", at the read\'s offset, then clears it', async () => {
    const trace = [
      '{"op":"map","iova":"0x10000","size":"0x10000"}', // guest pages 16 .. 31
      '{"op":"start"}',
      '{"op":"cpu-dirty","runs":[[17,2],[31,1]]}',
      '{"op":"read","iova":"0x10000","size":"0x10000"}', // without "cpu": the log is kept
      '{"op":"read","iova":"0x10000","size":"0x10000","cpu":true}',
      '{"op":"read","iova":"0x10000","size":"0x10000","cpu":true}',
      '{"op":"cpu-dirty","runs":[[40,1]]}', // past the mapping: grows the log, reads nothing
      '{"op":"read","iova":"0x10000","size":"0x10000","cpu":true}',
    ].join('\n');
    const got: [number, number[]][] = [];
    replayTrace(await createEngine(), trace, (r) => got.push([r.count, [...r.report.bytes().subarray(0, 2)]]));
    expect(got).toEqual([[0, [0, 0]], [3, [0b110, 0b1000_0000]], [0, [0, 0]], [0, [0, 0]]]);
  });

  it('writes every op so that it parses back to the same event', () => {
    const events: TraceEvent[] = [
      { op: 'device', name: 'gpu0', kind: 'iommu', pins: false },
      { op: 'map', iova: 0x100000n, size: 0x200000n, read: true, write: false },
      { op: 'unmap', iova: 0x100000n, size: 0x200000n },
      { op: 'pin', iova: 0x101000n, npage: 4, write: false, device: 'gpu0' },
      { op: 'unpin', iova: 0x101000n, npage: 4 },
      { op: 'write', iova: 0x180000n, length: 8192, value: 7, device: 'gpu0' },
      { op: 'start' },
      { op: 'stop' },
      { op: 'cpu-dirty', runs: [[1, 2], [5, 1]] },
      { op: 'read', iova: 0n, size: 1n << 40n, clear: false, pageSize: 2n << 20n, label: 'round 1', cpu: true },
    ];
    for (const ev of events) expect(parseTraceLine(formatTraceEvent(ev), 1)).toEqual(ev);
  });
});
