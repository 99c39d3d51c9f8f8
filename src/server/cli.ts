// `vfio-dirty serve`: options, start-up and shutdown on SIGTERM/SIGINT.
import { parseArgs } from 'node:util';
import type { ProfileName } from '../vfio/profile.js';
import { OptionError, parseChoice, parseInteger, parseSize, parseTime } from '../cli/units.js';
import { GROUP_SPEC_HELP } from './group_spec.js';
import { startServer } from './server.js';

export function serveHelp(): string {
  return [
    'Usage: vfio-dirty serve --listen PATH [options]',
    '',
    'Runs the engine as a daemon on a Unix stream socket; every connection is a process of the',
    'model (docs/PROTOCOL.md). Logs are JSON lines on stderr. SIGTERM or SIGINT stops it gracefully.',
    '',
    '  --listen PATH            socket path (required)',
    '  --mode OCTAL             socket permissions (default 0600)',
    '  --group SPEC             create an IOMMU group at start-up; repeatable. SPEC is key=value,...:',
    ...GROUP_SPEC_HELP.map((l) => `                             ${l}`),
    '  --profile NAME           linux-6.18 (default) or linux-6.6',
    '  --dma-entry-limit N      type1 dma_entry_limit (default 65535)',
    '  --memory-limit SIZE      Wasm memory of the engine (default just under 2 GiB)',
    '  --max-frame SIZE         largest request frame (default 16MiB plus the 16-byte header)',
    '  --callback-timeout TIME  how long a callback waits for its client (default 5000ms)',
    '  --shm-max SIZE           largest shared file a client may ask for (default 1GiB)',
    '  --shm-dir DIR            where the private shared-file directory is made (default /dev/shm)',
  ].join('\n');
}

/** Runs `serve` until a signal stops it; returns the exit status. */
export async function runServe(argv: string[], out: { write(s: string): unknown }): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: 'string' }, mode: { type: 'string' }, group: { type: 'string', multiple: true },
      profile: { type: 'string' }, 'dma-entry-limit': { type: 'string' }, 'memory-limit': { type: 'string' },
      'max-frame': { type: 'string' }, 'callback-timeout': { type: 'string' }, 'shm-max': { type: 'string' },
      'shm-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    out.write(`${serveHelp()}\n`);
    return 0;
  }
  if (!values.listen) throw new OptionError('listen', 'a socket path is required');
  if (values.mode !== undefined && !/^0?[0-7]{3}$/.test(values.mode)) throw new OptionError('mode', 'expected octal like 0600');
  const server = await startServer({
    listen: values.listen,
    mode: values.mode ? parseInt(values.mode, 8) : 0o600,
    groups: values.group ?? [],
    engine: {
      profile: values.profile ? parseChoice<ProfileName>('profile', values.profile, ['linux-6.18', 'linux-6.6']) : undefined,
      dmaEntryLimit: values['dma-entry-limit'] ? parseInteger('dma-entry-limit', values['dma-entry-limit'], 0, 0xffff_ffff) : undefined,
      memoryLimit: values['memory-limit'] ? parseSize('memory-limit', values['memory-limit']) : undefined,
    },
    maxFrame: values['max-frame'] ? parseSize('max-frame', values['max-frame']) : undefined,
    callbackTimeoutMs: values['callback-timeout'] ? parseTime('callback-timeout', values['callback-timeout']) * 1000 : undefined,
    shmMax: values['shm-max'] ? parseSize('shm-max', values['shm-max']) : undefined,
    shmBase: values['shm-dir'],
  });
  await new Promise<void>((res) => {
    const stop = (): void => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      void server.close().then(res);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  return 0;
}
