// The protocol's field writer across its growth: fixed-size fields written when the buffer grows
// land in the new buffer (the view is taken after growing).
import { describe, expect, it } from 'vitest';
import { Reader, Writer } from '../../src/server/protocol.js';

describe('Writer', () => {
  it('u32, u64 and i64 fields past the first 64 bytes, each at a growth boundary', () => {
    const w = new Writer();
    for (let i = 0; i < 40; i++) w.u64(BigInt(i) << 40n).u32(i).i64(-BigInt(i));
    const b = w.done();
    expect(b.length).toBe(40 * 20);
    const r = new Reader(b);
    for (let i = 0; i < 40; i++) expect([r.u64(), r.u32(), r.i64()]).toEqual([BigInt(i) << 40n, i, -BigInt(i)]);
    expect(r.ok).toBe(true);
  });
});
