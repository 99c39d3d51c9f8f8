// Setup A of the accelerator acceptance vectors: two accelerators (D1 observed into O) and
// processes with one 0x4000-byte anonymous mapping each.
import { createEngine, type Engine, type Process } from '../../src/index.js';
import type { IoasidNbArgs } from '../../src/ioasid/ioasid.js';

export type Obs = [string, number, number];

export async function setupA(engine?: Engine) {
  const e = engine ?? (await createEngine());
  const O: Obs[] = [];
  const D1 = e.createAccelerator({
    name: 'zip', api: 'hisi_qm_v2', algorithms: 'zlib\ngzip', queues: 2, dusSize: 8192,
    observe: (op, qid, pasid) => {
      O.push([op, qid, pasid]);
    },
  });
  const D2 = e.createAccelerator({ name: 'sec', queues: 4, maxPasids: 16, dusSize: 0 });
  const proc = (): { P: Process; V: bigint } => {
    const P = e.createProcess();
    return { P, V: P.mmap(0x4000) };
  };
  const { P: P1, V: V1 } = proc();
  const { P: P2, V: V2 } = proc();
  const { P: P3, V: V3 } = proc();
  return { engine: e, O, D1, D2, P1, V1, P2, V2, P3, V3 };
}

/** A subscriber logging (event, payload) and, when `also` is given, what it records then. */
export function logger(log: [number, IoasidNbArgs][], also?: () => void) {
  return (ev: number, a: IoasidNbArgs) => {
    log.push([ev, a]);
    also?.();
  };
}

export const b = (...x: number[]) => new Uint8Array(x);
export const hex = (u: Uint8Array) => Buffer.from(u).toString('hex');
