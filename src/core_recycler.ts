// Engines made one after another on a thread (the cells of `vfio-dirty compare`) run on one
// instance of the Wasm core, made new between them: see CoreRecycler.
import type { CoreExports } from './wasm.js';

/**
 * Keeps the instance of a disposed core for the next core created with this recycler: engines made
 * one after another on a thread (the cells of `vfio-dirty compare`) then run on one instance, whose
 * memory is already mapped and whose export functions stay the same objects. A new instance per
 * engine meant mapping and faulting in a new memory each time, and new export functions made V8
 * throw away and recompile, on every thread, the optimised code that called the old ones.
 *
 * A kept instance is made new again before it is used: its memory is zeroed, the static data it
 * was instantiated with is written back, and every mutable global is reset
 * (`core_reset_globals`). Only the memory's size (never observable through the engine: the heap
 * figures count allocated blocks) stays as large as it grew. One instance is kept, the last one
 * given back, and only for a core of the same build and memory limit.
 */
export class CoreRecycler {
  private spare: CoreInstance | null = null;
  private readonly statics = new WeakMap<WebAssembly.Module, Uint8Array>();

  /** The kept instance, made new, if it is of `module` with this maximum (in pages); else null. */
  take(module: WebAssembly.Module, maximum: number): CoreInstance | null {
    const s = this.spare;
    this.spare = null;
    if (!s || s.module !== module || s.maximum !== maximum) return null;
    const bytes = new Uint8Array(s.memory.buffer);
    bytes.fill(0);
    bytes.set(this.statics.get(module) as Uint8Array);
    s.raw.core_reset_globals();
    return s;
  }

  /** Notes the static data of a new instance of `module`, to write back when it is reused. */
  born(instance: CoreInstance): void {
    if (this.statics.has(instance.module)) return;
    const end = instance.raw.heap_static_end();
    this.statics.set(instance.module, new Uint8Array(instance.memory.buffer, 0, end).slice());
  }

  /**
   * Keeps `instance` (of a core being disposed) for the next `take`. A core built without the
   * build's transform (tools/core-reset.mjs) has no `core_reset_globals`, cannot be made new, and
   * is not kept: the next core is then instantiated afresh.
   */
  give(instance: CoreInstance): void {
    this.spare = typeof (instance.raw as Partial<CoreExports>).core_reset_globals === 'function' ? instance : null;
  }
}

/** An instance of the core: its module, memory (and its maximum, in pages) and raw exports. */
export interface CoreInstance {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  maximum: number;
  raw: CoreExports;
}
