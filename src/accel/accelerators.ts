// The engine's accelerators: creation with the lowest free devId, the device files they answer
// `proc.open` for, and their part in process exit (docs/conformance.md §16.1, §16.3, §16.8).
import type { Engine } from '../engine.js';
import type { Subsystem } from '../file.js';
import type { Process } from '../process.js';
import { uapi } from '../uapi.js';
import { Accelerator, type AcceleratorOptions } from './accelerator.js';
import { Queue } from './queue.js';

export class Accelerators implements Subsystem {
  private readonly engine: Engine;
  /** Live (not removed) accelerators. */
  private readonly live: Accelerator[] = [];

  constructor(engine: Engine) {
    this.engine = engine;
  }

  /** A new accelerator with the lowest devId no live one uses (docs/conformance.md §16.1). */
  create(o: AcceleratorOptions = {}): Accelerator {
    let devId = 0;
    while (this.live.some((a) => a.devId === devId)) devId++;
    const a = new Accelerator(this.engine, devId, o);
    this.live.push(a);
    return a;
  }

  /** Whether `x` is an accelerator of this engine. */
  isAccelerator(x: unknown): x is Accelerator {
    return x instanceof Accelerator && x.engine === this.engine;
  }

  /** The live accelerators, in creation order (for inspection). */
  list(): readonly Accelerator[] {
    return this.live;
  }

  /**
   * engine.dispose(): every live accelerator is removed (docs/conformance.md §16.8), so its calls
   * answer ENODEV.
   */
  dispose(): void {
    for (const a of [...this.live]) a.remove();
  }

  /** A removed accelerator's path and devId become free. */
  forget(a: Accelerator): void {
    const i = this.live.indexOf(a);
    if (i >= 0) this.live.splice(i, 1);
  }

  /**
   * Opening a queue (docs/conformance.md §16.3, steps 1 to 4) for a live accelerator's path;
   * undefined for other paths.
   */
  open(proc: Process, path: string): number | undefined {
    const a = this.live.find((x) => x.path === path);
    if (!a) return undefined;
    const sva = this.engine.sva;
    let bond = null;
    if (a.flags & uapi.UACCE_DEV_SVA) {
      const b = sva.bind(a, proc);
      if (typeof b === 'number') return b;
      bond = b;
    }
    const q = new Queue(a, proc, bond);
    const qid = a.getQueue(q);
    if (qid < 0) {
      if (bond) sva.drop(bond);
      return qid;
    }
    q.qid = qid;
    a.open.unshift(q);
    const fd = proc.allocFd(q);
    a.observed('get_queue', q);
    return fd;
  }

  /** `proc.exit` step 1: bound devices stop translating the process's PASID (§16.8). */
  mmRelease(proc: Process): void {
    this.engine.sva.mmRelease(proc);
  }

  /** `proc.exit` step 5: the mm is freed now, or at the last unbind (§16.8). */
  exitDone(proc: Process): void {
    this.engine.sva.exitDone(proc);
  }
}
