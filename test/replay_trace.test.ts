import { describe, expect, it } from 'vitest';
import { parseTraceLine, traceLines, TraceError } from '../src/sim/trace.js';

function reason(text: string): string {
  try {
    parseTraceLine(text, 7);
  } catch (e) {
    expect(e).toBeInstanceOf(TraceError);
    expect((e as TraceError).line).toBe(7);
    expect((e as TraceError).message.startsWith('line 7: ')).toBe(true);
    return (e as TraceError).reason;
  }
  throw new Error(`no error for ${text}`);
}

describe('trace format', () => {
  it('parses every op with its defaults', () => {
    expect(parseTraceLine('{"op":"device","name":"gpu0"}', 1)).toEqual({ op: 'device', name: 'gpu0', kind: 'emulated', pins: true });
    expect(parseTraceLine('{"op":"device","name":"nic","kind":"iommu"}', 1)).toEqual({ op: 'device', name: 'nic', kind: 'iommu', pins: false });
    expect(parseTraceLine('{"op":"map","iova":"0x100000","size":2097152}', 1)).toEqual({
      op: 'map', iova: 0x100000n, size: 0x200000n, read: true, write: true,
    });
    expect(parseTraceLine('{"op":"unmap","iova":"0","size":"0x1000"}', 1)).toEqual({ op: 'unmap', iova: 0n, size: 0x1000n });
    expect(parseTraceLine('{"op":"pin","iova":"0x101000","npage":512,"device":"gpu0"}', 1)).toEqual({
      op: 'pin', iova: 0x101000n, npage: 512, write: true, device: 'gpu0',
    });
    expect(parseTraceLine('{"op":"unpin","iova":"0x101000","npage":1}', 1)).toEqual({ op: 'unpin', iova: 0x101000n, npage: 1 });
    expect(parseTraceLine('{"op":"write","iova":"0x180000","length":8192}', 1)).toEqual({
      op: 'write', iova: 0x180000n, length: 8192, value: 0xa5,
    });
    expect(parseTraceLine('{"op":"start"}', 1)).toEqual({ op: 'start' });
    expect(parseTraceLine('{"op":"stop"}', 1)).toEqual({ op: 'stop' });
    expect(parseTraceLine('{"op":"read","iova":"0xffffffffffff0000","size":"0x10000","clear":false,"pagesize":65536,"label":"x"}', 1)).toEqual({
      op: 'read', iova: 0xffff_ffff_ffff_0000n, size: 0x10000n, clear: false, pageSize: 65536n, label: 'x',
    });
  });

  it('skips blank and comment lines', () => {
    expect(parseTraceLine('   ', 1)).toBeNull();
    expect(parseTraceLine('# a comment', 1)).toBeNull();
  });

  it('numbers lines from 1 and keeps the last line without a newline', () => {
    expect([...traceLines('a\r\nb\n\nc')]).toEqual([[1, 'a'], [2, 'b'], [3, ''], [4, 'c']]);
    expect([...traceLines('a\n')]).toEqual([[1, 'a']]);
  });

  it.each([
    ['{"op":"map","iova":1', /^not valid JSON/],
    ['[1,2]', /^an event must be a JSON object$/],
    ['{"op":"mmap","iova":0}', /^unknown op "mmap" \(expected one of device, map, unmap/],
    ['{"iova":0}', /^unknown op undefined/],
    ['{"op":"map","iova":0,"sise":4096}', /^unknown field "sise" for op "map"$/],
    ['{"op":"map","iova":0}', /^op "map" needs "size"$/],
    ['{"op":"map","iova":-4096,"size":4096}', /^"iova" must be a non-negative safe integer/],
    ['{"op":"map","iova":"0x1g","size":4096}', /^"iova" must be a number or a "0x\.\.\." \/ decimal string/],
    ['{"op":"map","iova":"0x10000000000000000","size":4096}', /^"iova" does not fit in 64 bits$/],
    ['{"op":"map","iova":0,"size":4096,"write":"yes"}', /^"write" must be true or false/],
    ['{"op":"pin","iova":0,"npage":513}', /^"npage" must be between 1 and 512, got 513$/],
    ['{"op":"pin","iova":0,"npage":0}', /^"npage" must be between 1 and 512, got 0$/],
    ['{"op":"write","iova":0,"length":16,"value":256}', /^"value" must be between 0 and 255, got 256$/],
    ['{"op":"read","iova":0,"size":4096,"pagesize":3000}', /^"pagesize" must be a power of two of at least 4096, got 3000$/],
    ['{"op":"device","name":""}', /^"name" must be a non-empty string/],
    ['{"op":"device","name":"x","kind":"mdev"}', /^"kind" must be "emulated" or "iommu"/],
    ['{"op":"start","now":true}', /^unknown field "now" for op "start"$/],
    // Names of Object.prototype's members are not ops or fields.
    ['{"op":"__proto__"}', /^unknown op "__proto__" \(expected one of device, map, unmap, pin, unpin, write, start, stop, read\)$/],
    ['{"op":"constructor"}', /^unknown op "constructor" \(expected one of device, map/],
    ['{"op":"toString"}', /^unknown op "toString" /],
    ['{"op":"hasOwnProperty"}', /^unknown op "hasOwnProperty" /],
    ['{"op":"start","constructor":1}', /^unknown field "constructor" for op "start"$/],
    ['{"op":"start","__proto__":{}}', /^unknown field "__proto__" for op "start"$/],
  ])('rejects %s with its line number and reason', (text, re) => {
    expect(reason(text)).toMatch(re);
  });
});
