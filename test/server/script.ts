// Scripts of calls, run three ways with the same results: on the in-process engine, through the
// Node client, and through the Python client (run_script.py). Fds and addresses are the ones the
// model hands out (deterministic per process), so scripts use literal numbers.
import type { Engine } from '../../src/engine.js';
import type { Client } from '../../src/server/client.js';
import { parseGroupSpec } from '../../src/server/group_spec.js';
import { hex, bytes } from '../helpers/uapi_structs.js';

/**
 * One call. ioctl args: null | {v: "0x.."} value | {b: "hex"} struct | {s: name}. Results are
 * numbers as decimal strings, bytes as hex.
 */
export type Step =
  | ['group', string] // creates a group; 'open_group' opens the last one
  | ['open_group']
  | ['open', string]
  | ['close', number]
  | ['ioctl', number, number, null | { v: string } | { b: string } | { s: string }]
  | ['mmap', number]
  | ['read', string, number]
  | ['write', string, string]
  | ['register', string] // the handler records the event and unpins the range, 512 pages a call
  | ['pin', string, string, number, number]
  | ['unpin', string, string, number]
  | ['dma_write', string, string, string]
  | ['dma_read', string, string, number];

export type Result = (string | null)[];

const B = (s: string): bigint => BigInt(s);

/** Runs `steps` in a new process of `engine`: one result row per step, plus one per event. */
export function runInProcess(engine: Engine, steps: Step[]): Result[] {
  const proc = engine.createProcess();
  const out: Result[] = [];
  let lastGroup = 0;
  const dev = (n: string) => {
    for (const g of engine.groups.values()) {
      const d = g.device(n);
      if (d) return d;
    }
    throw new Error(`no device ${n}`);
  };
  for (const s of steps) {
    switch (s[0]) {
      case 'group': lastGroup = engine.createGroup(parseGroupSpec(s[1])).id; out.push(['group']); break;
      case 'open_group': out.push([String(proc.open(`/dev/vfio/${lastGroup}`))]); break;
      case 'open': out.push([String(proc.open(s[1]))]); break;
      case 'close': out.push([String(proc.close(s[1]))]); break;
      case 'ioctl': {
        const a = s[3];
        if (a && 'b' in a) {
          const buf = bytes(a.b);
          const r = proc.ioctl(s[1], s[2], buf);
          out.push([String(r), hex(buf)]);
        } else {
          const arg = a === null ? undefined : 'v' in a ? valueArg(B(a.v)) : a.s;
          out.push([String(proc.ioctl(s[1], s[2], arg))]);
        }
        break;
      }
      case 'mmap': out.push([String(proc.mmap(s[1]))]); break;
      case 'read': {
        try {
          out.push(['0', hex(proc.read(B(s[1]), s[2]))]);
        } catch {
          out.push(['-14']);
        }
        break;
      }
      case 'write': {
        try {
          proc.write(B(s[1]), bytes(s[2]));
          out.push(['0']);
        } catch {
          out.push(['-14']);
        }
        break;
      }
      case 'register': {
        const d = dev(s[1]);
        d.registerDmaUnmap((iova, size) => {
          out.push(['event', s[1], String(iova), String(size)]);
          for (const [at, n] of chunks(iova, size)) d.unpinPages(at, n);
        });
        out.push(['0']);
        break;
      }
      case 'pin': out.push([String(dev(s[1]).pinPages(B(s[2]), s[3], s[4]))]); break;
      case 'unpin': dev(s[1]).unpinPages(B(s[2]), s[3]); out.push(['0']); break;
      case 'dma_write': out.push([String(dev(s[1]).dmaRw(B(s[2]), bytes(s[3]), true))]); break;
      case 'dma_read': {
        const b = new Uint8Array(s[3]);
        const r = dev(s[1]).dmaRw(B(s[2]), b, false);
        out.push(r === 0 ? ['0', hex(b)] : [String(r)]);
        break;
      }
    }
  }
  proc.exit();
  return out;
}

/** The same, through a connected Node client. */
export async function runWithClient(c: Client, steps: Step[]): Promise<Result[]> {
  const out: Result[] = [];
  let lastGroup = 0;
  for (const s of steps) {
    switch (s[0]) {
      case 'group': lastGroup = await c.createGroup(s[1]); out.push(['group']); break;
      case 'open_group': out.push([String(await c.open(`/dev/vfio/${lastGroup}`))]); break;
      case 'open': out.push([String(await c.open(s[1]))]); break;
      case 'close': out.push([String(await c.close(s[1]))]); break;
      case 'ioctl': {
        const a = s[3];
        if (a && 'b' in a) {
          const buf = bytes(a.b);
          const r = await c.ioctl(s[1], s[2], buf);
          out.push([String(r), hex(buf)]);
        } else {
          const arg = a === null ? undefined : 'v' in a ? B(a.v) : a.s;
          out.push([String(await c.ioctl(s[1], s[2], arg))]);
        }
        break;
      }
      case 'mmap': out.push([String(await c.mmap(s[1]))]); break;
      case 'read': {
        const r = await c.read(B(s[1]), s[2]);
        out.push(typeof r === 'number' ? [String(r)] : ['0', hex(r)]);
        break;
      }
      case 'write': out.push([String(await c.write(B(s[1]), bytes(s[2])))]); break;
      case 'register': {
        const name = s[1];
        out.push([String(await c.registerDmaUnmap(name, async (inside, iova, size) => {
          out.push(['event', name, String(iova), String(size)]);
          for (const [at, n] of chunks(iova, size)) await inside.unpinPages(name, at, n);
        }))]);
        break;
      }
      case 'pin': out.push([String(await c.pinPages(s[1], B(s[2]), s[3], s[4]))]); break;
      case 'unpin': out.push([String(await c.unpinPages(s[1], B(s[2]), s[3]))]); break;
      case 'dma_write': out.push([String(await c.dmaRw(s[1], B(s[2]), bytes(s[3]), true))]); break;
      case 'dma_read': {
        const b = new Uint8Array(s[3]);
        const r = await c.dmaRw(s[1], B(s[2]), b, false);
        out.push(r === 0 ? ['0', hex(b)] : [String(r)]);
        break;
      }
    }
  }
  return out;
}

/** The unpin calls of a notified range: at most 512 pages each (VFIO_PIN_PAGES_MAX_ENTRIES). */
function chunks(iova: bigint, size: bigint): [bigint, number][] {
  const out: [bigint, number][] = [];
  const pages = Number(size >> 12n);
  for (let o = 0; o < pages; o += 512) out.push([iova + BigInt(o) * 4096n, Math.min(512, pages - o)]);
  return out;
}

/** The value argument as the server passes it (docs/PROTOCOL.md §4). */
function valueArg(v: bigint): number | bigint {
  const i = BigInt.asIntN(64, v);
  return i >= -(1n << 31n) && i < 1n << 31n ? Number(i) : v;
}
