import { describe, expect, it } from 'vitest';
import { Core } from '../src/wasm.js';
import { UserMemory } from '../src/core/user_memory.js';
import { EFAULT, ENOMEM } from '../assembly/constants.js';

describe('user memory', () => {
  it('reads zeros where nothing was written and costs no frames', async () => {
    const core = await Core.create();
    const um = new UserMemory(core);
    expect(um.read(0x7fff_0000_0000n, 16)).toEqual(new Uint8Array(16));
    expect(um.frames).toBe(0);
    um.dispose();
  });

  it('round-trips bytes across frame and table boundaries', async () => {
    const core = await Core.create();
    const um = new UserMemory(core);
    const bytes = Uint8Array.from({ length: 3 * 4096 + 100 }, (_, i) => (i * 7 + 3) & 255);
    // Straddles a 2 MiB (L3 table) boundary and starts mid-page.
    const addr = 0x20_0000n - 4096n - 50n;
    expect(um.write(addr, bytes)).toBe(0);
    expect(um.read(addr, bytes.length)).toEqual(bytes);
    expect(um.frames).toBe(5);
    expect(um.read(addr - 8n, 8)).toEqual(new Uint8Array(8));
    um.dispose();
  });

  it('refuses addresses past 2^47 with EFAULT', async () => {
    const core = await Core.create();
    const um = new UserMemory(core);
    expect(um.write((1n << 47n) - 4n, new Uint8Array(8))).toBe(-EFAULT);
    expect(um.read(1n << 47n, 1)).toBe(-EFAULT);
    um.dispose();
  });

  it('a failed write adds nothing (fail-the-Nth sweep)', async () => {
    const core = await Core.create();
    const um = new UserMemory(core);
    expect(um.write(0x5000n, new Uint8Array([1, 2, 3]))).toBe(0);
    const bytes = new Uint8Array(64 * 4096).fill(9);
    const addr = 0x4_0000_0000n - 32n * 4096n; // spans two L2 tables
    for (let n = 1; ; n++) {
      const used = core.heapUsed();
      const frames = um.frames;
      core.x.heap_fail_nth(n);
      const r = um.write(addr, bytes);
      core.x.heap_fail_nth(0);
      if (r === 0) break;
      expect(r).toBe(-ENOMEM);
      expect(core.heapUsed()).toBe(used);
      expect(um.frames).toBe(frames);
      expect(um.read(addr, 8)).toEqual(new Uint8Array(8));
    }
    expect(um.read(addr + 4095n, 2)).toEqual(new Uint8Array([9, 9]));
    expect(um.read(0x5000n, 3)).toEqual(new Uint8Array([1, 2, 3]));
    um.dispose();
    expect(core.heapUsed()).toBe(0);
  });
});

describe('UserMemory pointer-based copies and reserve (the type1 model goes through them)', () => {
  it('writeFrom / readTo copy between the core heap and user memory; reserve frames pages', async () => {
    const core = await Core.create();
    const um = new UserMemory(core);
    const buf = core.alloc(16);
    core.u8().set([1, 2, 3, 4], buf);
    expect(um.writeFrom(0x5000n, buf, 4)).toBe(0);
    core.u8().fill(0, buf, buf + 16);
    expect(um.readTo(0x4ffen, buf, 8)).toBe(0);
    expect([...core.u8().subarray(buf, buf + 8)]).toEqual([0, 0, 1, 2, 3, 4, 0, 0]);
    const frames = um.frames;
    expect(um.reserve(0x10_0000n, 0x3000)).toBeGreaterThanOrEqual(0);
    expect(um.frames).toBe(frames + 3);
    core.free(buf);
    um.dispose();
    expect(um.writeFrom(0x5000n, buf, 4)).toBe(-EFAULT);
    expect(um.readTo(0x5000n, buf, 4)).toBe(-EFAULT);
    expect(um.reserve(0x5000n, 4)).toBe(-EFAULT);
  });
});
