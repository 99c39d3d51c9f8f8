// `vfio-dirty serve` as a child process (the bundled CLI), for tests whose client blocks its own
// thread (the simulator's remote engine): a server in the test's process could not answer it.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundledCli } from './cli_bundle.js';

export interface ServeChild {
  child: ChildProcess;
  sock: string;
  /** The shared-file directory base the server was given. */
  dir: string;
  logs: Record<string, unknown>[];
  /** SIGTERM, then waits for the exit; removes the temp dir. */
  stop(): Promise<number | null>;
}

/** A `vfio-dirty serve` child process, its JSON log lines as they come, and its exit. */
export interface Serving {
  child: ChildProcess;
  logs: Record<string, unknown>[];
  exited: Promise<number | null>;
}

/** Runs `vfio-dirty serve ARGS` (node run with `nodeArgs`); resolves once it logs `listen`. */
export async function spawnServe(args: string[], nodeArgs: string[] = []): Promise<Serving> {
  const child = spawn(process.execPath, [...nodeArgs, await bundledCli(), 'serve', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  let pending = '';
  await new Promise<void>((res, rej) => {
    child.stderr!.on('data', (d: Buffer) => {
      pending += d.toString();
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const l of lines) {
        const j = JSON.parse(l) as Record<string, unknown>;
        logs.push(j);
        if (j.event === 'listen') res();
      }
    });
    void exited.then((code) => rej(new Error(`serve exited ${code}`)));
  });
  return { child, logs, exited };
}

/** Starts a server on a socket in a fresh temp dir; resolves once it listens. */
export async function serveChild(args: string[] = [], nodeArgs: string[] = []): Promise<ServeChild> {
  const dir = mkdtempSync(join(tmpdir(), 'vfd-child-'));
  const sock = join(dir, 'sock');
  const { child, logs, exited } = await spawnServe(['--listen', sock, '--shm-dir', dir, ...args], nodeArgs);
  return {
    child, sock, dir, logs,
    async stop() {
      child.kill('SIGTERM');
      const code = await exited;
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}
