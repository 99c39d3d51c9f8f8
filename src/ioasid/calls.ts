// What a callback may call, and deferred work (docs/conformance.md §15.5). One per engine: every
// engine call that can send notifications or run callbacks enters and leaves it; a callback (a
// notifier, a `find` getter, an accelerator observer) runs inside `callback`, where the mutating
// calls answer EDEADLK; work queued with `queueWork` runs when the outermost call is done.

/** The engine's call state: nesting depth, callback depth, the work queue, the first exception. */
export class Calls {
  /** Engine calls in progress (1 for an outermost call; more while nested or draining). */
  private depth = 0;
  /** Callbacks in progress: > 0 means the current call was made from a callback. */
  private cbDepth = 0;
  private readonly work: (() => void)[] = [];
  /** The first exception a callback or work function threw during the outermost call. */
  private error: { e: unknown } | null = null;

  /**
   * @param outsideKvmCallback throws inside a KVM callback (docs/conformance.md §19.8); the engine
   * passes it.
   */
  constructor(private readonly outsideKvmCallback: () => void = () => {}) {}

  /**
   * True while a callback (a notifier, a `find` getter or an accelerator observer) runs: the
   * caller, a mutating call, then answers EDEADLK. Every caller is such a call, so inside a KVM
   * callback, where none may run, this throws instead.
   */
  get inCallback(): boolean {
    this.outsideKvmCallback();
    return this.cbDepth > 0;
  }

  /** Starts an engine call; pair with `leave()` in a `finally`. */
  enter(): void {
    this.depth++;
  }

  /**
   * Ends an engine call. The outermost call drains the work queue in FIFO order (work queued
   * while draining runs in the same drain) and then rethrows the first callback exception
   * (docs/conformance.md §15.5).
   */
  leave(): void {
    if (this.depth > 1 || (this.work.length === 0 && this.error === null)) {
      this.depth--;
      return;
    }
    try {
      for (let i = 0; i < this.work.length; i++) {
        const fn = this.work[i];
        try {
          fn();
        } catch (e) {
          this.record(e);
        }
      }
    } finally {
      this.work.length = 0;
      this.depth = 0;
    }
    const err = this.error;
    this.error = null;
    if (err) throw err.e;
  }

  /** Runs `fn` as one engine call (enter, leave). */
  run<T>(fn: () => T): T {
    this.enter();
    try {
      return fn();
    } finally {
      this.leave();
    }
  }

  /** Runs a callback: calls made from it see `inCallback`; a throw counts as `fallback` and is
   * rethrown by the outermost call. */
  callback<T>(fn: () => T, fallback: T): T {
    this.cbDepth++;
    try {
      return fn();
    } catch (e) {
      this.record(e);
      return fallback;
    } finally {
      this.cbDepth--;
    }
  }

  /** Appends `fn` to the work queue, run in FIFO order when the outermost call ends. */
  queue(fn: () => void): void {
    this.work.push(fn);
  }

  private record(e: unknown): void {
    if (!this.error) this.error = { e };
  }
}
