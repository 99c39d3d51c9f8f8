// `vfio-dirty serve`: one row of the command table (src/cli/main.ts): options, start-up, and a
// graceful stop on SIGTERM/SIGINT.
import { parseCommandLine } from '../cli/args.js';
import type { Command, Io } from '../cli/command.js';
import { OptionError, parseChoice, parseInteger, parseSize, parseTime } from '../cli/units.js';
import type { ProfileName } from '../vfio/profile.js';
import { GROUP_SPEC_HELP, parseGroupSpec } from './group_spec.js';
import { startServer, type ServerOptions } from './server.js';

export interface ServeOptions extends ServerOptions {
  help: boolean;
  version: boolean;
}

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
    '  --ioasid-capacity N      IOASIDs installed at creation (default 0x100000; 0: none)',
    '  --ioasid-system-quota N  quota of the system IOASID set (default 32768)',
    '  --vfio-pasid-quota N     quota of each VM\'s PASID set (default 1000)',
    '  --max-frame SIZE         largest request frame (default 16MiB plus the 16-byte header)',
    '  --callback-timeout TIME  how long a callback waits for its client (default 5000ms)',
    '  --shm-max SIZE           largest shared file a client may ask for (default 1GiB)',
    '  --shm-dir DIR            where the private shared-file directory is made (default /dev/shm)',
    '  -h, --help               show this help',
  ].join('\n');
}

/** Parses the arguments of `serve`. @throws UsageError naming the option */
export function parseServeOptions(argv: string[]): ServeOptions {
  // --group repeats: taken out before the one parser sees the rest
  const groups: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--group') {
      if (i + 1 >= argv.length) throw new OptionError('group', 'needs a value (see --help)');
      groups.push(argv[++i]);
    } else if (argv[i].startsWith('--group=')) groups.push(argv[i].slice(8));
    else rest.push(argv[i]);
  }
  const s = { type: 'string' } as const;
  const { values: v, wants } = parseCommandLine(rest, {
    listen: s, mode: s, profile: s, 'dma-entry-limit': s, 'memory-limit': s, 'max-frame': s,
    'callback-timeout': s, 'shm-max': s, 'shm-dir': s, 'ioasid-capacity': s, 'ioasid-system-quota': s,
    'vfio-pasid-quota': s,
  }, 0);
  const str = (k: string) => v[k] as string | undefined;
  const o: ServeOptions = { listen: str('listen') ?? '', groups, help: wants === 'help', version: wants === 'version' };
  if (wants) return o;
  if (!o.listen) throw new OptionError('listen', 'a socket path is required');
  for (const g of groups) {
    try {
      parseGroupSpec(g);
    } catch (e) {
      throw new OptionError('group', (e as Error).message);
    }
  }
  const mode = str('mode');
  if (mode !== undefined && !/^0?[0-7]{3}$/.test(mode)) throw new OptionError('mode', 'expected octal like 0600');
  o.mode = mode === undefined ? 0o600 : parseInt(mode, 8);
  const profile = str('profile');
  const limit = str('dma-entry-limit');
  const mem = str('memory-limit');
  o.engine = {
    profile: profile === undefined ? undefined : parseChoice<ProfileName>('profile', profile, ['linux-6.18', 'linux-6.6']),
    dmaEntryLimit: limit === undefined ? undefined : parseInteger('dma-entry-limit', limit, 0, 0xffff_ffff),
    memoryLimit: mem === undefined ? undefined : parseSize('memory-limit', mem),
  };
  for (const [flag, key] of [['ioasid-capacity', 'ioasidCapacity'], ['ioasid-system-quota', 'ioasidSystemQuota'],
    ['vfio-pasid-quota', 'vfioPasidQuota']] as const) {
    const t = str(flag);
    if (t !== undefined) o.engine[key] = parseInteger(flag, t, 0, 0xffff_ffff);
  }
  const frame = str('max-frame');
  const timeout = str('callback-timeout');
  const shmMax = str('shm-max');
  if (frame !== undefined) o.maxFrame = parseSize('max-frame', frame);
  if (timeout !== undefined) o.callbackTimeoutMs = parseTime('callback-timeout', timeout) * 1000;
  if (shmMax !== undefined) o.shmMax = parseSize('shm-max', shmMax);
  o.shmBase = str('shm-dir');
  return o;
}

/** Runs the server until SIGTERM or SIGINT; 0 once it has stopped. */
export async function runServe(o: ServeOptions, io: Io): Promise<number> {
  void io; // logs go to stderr as JSON lines (ServerOptions.log)
  const server = await startServer(o);
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

export const serveCommand: Command<ServeOptions> = {
  name: 'serve',
  usage: 'serve',
  summary: 'run the engine as a daemon on a Unix socket: every connection a process (docs/PROTOCOL.md)',
  help: serveHelp,
  parse: parseServeOptions,
  run: runServe,
};
