// A server on a socket in a fresh temp dir, its log lines collected; stop() removes everything.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type Server, type ServerOptions } from '../../src/server/server.js';

export interface TestServer extends Server {
  dir: string;
  logs: Record<string, unknown>[];
  stop(): Promise<void>;
}

export async function testServer(o: Partial<ServerOptions> = {}): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'vfd-test-'));
  const logs: Record<string, unknown>[] = [];
  const s = await startServer({
    listen: join(dir, 'sock'), log: (l) => logs.push(JSON.parse(l) as Record<string, unknown>),
    shmBase: dir, ...o,
  });
  return Object.assign(Object.create(s) as Server, s, {
    dir, logs,
    async stop() {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  });
}
