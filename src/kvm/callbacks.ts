// Callbacks (page-track notifiers, unlink callbacks) run synchronously inside the engine call that
// triggers them, may make only some calls, and an exception in one of them is rethrown once the
// operation has finished (docs/conformance.md §19.8).
import type { Engine } from '../engine.js';

/** Which kind of callback is running: page-track notifier or unlink callback. */
export type CallbackKind = 'track' | 'unlink';

/** The callbacks running in one engine. */
export class CallbackScope {
  private readonly stack: CallbackKind[] = [];

  /** True while any callback runs. */
  get active(): boolean {
    return this.stack.length > 0;
  }

  /** Throws if a callback of `kind` is running (the call is not allowed from it). */
  forbidIn(kind: CallbackKind, what: string): void {
    if (this.stack.includes(kind)) throw new Error(`${what} is not allowed inside a ${kind} callback`);
  }

  /** Throws if any callback is running. */
  forbid(what: string): void {
    if (this.stack.length) throw new Error(`${what} is not allowed inside a callback`);
  }

  /**
   * Runs each call in order as callbacks of `kind`; every call runs even if an earlier one
   * throws. Returns the first exception (undefined if none), for the caller to rethrow once its
   * operation is complete.
   */
  runAll(kind: CallbackKind, calls: (() => void)[], first?: unknown): unknown {
    let err = first;
    for (const c of calls) {
      this.stack.push(kind);
      try {
        c();
      } catch (e) {
        if (err === undefined) err = e;
      } finally {
        this.stack.pop();
      }
    }
    return err;
  }
}

const scopes = new WeakMap<Engine, CallbackScope>();

/** The callback scope of an engine. */
export function callbackScope(engine: Engine): CallbackScope {
  let s = scopes.get(engine);
  if (!s) scopes.set(engine, (s = new CallbackScope()));
  return s;
}

/** Rethrows a collected callback exception, if any. */
export function rethrow(err: unknown): void {
  if (err !== undefined) throw err;
}
