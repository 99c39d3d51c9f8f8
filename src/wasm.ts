// The one host file that knows the Wasm core's exports: their typed table, compilation (once per
// build flavour, cached), instantiation with the engine's own linear memory, and the views on it.
//
// ABI rules, shared by every export:
// - arguments are pointers, counts, bit or page indices and flags; i32 results are a
//   non-negative value (a count, an index, or a pointer: linear memory stays below 2 GiB so a
//   pointer is always positive) or a negative errno;
// - u64 quantities (IOVAs, addresses, page numbers that may pass 2^32) travel as i64, i.e. bigint;
// - bulk data (bitmaps, batches) stays in linear memory; the host reads it through views from
//   `Core.u8()` and friends, which are rebuilt whenever memory has grown.
import { readFileSync } from 'node:fs';
import { instantiateSync } from '@assemblyscript/loader';
import { WASM_MAX_PAGES } from '../assembly/constants.js';
import type { CoreInstance, CoreRecycler } from './core_recycler.js';

/** The Wasm core's exports, declared once. Sections follow assembly/index.ts. */
export interface CoreExports {
  // ---- heap (assembly/heap.ts) -------------------------------------------------------------
  /** Allocates `size` bytes, 16-byte aligned; the address, or -ENOMEM. */
  heap_alloc(size: number): number;
  /** Frees an address from heap_alloc. */
  heap_free(ptr: number): void;
  /** Bytes held by allocated blocks, headers included. */
  heap_used(): number;
  /** Number of allocated blocks. */
  heap_live(): number;
  /** Allocation requests since instantiation. */
  heap_alloc_calls(): number;
  /** The nth allocation request from now fails (1: the next); 0 disarms. */
  heap_fail_nth(n: number): void;
  /** The armed countdown of heap_fail_nth (0: disarmed), to put back after the engine's own allocations. */
  heap_fail_pending(): number;
  /** End of the static data; the heap lies above it. */
  heap_static_end(): number;
  /**
   * Sets every mutable global back to its initial value (added to the build by
   * tools/core-reset.mjs): with memory zeroed and the static data written back, a new instance.
   */
  core_reset_globals(): void;

  // ---- dirty_bitmap (assembly/dirty_bitmap.ts) ----------------------------------------------
  // A handle `bm` points to {nbits u32, nwords u32, 8 reserved bytes} then the little-endian u64
  // words; bits at or above nbits are always 0. Ranges are (first, count), first + count <= nbits.
  /** A zeroed bitmap of nbits (1..2^31) bits: its handle, -EINVAL or -ENOMEM. */
  bitmap_create(nbits: number): number;
  /** Frees a bitmap. */
  bitmap_free(bm: number): void;
  /** Bits of the bitmap, as u32 (read it with `>>> 0`: 2^31 arrives negative). */
  bitmap_nbits(bm: number): number;
  /** Address of word 0 (16-byte aligned). */
  bitmap_words(bm: number): number;
  /** Sets one bit: 0 or -EINVAL. */
  bitmap_set(bm: number, bit: number): number;
  /** Sets bits [first, first + count): 0 or -EINVAL. */
  bitmap_set_range(bm: number, first: number, count: number): number;
  /** Clears bits [first, first + count): 0 or -EINVAL. */
  bitmap_clear_range(bm: number, first: number, count: number): number;
  /** 1 when the bit is set, 0 when clear, -EINVAL out of range. */
  bitmap_test(bm: number, bit: number): number;
  /** Set bits in the range as u32 (2^31 arrives as -2^31; read with `>>> 0`), or -EINVAL. */
  bitmap_count(bm: number, first: number, count: number): number;
  /** First set bit at or after `from`; -ENOENT when none (or from == nbits); -EINVAL past nbits. */
  bitmap_next_set(bm: number, from: number): number;
  /** Clears every bit, writing only words that are not already zero. */
  bitmap_clear(bm: number): void;
  /** Sets the bits whose u32 indices are at `pages` (n of them), all checked first: 0 or -EINVAL. */
  bitmap_set_batch(bm: number, pages: number, n: number): number;
  /**
   * update_user_bitmap's footprint: src bits [first, first + count) written as whole u64 words
   * at `dst` (8-byte aligned), src bit `first` at bit s (0..63) of the word at dst; the word at
   * dst is ORed in when s != 0, bits above the range in the last word become 0. clear != 0 then
   * clears the range in src. Returns the words written, ceil((count + s) / 64) (0 for count 0),
   * or -EINVAL (range, s, dst misaligned, outside memory, or overlapping src).
   */
  bitmap_read(src: number, first: number, count: number, dst: number, s: number, clear: number): number;
  /**
   * Output words [from, from + n) of bitmap_read's stream, to consecutive words at `out`; with
   * from == 0 and s != 0 word 0 ORs the word already at out. No clearing. n, or -EINVAL.
   */
  bitmap_emit(src: number, first: number, count: number, s: number, out: number, from: number, n: number): number;
  /** ORs src bits [srcFirst, +count) into dst bits [dstFirst, +count): 0 or -EINVAL. */
  bitmap_or(dst: number, dstFirst: number, src: number, srcFirst: number, count: number): number;
  /**
   * Page-size conversion into dst, overwritten whole. k > 0: dst bit j = OR of src bits
   * [j << k, (j + 1) << k), dst of ceil(nbits / 2^k) bits; k < 0: each bit repeated 2^-k times,
   * dst of nbits << -k bits; k = 0 copies. 0, or -EINVAL (k outside -31..31, dst == src, size).
   */
  bitmap_convert(src: number, dst: number, k: number): number;
  /** A new bitmap holding src at 2^k times its page size (not zeroed first: every word is written); its handle, -EINVAL or -ENOMEM. */
  bitmap_convert_new(src: number, k: number): number;
  /**
   * Up to `max` maximal runs of set bits inside [first, first + count) as u32 (start, length)
   * pairs at `out`, ascending, start from bit 0: how many, or -EINVAL. Resume at the last end.
   */
  bitmap_runs(bm: number, first: number, count: number, out: number, max: number): number;
  /**
   * Every maximal run of bm as u32 (start, length) pairs in a heap block it allocates (sized from
   * a sample of its words, grown by doubling if short; no count pass), its address stored at the
   * u32 `slot`: the number of runs, -EINVAL or -ENOMEM (nothing allocated). The caller frees the
   * block with heap_free.
   */
  bitmap_runs_all(bm: number, slot: number): number;

  // ---- iova_tree (assembly/iova_tree.ts) ----------------------------------------------------
  /** Creates an empty IOVA range tree; its handle, or -ENOMEM. */
  tree_create(): number;
  /** Frees a tree and its nodes. */
  tree_free(t: number): void;
  /** Ranges stored. */
  tree_count(t: number): number;
  /** Inserts [iova, last] (inclusive, u64) with value (0..2^31-1): 0, -EINVAL, -EEXIST or -ENOMEM. */
  tree_insert(t: number, iova: bigint, last: bigint, value: number): number;
  /** Removes the range starting exactly at iova: its value, or -ENOENT. */
  tree_remove(t: number, iova: bigint): number;
  /** The value of the range containing addr, or -ENOENT. */
  tree_find(t: number, addr: bigint): number;
  /** The value of the lowest range overlapping [a, b] (inclusive), or -ENOENT. */
  tree_first(t: number, a: bigint, b: bigint): number;
  /** Writes up to max ranges overlapping [a, b], ascending, as 24-byte {iova, last, value, pad}; the count. */
  tree_collect(t: number, a: bigint, b: bigint, out: number, max: number): number;
  /** For n u64 addresses at addrs, writes n i32 (value or -ENOENT) at out; returns 0. */
  tree_find_batch(t: number, addrs: number, n: number, out: number): number;

  // ---- pin_table (assembly/pin_table.ts) ----------------------------------------------------
  /** Creates an empty pin table (one per vfio_dma); its handle, or -ENOMEM. */
  pins_create(): number;
  /** Frees a pin table. */
  pins_free(p: number): void;
  /** Drops every pin and frees the table's slots. */
  pins_clear(p: number): void;
  /** Distinct pinned pages. */
  pins_size(p: number): number;
  /** Refcount of one page (0 when not pinned). */
  pins_count(p: number, page: bigint): number;
  /** Pins pages first..first+n-1 (budget < 0: unlimited; bm 0: no bitmap): new pages, -ENOMEM or -EINVAL. */
  pins_pin_range(p: number, first: bigint, n: number, budget: number, bm: number, shift: number): number;
  /** Unpins pages first..first+n-1 once each (unpinned pages ignored): pages released. */
  pins_unpin_range(p: number, first: bigint, n: number): number;
  /** pins_pin_range for n u64 pages at `pages` (repeats allowed): new pages, -ENOMEM or -EINVAL. */
  pins_pin_batch(p: number, pages: number, n: number, budget: number, bm: number, shift: number): number;
  /** pins_unpin_range for n u64 pages at `pages`: pages released. */
  pins_unpin_batch(p: number, pages: number, n: number): number;
  /** Sets bit (q - first) >> shift of bm for every pinned page q in the window of nbits: 0 or -EINVAL. */
  pins_mark(p: number, bm: number, first: bigint, nbits: number, shift: number): number;
  /** Pinned pages in [first, first + n). */
  pins_count_range(p: number, first: bigint, n: bigint): number;
  /** Writes up to max 16-byte {page u64, count u32, pad} records, lowest pages ascending; the count. */
  pins_collect(p: number, out: number, max: number): number;

  // ---- user_memory (assembly/user_memory.ts) ------------------------------------------------
  // User addresses are below 2^47 and travel as plain numbers (f64), exact at that size.
  /** A new empty sparse user memory; the handle or -ENOMEM. */
  um_create(): number;
  /** Frees a user memory with its tables and frames. */
  um_free(um: number): void;
  /** 4 KiB frames in use (pages ever written). */
  um_frames(um: number): number;
  /** Copies len bytes from linear memory at src to user address addr: 0, -ENOMEM or -EFAULT. */
  um_write(um: number, addr: number, src: number, len: number): number;
  /** Copies len bytes at user address addr to linear memory at dst (zeros where unwritten). */
  um_read(um: number, addr: number, dst: number, len: number): number;
  /** Frames every page of [addr, addr+len): blocks added, -ENOMEM (nothing added) or -EFAULT. */
  um_reserve(um: number, addr: number, len: number): number;
  /**
   * Frames every page of `count` ascending page ranges (f64 pairs first, last at `pairs`), all or
   * nothing: blocks added, or -ENOMEM with nothing added.
   */
  um_reserve_ranges(um: number, pairs: number, count: number): number;

  // ---- ioasid (assembly/ioasid.ts, assembly/ioasid_map.ts) ----------------------------------
  // IDs are u32 passed as numbers; u32 results arrive signed (read them with `>>> 0`).
  /** A new empty ID map: global (records 1: a 12-byte {sid, users, flags} record per ID) or a set's (0); handle or -ENOMEM. */
  ioasid_map_create(records: number): number;
  /** Frees an ID map. */
  ioasid_map_free(m: number): void;
  /** IDs in the map (u32). */
  ioasid_map_count(m: number): number;
  /** Lowest ID in [from, last] that is free (want 0) or a member (want 1); 0xFFFFFFFF (as -1) if none. */
  ioasid_search(m: number, from: number, last: number, want: number): number;
  /** Allocates a free id in global map g and set map s with record {sid, 0, flags}: 0 or -ENOMEM (nothing changed). */
  ioasid_insert(g: number, s: number, id: number, sid: number, flags: number): number;
  /** Removes an allocated id from g and its set map s. */
  ioasid_remove(g: number, s: number, id: number): void;
  /** Address of id's record in g, or 0 when id is not allocated. */
  ioasid_record(g: number, id: number): number;
  /** Up to max members of m in [from, last], ascending, as u32 at out: how many. */
  ioasid_collect(m: number, from: number, last: number, out: number, max: number): number;

  // ---- soft_dirty (assembly/soft_dirty.ts) -------------------------------------------------
  /** A new empty soft-dirty record (one bit per user page, sparse); handle or -ENOMEM. */
  sd_create(): number;
  /** Drops every mark. */
  sd_clear(sd: number): void;
  /** Frees a record. */
  sd_free(sd: number): void;
  /** Marks the pages touched by [addr, addr+len): 0, -EFAULT (past 2^47) or -ENOMEM (nothing marked). */
  sd_mark(sd: number, addr: number, len: number): number;
  /** Marks the pages of n stores of `bytes` at the f64 addresses at addrs: 0, or -errno when one could not be marked. */
  sd_mark_many(sd: number, addrs: number, n: number, bytes: number): number;
  /** ORs the marks of pages [first, first+n) into bits 0..n-1 of the byte bitmap at out. */
  sd_read(sd: number, first: number, n: number, out: number): void;
  /** Sets bits [from, from+n) of the byte bitmap at out. */
  sd_fill(out: number, from: number, n: number): void;

  // ---- report (assembly/report.ts) ----------------------------------------------------------
  /**
   * One dma's report into user memory at `addr` (the user bitmap's word w): the kernel footprint
   * of its bits shifted by s (all ones when allDirty), then the bitmap is cleared and the pinned
   * pages of `pins` (0: none) marked again at bit page >> shift. An unaligned addr stages words in
   * `scratch` (a PAGE_SIZE block; 0: allocated per call). 0, or -ENOMEM with nothing done.
   */
  report_user(
    um: number, addr: number, bm: number, s: number, pins: number, shift: number, allDirty: number, scratch: number,
  ): number;
  /**
   * Bits [first, first + count) of a dma's bitmap into linear memory at dst, shifted by s (all
   * ones when allDirty); clear != 0 clears the range and marks pinned pages again. Words written.
   */
  report_words(
    dst: number, bm: number, first: number, count: number, s: number, pins: number, shift: number,
    allDirty: number, clear: number,
  ): number;

  // ---- kvm (assembly/kvm_memslot.ts, kvm_dirty_ring.ts, kvm_vcpu.ts) ---------------------------
  // A VM's slot tables, its slots (handles), vCPU rings; gfns and gpas are bigint, host addresses
  // numbers below 2^47. The host checks every argument before calling (docs/conformance.md §19).
  /** Slot tables for maxSlots ids per address space: the VM handle, or -ENOMEM. */
  kvm_vm_create(maxSlots: number): number;
  /** Frees a VM's slots and tables. */
  kvm_vm_free(vm: number): void;
  /** 1 when a slot of `as` other than `self` intersects gfns [base, last]. */
  kvm_slot_overlap(vm: number, as: number, base: bigint, last: bigint, self: number): number;
  /** CREATE of slot number `num`: the slot handle or -ENOMEM (nothing made). */
  kvm_slot_create(vm: number, num: number, flags: number, base: bigint, npages: number, uaddr: number, withBitmap: number, initiallySet: number): number;
  /** DELETE: the slot and its per-page state are freed. */
  kvm_slot_delete(vm: number, slot: number): void;
  /** MOVE / FLAGS_ONLY; bitmap 0 keep, 1 free, 2 new. 0 or -ENOMEM (nothing changed). */
  kvm_slot_update(vm: number, slot: number, flags: number, newBase: bigint, bitmap: number, initiallySet: number, protect: number): number;
  /** Marks the slot's whole host range as mapped anonymous memory (1) or not known to be (0). */
  kvm_slot_set_backed(slot: number, backed: number): void;
  /** The slot's dirty bitmap handle (dirty_bitmap), 0 without one. */
  kvm_slot_bitmap(slot: number): number;
  /** The slot of `as` containing gfn, or -ENOENT. */
  kvm_slot_find(vm: number, as: number, gfn: bigint): number;
  /** Write-track count of page p of a slot. */
  kvm_track_count(slot: number, p: number): number;
  /** Count of page p += delta (±1, saturating); +1 protects. 0 or -ENOMEM. */
  kvm_track_add(slot: number, p: number, delta: number): number;
  /** Pages of a slot whose write-track count is above 0. */
  kvm_slot_tracked(slot: number): number;
  /** A zeroed dirty ring of `bytes`: its handle, or -ENOMEM. */
  kvm_ring_create(bytes: number): number;
  /** Frees a ring. */
  kvm_ring_free(ring: number): void;
  /** Address of the ring's entries in linear memory. */
  kvm_ring_mem(ring: number): number;
  /** dirty_index − reset_index (u32). */
  kvm_ring_used(ring: number): number;
  /** KVM_RESET_DIRTY_RINGS on one ring: entries reset. */
  kvm_ring_reset(ring: number, vm: number): number;
  /** A checked guest store from linear memory `src`: bytes done (stops at soft-full or a tracked piece unless emulateFirst). */
  kvm_vcpu_write(vm: number, as: number, um: number, ring: number, gpa: bigint, src: number, len: number, emulateFirst: number): number;
  /** A checked KVM-internal write: every piece stored and recorded. */
  kvm_vcpu_write_guest(vm: number, as: number, um: number, ring: number, gpa: bigint, src: number, len: number): void;
  /** Checks and reserves stores [from, n) of a batch: index of the first that needs a closer look, n, or -ENOMEM. */
  kvm_batch_check(vm: number, as: number, um: number, gpas: number, n: number, bytes: number, from: number, data: number): number;
  /** Stores [from, n) of a checked batch; host addresses to hvas (f64): the index reached. */
  kvm_vcpu_write_batch(vm: number, as: number, um: number, ring: number, gpas: number, n: number, data: number, bytes: number, from: number, hvas: number): number;
  /** The slot's bitmap to user memory at addr, cleared when `clear`: 0 or -ENOMEM. */
  kvm_get_log(slot: number, um: number, addr: number, clear: number): number;
  /** Bitmap words from firstWord lose the bits set in nwords user words at addr. */
  kvm_clear_log(slot: number, um: number, addr: number, firstWord: number, nwords: number): void;
  // ---- the simulator's VMM (assembly/kvm_vmm.ts) -------------------------------------------------
  /** Lays out n 8-byte guest stores: gpas (u64) and data (seq + i on pages set in `valued`, else 0); the stores into the watched pages. */
  vmm_stores(pages: number, first: number, n: number, gpas: number, data: number, valued: number, seq: number, watchFirst: number, watchCount: number): number;
  /** ORs nwords words of user memory at addr into bitmap bm from word firstWord. */
  /** Reaps DIRTY entries of a ring copy from fetch on into bm (slot table of base/pages pairs); the count. */
  vmm_ring_reap(mem: number, entries: number, fetch: number, table: number, nslots: number, bm: number): number;
  /** 32-bit hashes of n user pages (u32 page numbers at vfns from base) to out; how many differ from prev (or 0). */
  vmm_page_hashes(um: number, base: number, vfns: number, n: number, out: number, prev: number): number;

  // ---- unit_report (assembly/unit_report.ts) ------------------------------------------------
  /**
   * A tracker's or HWPT's report: the marked units of bm (unit j = [base + j·2^ushift, +2^ushift),
   * units up to IOVA ulast) meeting [iova, last] set the bits of the report units (2^pshift bytes
   * from iova) they meet, ORed into the user bitmap at `user` (frames reserved by the caller);
   * with clear != 0 each unit inside [iova, last] is unmarked. Returns the units cleared.
   */
  unit_report(
    um: number, user: number, bm: number, base: bigint, ulast: bigint, ushift: number, iova: bigint, last: bigint,
    pshift: number, clear: number,
  ): number;
}

/** Which compiled core to run: `release` (optimised, SIMD) or `debug` (assertions kept). */
export type CoreFlavour = 'release' | 'debug';

export interface CoreOptions {
  /** Which build of the core to instantiate; default 'release'. */
  flavour?: CoreFlavour;
  /** Upper bound of the core's linear memory in bytes; default and maximum just under 2 GiB. */
  memoryLimit?: number;
  /** Where the core takes a disposed core's instance from, and leaves its own at `dispose`. */
  recycler?: CoreRecycler;
}

const WASM_PAGE = 65536;
const compiled = new Map<CoreFlavour, Promise<WebAssembly.Module>>();

function compile(flavour: CoreFlavour): Promise<WebAssembly.Module> {
  let m = compiled.get(flavour);
  if (!m) {
    const url = new URL(`../../build/${flavour}.wasm`, import.meta.url);
    const fallback = new URL(`../build/${flavour}.wasm`, import.meta.url);
    let bytes: Buffer;
    try {
      bytes = readFileSync(url);
    } catch {
      bytes = readFileSync(fallback); // running from src/ under vitest rather than dist/src/
    }
    m = WebAssembly.compile(bytes);
    compiled.set(flavour, m);
  }
  return m as Promise<WebAssembly.Module>;
}

/** One instance of the Wasm core: its exports, its memory, and views on that memory. */
export class Core {
  /** The exports; after `dispose` every one of them throws. */
  x: CoreExports;
  /** The instance the core runs on; null once disposed. */
  private instance: CoreInstance | null;
  private buffer: ArrayBuffer;
  private v8: Uint8Array;
  private v32: Uint32Array;
  private v64: BigUint64Array;

  private constructor(
    instance: CoreInstance,
    private readonly recycler: CoreRecycler | null,
  ) {
    this.instance = instance;
    this.x = instance.raw;
    this.buffer = instance.memory.buffer;
    this.v8 = new Uint8Array(this.buffer);
    this.v32 = new Uint32Array(this.buffer);
    this.v64 = new BigUint64Array(this.buffer);
  }

  /**
   * Compiles the core once per flavour, then instantiates it with a fresh memory, or takes the
   * instance `options.recycler` kept from a disposed core of the same build and limit, made new.
   */
  static async create(options: CoreOptions = {}): Promise<Core> {
    const flavour = options.flavour ?? 'release';
    const limit = options.memoryLimit ?? WASM_MAX_PAGES * WASM_PAGE;
    if (!Number.isInteger(limit) || limit < WASM_PAGE) {
      throw new RangeError(`memoryLimit must be an integer of at least ${WASM_PAGE} bytes`);
    }
    const maximum = Math.min(WASM_MAX_PAGES, Math.floor(limit / WASM_PAGE));
    const module = await compile(flavour);
    const recycler = options.recycler ?? null;
    const kept = recycler?.take(module, maximum);
    if (kept) return new Core(kept, recycler);
    const memory = new WebAssembly.Memory({ initial: 1, maximum });
    const { exports } = instantiateSync<Record<string, unknown>>(module, { env: { memory } });
    // Hold the raw export functions in one plain object. The loader wraps each export in a
    // rest-parameter function that sets the core's argument count, which the core only reads when
    // an export has optional parameters (it then exports a setter): without one, the wrapper is
    // pure cost, an array allocated per call, and its `original` is taken instead.
    const counted = ['__setArgumentsLength', '__argumentsLength', '__setargc'].some((k) => k in exports);
    const raw = {} as Record<string, unknown>;
    for (const [k, v] of Object.entries(exports)) {
      if (typeof v === 'function') raw[k] = counted ? v : ((v as { original?: unknown }).original ?? v);
    }
    const instance: CoreInstance = { module, memory, maximum, raw: raw as unknown as CoreExports };
    recycler?.born(instance);
    return new Core(instance, recycler);
  }

  /** The instance's linear memory; throws after `dispose`. */
  get memory(): WebAssembly.Memory {
    if (!this.instance) this.x.heap_used(); // throws the dispose reason
    return (this.instance as CoreInstance).memory;
  }

  /**
   * Drops the instance: the memory, the exports and the views go, so the WebAssembly.Memory can be
   * collected while objects that held this core live on (or the instance goes to the core's
   * recycler); every later call throws Error(reason).
   */
  dispose(reason: string): void {
    const fail = (): never => {
      throw new Error(reason);
    };
    this.x = new Proxy({}, { get: () => fail }) as CoreExports;
    if (this.instance && this.recycler) this.recycler.give(this.instance);
    this.instance = null;
    this.buffer = new ArrayBuffer(0);
    this.v8 = new Uint8Array(0);
    this.v32 = new Uint32Array(0);
    this.v64 = new BigUint64Array(0);
  }

  private refresh(): void {
    this.buffer = this.memory.buffer;
    this.v8 = new Uint8Array(this.buffer);
    this.v32 = new Uint32Array(this.buffer);
    this.v64 = new BigUint64Array(this.buffer);
  }

  /** Bytes of linear memory. Valid until the next core call that may grow memory. */
  u8(): Uint8Array {
    if (this.memory.buffer !== this.buffer) this.refresh();
    return this.v8;
  }

  /** Linear memory as u32 words (index = address / 4). Valid until memory next grows. */
  u32(): Uint32Array {
    if (this.memory.buffer !== this.buffer) this.refresh();
    return this.v32;
  }

  /** Linear memory as u64 words (index = address / 8). Valid until memory next grows. */
  u64(): BigUint64Array {
    if (this.memory.buffer !== this.buffer) this.refresh();
    return this.v64;
  }

  /** A block of `bytes` from the core heap (16-byte aligned): its address, or -ENOMEM. */
  alloc(bytes: number): number {
    return this.x.heap_alloc(bytes);
  }

  /** Returns a block from alloc() (0 is ignored). */
  free(ptr: number): void {
    this.x.heap_free(ptr);
  }

  /**
   * Runs `fn` with the fail-the-Nth switch disarmed, then re-arms it as it was: the engine's own
   * scratch allocations (inspect) do not consume a test's countdown.
   */
  unarmed<T>(fn: () => T): T {
    const armed = this.x.heap_fail_pending();
    this.x.heap_fail_nth(0);
    try {
      return fn();
    } finally {
      this.x.heap_fail_nth(armed);
    }
  }

  /** Bytes of linear memory in use by the core's heap. */
  heapUsed(): number {
    return this.x.heap_used();
  }
}
