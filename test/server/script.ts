// Scripts of calls, run three ways with the same results: on the in-process engine, through the
// Node client, and through the Python client (run_script.py). Fds and addresses are the ones the
// model hands out (deterministic per process), so scripts use literal numbers.
import type { Engine } from '../../src/engine.js';
import type { Accelerator } from '../../src/accel/accelerator.js';
import type { SvaHandle } from '../../src/accel/sva.js';
import { vmSetOf } from '../../src/ioasid/vfio_pasid.js';
import type { PageTrackNotifierNode } from '../../src/kvm/page_track.js';
import type { Client } from '../../src/server/client.js';
import { parseGroupSpec } from '../../src/server/group_spec.js';
import { parseAccelSpec } from '../../src/server/accel_spec.js';
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
  | ['dma_read', string, string, number]
  // KVM (vCPU named by its fd), a device model on dev.kvm, device DMA, accelerators, IOASID
  | ['vcpu_write' | 'vcpu_write_guest', number, string, string]
  | ['vcpu_read', number, string, number]
  | ['vcpu_write_many', number, string[], string, number] // vcpu fd, gpas, data, bytes each
  | ['kvm', 'trackAdd' | 'trackRemove' | 'trackCount' | 'gfnToHva', string, string]
  | ['kvm_node', string] // trackWrite and trackRemoveRegion recorded as rows
  | ['kvm_unlink', string, string | null] // recorded; with a gfn: trackRemove(gfn), unregister the node
  | ['dev_dma_write', string, string, string]
  | ['dev_dma_read', string, string, number]
  | ['accel', string]
  | ['sva_bind', string]
  | ['sva_unbind' | 'sva_pasid', number]
  | ['accel_dma_write', string, number, string, string]
  | ['accel_dma_read', string, number, string, number]
  | ['accel_region_read', string, number, number, number, number] // path, qid, region, offset, length
  | ['accel_region_write', string, number, number, number, string]
  | ['mmap_fd', number, string, number]
  | ['ioasid_notifier', number] // records each call, returns the number
  | ['ioasid_notify', number, number];

export type Result = (string | null)[];

const B = (s: string): bigint => BigInt(s);

const rows = (r: Uint8Array | number): Result[] => [typeof r === 'number' ? [String(r)] : ['0', hex(r)]];

/** Runs `steps` in a new process of `engine`: one result row per step, plus one per event. */
export function runInProcess(engine: Engine, steps: Step[]): Result[] {
  const proc = engine.createProcess();
  const out: Result[] = [];
  let lastGroup = 0;
  const nodes = new Map<string, PageTrackNotifierNode>();
  const accels = new Map<string, Accelerator>();
  const handles: SvaHandle[] = [];
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
      case 'vcpu_write': case 'vcpu_write_guest': {
        const v = proc.vcpuFromFd(s[1]);
        if (typeof v === 'number') out.push([String(v)]);
        else out.push([String(s[0] === 'vcpu_write' ? v.write(B(s[2]), bytes(s[3])) : v.writeGuest(B(s[2]), bytes(s[3])))]);
        break;
      }
      case 'vcpu_write_many': {
        const v = proc.vcpuFromFd(s[1]);
        out.push([String(typeof v === 'number' ? v : v.writeMany(BigUint64Array.from(s[2].map(B)), bytes(s[3]), s[4]))]);
        break;
      }
      case 'vcpu_read': {
        const v = proc.vcpuFromFd(s[1]);
        const r = typeof v === 'number' ? v : v.read(B(s[2]), s[3]);
        out.push(typeof r === 'number' ? [String(r)] : ['0', hex(r)]);
        break;
      }
      case 'kvm': {
        const k = dev(s[2]).kvm;
        const g = B(s[3]);
        const call = { trackAdd: () => k!.writeTrackAddGfn(g), trackRemove: () => k!.writeTrackRemoveGfn(g),
          trackCount: () => k!.writeTrackCount(g), gfnToHva: () => k!.gfnToHva(g) }[s[1]];
        out.push([String(k ? call() : -3)]);
        break;
      }
      case 'kvm_node': {
        const name = s[1];
        const node: PageTrackNotifierNode = {
          trackWrite: (gpa, data) => void out.push(['track_write', name, String(gpa), hex(data)]),
          trackRemoveRegion: (gfn, nr) => void out.push(['remove_region', name, String(gfn), String(nr)]),
        };
        const k = dev(name).kvm;
        const r = k ? k.pageTrackRegisterNotifier(node) : -3;
        if (r === 0) nodes.set(name, node);
        out.push([String(r)]);
        break;
      }
      case 'kvm_unlink': {
        const [, name, gfn] = s;
        const d = dev(name);
        d.registerKvmUnlink((k) => {
          out.push(['unlink', name]);
          if (gfn === null) return;
          out.push([String(k.writeTrackRemoveGfn(B(gfn)))]);
          k.pageTrackUnregisterNotifier(nodes.get(name)!);
          out.push(['0']);
        });
        out.push(['0']);
        break;
      }
      case 'dev_dma_write': out.push([String(dev(s[1]).dmaWrite(B(s[2]), bytes(s[3])))]); break;
      case 'dev_dma_read': {
        const r = dev(s[1]).dmaRead(B(s[2]), s[3]);
        out.push(typeof r === 'number' ? [String(r)] : ['0', hex(r)]);
        break;
      }
      case 'accel': {
        const a = engine.createAccelerator(parseAccelSpec(s[1]));
        accels.set(a.path, a);
        out.push(['accel', a.path]);
        break;
      }
      case 'sva_bind': {
        const h = engine.sva.bindDevice(accels.get(s[1])!, proc);
        if (typeof h === 'number') out.push([String(h)]);
        else {
          if (!handles.includes(h)) handles.push(h);
          out.push([String(handles.indexOf(h) + 1)]);
        }
        break;
      }
      case 'sva_unbind': out.push([String(engine.sva.unbindDevice(handles[s[1] - 1]))]); break;
      case 'sva_pasid': out.push([String(engine.sva.getPasid(handles[s[1] - 1]))]); break;
      case 'accel_dma_write': out.push([String(accels.get(s[1])!.dmaWrite(s[2], B(s[3]), bytes(s[4])))]); break;
      case 'accel_dma_read': {
        const r = accels.get(s[1])!.dmaRead(s[2], B(s[3]), s[4]);
        out.push(typeof r === 'number' ? [String(r)] : ['0', hex(r)]);
        break;
      }
      case 'ioasid_notifier': {
        const ret = s[1];
        const sid = vmSetOf(proc);
        out.push([String(sid < 0 ? -2 : engine.ioasid.addNotifier((event, a) => {
          out.push(['ioasid', String(event), String(a.id), String(a.sid)]);
          return ret;
        }, { sid }))]);
        break;
      }
      case 'ioasid_notify': out.push([String(engine.ioasid.notify(s[1], s[2]))]); break;
      case 'accel_region_read': out.push(...rows(accels.get(s[1])!.regionRead(s[2], s[3], s[4], s[5]))); break;
      case 'accel_region_write': out.push([String(accels.get(s[1])!.regionWrite(s[2], s[3], s[4], bytes(s[5])))]); break;
      case 'mmap_fd': out.push([String(proc.mmapFd(s[1], B(s[2]), s[3]))]); break;
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
      default: out.push(...await subsystemStepWithClient(c, s, out));
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


/** The KVM, device-DMA, accelerator and IOASID steps through the Node client. */
async function subsystemStepWithClient(c: Client, s: Step, out: Result[]): Promise<Result[]> {
  switch (s[0]) {
    case 'vcpu_write': return [[String(await c.vcpuWrite(s[1], B(s[2]), bytes(s[3])))]];
    case 'vcpu_write_guest': return [[String(await c.vcpuWriteGuest(s[1], B(s[2]), bytes(s[3])))]];
    case 'vcpu_read': return rows(await c.vcpuRead(s[1], B(s[2]), s[3]));
    case 'vcpu_write_many': return [[String(await c.vcpuWriteMany(s[1], BigUint64Array.from(s[2].map(B)), bytes(s[3]), s[4]))]];
    case 'kvm': return [[String(await c.deviceKvm(s[1], s[2], B(s[3])))]];
    case 'kvm_node': {
      const name = s[1];
      return [[String(await c.registerKvmNode(name, {
        trackWrite: (_i, gpa, data) => void out.push(['track_write', name, String(gpa), hex(data)]),
        trackRemoveRegion: (_i, gfn, nr) => void out.push(['remove_region', name, String(gfn), String(nr)]),
      }))]];
    }
    case 'kvm_unlink': {
      const [, name, gfn] = s;
      return [[String(await c.registerKvmUnlink(name, async (inside) => {
        out.push(['unlink', name]);
        if (gfn === null) return;
        out.push([String(await inside.deviceKvm('trackRemove', name, B(gfn)))]);
        out.push([String(await inside.unregisterKvmNode(name))]);
      }))]];
    }
    case 'dev_dma_write': return [[String(await c.devDmaWrite(s[1], B(s[2]), bytes(s[3])))]];
    case 'dev_dma_read': return rows(await c.devDmaRead(s[1], B(s[2]), s[3]));
    case 'accel': return [['accel', String(await c.createAccelerator(s[1]))]];
    case 'sva_bind': return [[String(await c.sva('bind', s[1]))]];
    case 'sva_unbind': return [[String(await c.sva('unbind', s[1]))]];
    case 'sva_pasid': return [[String(await c.sva('getPasid', s[1]))]];
    case 'accel_dma_write': return [[String(await c.accelDmaWrite(s[1], s[2], B(s[3]), bytes(s[4])))]];
    case 'accel_dma_read': return rows(await c.accelDmaRead(s[1], s[2], B(s[3]), s[4]));
    case 'ioasid_notifier': {
      const ret = s[1];
      return [[String(await c.ioasidNotifier((_i, event, id, sid) => {
        out.push(['ioasid', String(event), String(id), String(sid)]);
        return ret;
      }))]];
    }
    case 'ioasid_notify': return [[String(await c.ioasidNotify(s[1], s[2]))]];
    case 'accel_region_read': return rows(await c.accelRegionRead(s[1], s[2], s[3], s[4], s[5]));
    case 'accel_region_write': return [[String(await c.accelRegionWrite(s[1], s[2], s[3], s[4], bytes(s[5])))]];
    case 'mmap_fd': return [[String(await c.mmapFd(s[1], B(s[2]), s[3]))]];
    default: throw new Error(`unknown step ${s[0]}`);
  }
}
