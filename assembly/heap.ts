// The engine's allocator: every structure of the core takes its memory from here.
//
// AssemblyScript's own TLSF executes `unreachable` when memory.grow fails, which traps the whole
// instance. The engine must instead answer ENOMEM from the call that needed the memory and leave
// every structure as it was, so this allocator returns 0 and callers allocate before they mutate.
// It also gives tests a fail-the-Nth-allocation switch and exact figures of the memory in use.
//
// The heap is one run of blocks from `heapStart` to `heapEnd` (the end of linear memory). Every
// block is 16-byte aligned, a multiple of 16 bytes long, and starts with a 16-byte header:
//
//   block                                                       block + size
//   ├────────────┬────────────┬────────────┬────────────┬──────────┤
//   │ size | F   │ prevSize   │ nextFree   │ prevFree   │ payload  │
//   │ u32 @0     │ u32 @4     │ u32 @8     │ u32 @12    │ @16      │
//   └────────────┴────────────┴────────────┴────────────┴──────────┘
//   size      block bytes including the header; bit 0 (F) set while the block is free
//   prevSize  size of the physically preceding block, 0 for the first block
//   nextFree, prevFree  free-list links, meaningful only while the block is free
//
// Free blocks sit in segregated lists: exact classes of 16 bytes below 256 bytes, then four
// classes per power of two. A non-empty mask per class makes finding a fit O(1) apart from a short
// first-fit scan of the request's own class. Neighbouring free blocks are always merged, so a
// cycle of allocations and frees returns the heap to the same shape.

import { ENOMEM } from './constants';

const HEADER: usize = 16;
const MIN_BLOCK: usize = 32;
const FREE: u32 = 1;
const NCLASSES: u32 = 108;
// The longest first-fit scan inside the request's own class before moving to a larger class.
const SCAN_LIMIT: i32 = 32;
// Grow by at least 1 MiB at a time: fewer grow calls, and still a small overshoot.
const MIN_GROW_PAGES: i32 = 16;
// Requests at or above this size (payload bytes) are refused outright.
const MAX_REQUEST: usize = 0x7fff0000;

const heads = memory.data(<i32>NCLASSES * 4, 16); // u32 head of each class's free list
let maskLo: u64 = 0; // bit c: class c (0..63) has a free block
let maskHi: u64 = 0; // bit c - 64: class c (64..107) has a free block

let heapStart: usize = 0; // first block; 0 until the first allocation initialises the heap
let heapEnd: usize = 0; // one past the last block: always memory.size() << 16 once initialised
let lastBlock: usize = 0; // physically last block, 0 while the heap is empty

let usedBytes: usize = 0; // bytes of allocated blocks, headers included
let liveBlocks: u32 = 0; // allocated blocks
let allocCalls: u32 = 0; // allocation requests since instantiation
let failCountdown: u32 = 0; // when > 0, the request that brings it to 0 fails (fail-the-Nth)

@inline function blockSize(b: usize): usize {
  return <usize>(load<u32>(b) & ~FREE);
}
@inline function isFree(b: usize): bool {
  return (load<u32>(b) & FREE) != 0;
}
@inline function prevSizeOf(b: usize): usize {
  return <usize>load<u32>(b, 4);
}

/** Size class of a block of `size` bytes (a multiple of 16, at least MIN_BLOCK). */
@inline function classOf(size: usize): u32 {
  if (size < 256) return <u32>(size >> 4);
  const fl = <u32>(31 - clz<u32>(<u32>size));
  const sl = <u32>(size >> (fl - 2)) & 3;
  return 16 + (fl - 8) * 4 + sl;
}

@inline function headOf(c: u32): usize {
  return <usize>load<u32>(heads + (<usize>c << 2));
}
@inline function setHead(c: u32, b: usize): void {
  store<u32>(heads + (<usize>c << 2), <u32>b);
}

function insertFree(b: usize, size: usize): void {
  store<u32>(b, <u32>size | FREE);
  const c = classOf(size);
  const head = headOf(c);
  store<u32>(b, <u32>head, 8);
  store<u32>(b, 0, 12);
  if (head) store<u32>(head, <u32>b, 12);
  setHead(c, b);
  if (c < 64) maskLo |= <u64>1 << c;
  else maskHi |= <u64>1 << (c - 64);
}

function removeFree(b: usize): void {
  const next = <usize>load<u32>(b, 8);
  const prev = <usize>load<u32>(b, 12);
  if (prev) store<u32>(prev, <u32>next, 8);
  else {
    const c = classOf(blockSize(b));
    setHead(c, next);
    if (!next) {
      if (c < 64) maskLo &= ~(<u64>1 << c);
      else maskHi &= ~(<u64>1 << (c - 64));
    }
  }
  if (next) store<u32>(next, <u32>prev, 12);
}

/** The first non-empty class above `c`, or NCLASSES. */
function classAbove(c: u32): u32 {
  let start = c + 1;
  if (start < 64) {
    const m = maskLo & (<u64>-1 << start);
    if (m) return <u32>ctz(m);
    start = 64;
  }
  const m = maskHi & (<u64>-1 << (start - 64));
  return m ? 64 + <u32>ctz(m) : NCLASSES;
}

/** A free block of at least `size` bytes, or 0. */
function findFree(size: usize): usize {
  const c = classOf(size);
  let b = headOf(c);
  for (let n = 0; b && n < SCAN_LIMIT; n++) {
    if (blockSize(b) >= size) return b;
    b = <usize>load<u32>(b, 8);
  }
  const up = classAbove(c);
  return up < NCLASSES ? headOf(up) : 0;
}

function init(): void {
  heapStart = (__heap_base + 15) & ~(<usize>15);
  heapEnd = <usize>memory.size() << 16;
  if (heapEnd >= heapStart + MIN_BLOCK) {
    store<u32>(heapStart, 0, 4);
    insertFree(heapStart, heapEnd - heapStart);
    lastBlock = heapStart;
  } else {
    heapEnd = heapStart; // too little room: the first growth starts the heap here
    lastBlock = 0;
  }
}

/** Grows linear memory so that a free block of `size` bytes exists; returns it, or 0. */
function growFor(size: usize): usize {
  const last = lastBlock;
  const tail: usize = last && isFree(last) ? blockSize(last) : 0;
  const memEnd = <usize>memory.size() << 16;
  // Bytes still needed beyond the free tail and any slack between heapEnd and memory's end.
  const need = size - tail - (memEnd - heapEnd);
  const pages = <i32>((need + 0xffff) >> 16);
  if (memory.grow(max(pages, MIN_GROW_PAGES)) < 0 && memory.grow(pages) < 0) return 0;
  const oldEnd = heapEnd;
  heapEnd = <usize>memory.size() << 16;
  if (tail) {
    removeFree(last);
    insertFree(last, tail + (heapEnd - oldEnd));
    return last;
  }
  store<u32>(oldEnd, last ? <u32>blockSize(last) : 0, 4);
  insertFree(oldEnd, heapEnd - oldEnd);
  lastBlock = oldEnd;
  return oldEnd;
}

/**
 * Allocates `size` bytes, 16-byte aligned, uninitialised. Returns the payload address, or 0 when
 * memory cannot grow (or the fail-the-Nth switch fires). Never traps.
 */
export function alloc(size: usize): usize {
  allocCalls++;
  if (failCountdown && --failCountdown == 0) return 0;
  if (size >= MAX_REQUEST) return 0;
  if (!heapStart) init();
  const want = max((size + HEADER + 15) & ~(<usize>15), MIN_BLOCK);
  let b = findFree(want);
  if (!b) {
    b = growFor(want);
    if (!b) return 0;
  }
  removeFree(b);
  const have = blockSize(b);
  let size2 = have;
  if (have - want >= MIN_BLOCK) {
    const rest = b + want;
    const restSize = have - want;
    store<u32>(rest, <u32>want, 4);
    const after = rest + restSize;
    if (after < heapEnd) store<u32>(after, <u32>restSize, 4);
    if (b == lastBlock) lastBlock = rest;
    insertFree(rest, restSize);
    size2 = want;
  }
  store<u32>(b, <u32>size2);
  usedBytes += size2;
  liveBlocks++;
  return b + HEADER;
}

/** Allocates `size` zeroed bytes; 0 on failure. */
export function allocZeroed(size: usize): usize {
  const p = alloc(size);
  if (p) memory.fill(p, 0, size);
  return p;
}

/** Returns a block from `alloc` to the heap. `free(0)` does nothing. */
export function free(ptr: usize): void {
  if (!ptr) return;
  let b = ptr - HEADER;
  assert(!isFree(b), 'heap: double free');
  let size = blockSize(b);
  usedBytes -= size;
  liveBlocks--;
  const next = b + size;
  if (next < heapEnd && isFree(next)) {
    removeFree(next);
    if (next == lastBlock) lastBlock = b;
    size += blockSize(next);
  }
  const ps = prevSizeOf(b);
  if (ps) {
    const prev = b - ps;
    if (isFree(prev)) {
      removeFree(prev);
      if (b == lastBlock) lastBlock = prev;
      size += ps;
      b = prev;
    }
  }
  const after = b + size;
  if (after < heapEnd) store<u32>(after, <u32>size, 4);
  insertFree(b, size);
}

/**
 * Resizes a block to hold at least `size` bytes, keeping its contents. Returns the (possibly
 * moved) payload address, or 0 with the old block untouched.
 */
export function realloc(ptr: usize, size: usize): usize {
  if (!ptr) return alloc(size);
  const cur = blockSize(ptr - HEADER) - HEADER;
  if (size <= cur) return ptr;
  const p = alloc(size);
  if (!p) return 0;
  memory.copy(p, ptr, cur);
  free(ptr);
  return p;
}

/** Payload bytes usable in the block at `ptr`. */
export function capacityOf(ptr: usize): usize {
  return blockSize(ptr - HEADER) - HEADER;
}

// ---- exports -------------------------------------------------------------------------------

/** Allocates `size` bytes for the host (batches, scratch). Returns the address or -ENOMEM. */
export function heap_alloc(size: u32): i32 {
  const p = alloc(<usize>size);
  return p ? <i32>p : -ENOMEM;
}

/** Frees an address returned by `heap_alloc`. */
export function heap_free(ptr: u32): void {
  free(<usize>ptr);
}

/** Bytes held by allocated blocks, headers included. */
export function heap_used(): u32 {
  return <u32>usedBytes;
}

/** Number of allocated blocks. */
export function heap_live(): u32 {
  return liveBlocks;
}

/** Allocation requests made since instantiation (drives fail-the-Nth sweeps). */
export function heap_alloc_calls(): u32 {
  return allocCalls;
}

/**
 * Makes the `n`th allocation request from now fail (1: the next one); 0 disarms. Only that one
 * request fails; later requests succeed again.
 */
export function heap_fail_nth(n: u32): void {
  failCountdown = n;
}

/** What heap_fail_nth would be given to re-arm the switch as it stands now (0: disarmed). */
export function heap_fail_pending(): u32 {
  return failCountdown;
}

/**
 * End of the static data (the heap starts at or after it): a reused instance has its bytes below
 * this written back (src/core_recycler.ts).
 */
export function heap_static_end(): u32 {
  return <u32>__heap_base;
}
