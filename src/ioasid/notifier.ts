// Notifier chains (docs/conformance.md §15.4): the global chain and one per set, ordered by
// priority, each subscriber called as a callback (§15.5) with one frozen payload per notification.
import type { Calls } from './calls.js';

/** What a subscriber receives with each event. */
export interface IoasidNbArgs {
  readonly id: number;
  readonly sid: number;
  readonly token: unknown;
  readonly pdata: object | null;
}

/** A subscriber: its result is a NOTIFY_* value (anything else counts as NOTIFY_DONE). */
export type IoasidNotifier = (event: number, args: IoasidNbArgs) => number | void;

export const NOTIFY_DONE = 0;
export const NOTIFY_STOP_MASK = 0x8000;

interface Entry {
  readonly nb: IoasidNotifier;
  readonly priority: number;
}

/** One chain: subscribers from the highest priority down, ties in registration order. */
export class Chain {
  private readonly entries: Entry[] = [];

  get size(): number {
    return this.entries.length;
  }

  has(nb: IoasidNotifier): boolean {
    return this.entries.some((e) => e.nb === nb);
  }

  /** Inserts after every subscriber whose priority is at least `priority`: highest
   * priority first, equal priorities in the order they subscribed. */
  add(nb: IoasidNotifier, priority: number): void {
    let i = 0;
    while (i < this.entries.length && this.entries[i].priority >= priority) i++;
    this.entries.splice(i, 0, { nb, priority });
  }

  /** Removes `nb`: true, or false when it is not on the chain. */
  remove(nb: IoasidNotifier): boolean {
    const i = this.entries.findIndex((e) => e.nb === nb);
    if (i < 0) return false;
    this.entries.splice(i, 1);
    return true;
  }

  /**
   * Calls the subscribers in order until one's result has NOTIFY_STOP_MASK. Returns the
   * last result, or -1 when the chain is empty.
   */
  walk(calls: Calls, event: number, args: IoasidNbArgs): number {
    let last = -1;
    for (const e of [...this.entries]) {
      const r = calls.callback(() => e.nb(event, args), undefined);
      last = typeof r === 'number' && Number.isInteger(r) && r >= 0 && r <= 0xffff_ffff ? r : NOTIFY_DONE;
      if (last & NOTIFY_STOP_MASK) break;
    }
    return last;
  }
}
