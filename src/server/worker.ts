// The worker thread of `vfio-dirty serve`: creates the engine and the start-up groups, then runs
// the frames the main thread forwards (host.ts). Blocking in a driver callback happens here, so
// the main thread keeps reading sockets meanwhile.
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { createEngine, type EngineOptions } from '../index.js';
import { parseGroupSpec } from './group_spec.js';
import { Host, type HostConfig, type ToMain } from './host.js';

/** What the main thread passes as workerData. */
export interface WorkerInit extends HostConfig {
  engine: EngineOptions;
  groups: string[];
  nested: MessagePort;
  flag: SharedArrayBuffer;
}

type FromMain =
  | { t: 'open'; conn: number }
  | { t: 'frames'; conn: number; data: Uint8Array }
  | { t: 'close'; conn: number }
  | { t: 'drain' };

async function run(): Promise<void> {
  const port = parentPort!;
  const init = workerData as WorkerInit;
  const post = (m: ToMain, transfer?: ArrayBuffer[]): void => port.postMessage(m, transfer);
  let host: Host;
  try {
    const engine = await createEngine(init.engine);
    for (const spec of init.groups) engine.createGroup(parseGroupSpec(spec));
    host = new Host(engine, init, post, init.nested, new Int32Array(init.flag));
    post({ t: 'ready', groups: [...engine.groups.values()].map((g) => ({ id: g.id, devices: g.devices.map((d) => d.name) })) });
  } catch (e) {
    post({ t: 'fatal', message: String((e as Error)?.message ?? e) });
    return;
  }
  init.nested.on('message', (m) => {
    host.nestedMessage(m);
    host.flush();
  });
  port.on('message', (m: FromMain) => {
    if (m.t === 'frames') host.frames(m.conn, m.data);
    else if (m.t === 'open') host.open(m.conn);
    else if (m.t === 'close') host.close(m.conn);
    else if (m.t === 'drain') {
      host.flush();
      post({ t: 'drained' });
      return;
    }
    host.flush();
  });
}

void run();
