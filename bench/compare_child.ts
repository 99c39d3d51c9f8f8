// A child process of bench/compare.bench.ts: runs `vfio-dirty compare` with the arguments it is
// given (output discarded) and prints its own wall time since the process started and the CPU time
// of all its threads (and the system part of it), as JSON. Each measured run is a fresh process, as a user's command is.
import { performance } from 'node:perf_hooks';
import { main } from '../src/cli/main.js';

const sink = { write: () => true };
const code = await main(['compare', ...process.argv.slice(2)], { out: sink, err: sink });
const cpu = process.cpuUsage();
process.stdout.write(`${JSON.stringify({ code, wallMs: performance.now(), cpuMs: (cpu.user + cpu.system) / 1000, sysMs: cpu.system / 1000 })}\n`);
