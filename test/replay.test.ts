// Replay against the real engine: what a trace's reads return, how the devices' drivers answer a
// dma_unmap notification, and the error rule: the first bad line (unparseable, or refused by the
// engine) is reported with its number and reason, lines before it ran, nothing after it did.
import { describe, expect, it } from 'vitest';
import { createEngine } from '../src/index.js';
import type { PageRun } from '../src/export/dirty_report.js';
import { replayTrace, type ReadResult } from '../src/sim/replay.js';
import { TraceError } from '../src/sim/trace.js';

async function replay(lines: string[]) {
  const engine = await createEngine();
  // The report is lent to the callback: keep its runs and bytes.
  const reads: (Omit<ReadResult, 'report'> & { runs: PageRun[]; bytes: Uint8Array })[] = [];
  let error: TraceError | undefined;
  let counts;
  try {
    counts = replayTrace(engine, lines.join('\n'), ({ report, ...r }) => reads.push({ ...r, runs: report.runs(), bytes: report.bytes().slice() }));
  } catch (e) {
    if (!(e instanceof TraceError)) throw e;
    error = e;
  }
  return { engine, reads, error, counts };
}

const runs = (r: { runs: PageRun[] }) => r.runs.map((x) => [x.iova, x.length]);

describe('replay', () => {
  it('reads pins and dma writes across two mappings sharing a bitmap word', async () => {
    const { reads, counts, error } = await replay([
      '{"op":"map","iova":"0x0","size":"0x41000"}', // 65 pages: the second mapping starts mid-word
      '{"op":"map","iova":"0x41000","size":"0x3f000"}',
      '{"op":"start"}',
      '{"op":"pin","iova":"0x40000","npage":2}', // the last page of one and the first of the other
      '{"op":"write","iova":"0x7f000","length":1}',
      '{"op":"read","iova":"0x0","size":"0x80000","clear":false}',
      '{"op":"read","iova":"0x0","size":"0x80000"}',
      '{"op":"unpin","iova":"0x40000","npage":2}',
      '{"op":"read","iova":"0x0","size":"0x80000"}',
      '{"op":"read","iova":"0x0","size":"0x80000"}',
    ]);
    expect(error).toBeUndefined();
    expect(counts).toEqual({ events: 10, reads: 4 });
    expect(runs(reads[0])).toEqual([[0x40000n, 0x2000n], [0x7f000n, 0x1000n]]);
    expect([...reads[0].bytes]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0x80]);
    expect(runs(reads[1])).toEqual(runs(reads[0])); // the first read did not clear
    expect(runs(reads[2])).toEqual([[0x40000n, 0x2000n]]); // unpinned: reported once more
    expect(reads[3].count).toBe(0);
    expect(reads.map((r) => r.line)).toEqual([6, 7, 9, 10]);
  });

  it('converts a read to another page size', async () => {
    const { reads } = await replay([
      '{"op":"map","iova":"0x200000","size":"0x400000"}',
      '{"op":"start"}',
      '{"op":"write","iova":"0x3ff000","length":8192}', // two pages across a 2 MiB edge
      '{"op":"read","iova":"0x200000","size":"0x400000","pagesize":"0x200000"}',
    ]);
    expect(reads[0]).toMatchObject({ iova: 0x200000n, size: 0x400000n, pgsize: 0x200000n, pages: 2, count: 2 });
    expect([...reads[0].bytes]).toEqual([3, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('has each device unpin its pages when their mapping is unmapped', async () => {
    const { reads, error, engine } = await replay([
      '{"op":"device","name":"gpu0"}',
      '{"op":"device","name":"gpu1"}',
      '{"op":"map","iova":"0x0","size":"0x10000"}',
      '{"op":"start"}',
      '{"op":"pin","iova":"0x1000","npage":1,"device":"gpu0"}',
      '{"op":"pin","iova":"0x1000","npage":1,"device":"gpu1"}',
      '{"op":"unmap","iova":"0x0","size":"0x10000"}',
      '{"op":"map","iova":"0x0","size":"0x10000"}',
      '{"op":"read","iova":"0x0","size":"0x10000"}',
    ]);
    expect(error).toBeUndefined();
    expect(reads[0].count).toBe(0); // a new mapping starts clean
    expect(engine.inspect().containers[0].dmas[0].pins).toEqual([]);
  });

  it.each([
    [
      'an unparseable line',
      '{"op":"read","iova":"0x0","size":}',
      /^not valid JSON/,
    ],
    [
      'a map the engine refuses (overlap)',
      '{"op":"map","iova":"0x8000","size":"0x1000"}',
      /^map refused by the engine: map \[0x8000, \+0x1000\): EEXIST/,
    ],
    [
      'a read that bisects a mapping',
      '{"op":"read","iova":"0x1000","size":"0x1000"}',
      /^read refused by the engine: .*EINVAL/,
    ],
    [
      'a pin outside every mapping',
      '{"op":"pin","iova":"0x100000","npage":1}',
      /^pin failed: vfio_pin_pages by "dev0" failed: EINVAL$/,
    ],
    [
      'a write by an undeclared device',
      '{"op":"write","iova":"0x0","length":1,"device":"nic"}',
      /^write failed: no device named "nic"/,
    ],
    [
      'a second declaration of a device',
      '{"op":"device","name":"dev0"}',
      /^device failed: device "dev0" is already declared$/,
    ],
  ])('stops at %s, with the line number, and runs nothing after it', async (_, line, reason) => {
    const { reads, error, engine } = await replay([
      '{"op":"map","iova":"0x0","size":"0x10000"}',
      '{"op":"start"}',
      '{"op":"write","iova":"0x2000","length":1}',
      '{"op":"read","iova":"0x0","size":"0x10000","clear":false}',
      line,
      '{"op":"read","iova":"0x0","size":"0x10000"}',
      '{"op":"map","iova":"0x20000","size":"0x1000"}',
    ]);
    expect(error).toBeInstanceOf(TraceError);
    expect(error!.line).toBe(5);
    expect(error!.reason).toMatch(reason);
    expect(reads.map((r) => r.line)).toEqual([4]); // the read on line 6 never ran
    const c = engine.inspect().containers[0];
    expect(c.dmas.map((d) => d.iova)).toEqual([0n]); // nor the map on line 7
    expect(c.dmas[0].bitmap).not.toMatch(/^0*$/); // and the dirty bit was not cleared by it
  });
});
