// The replay trace format: JSON Lines, one event object per line, checked strictly (an unknown
// op or field, a missing field, a value of the wrong kind is an error naming the line). Blank
// lines and lines starting with '#' are skipped. Addresses and sizes are a JSON number (a safe
// integer) or a string, "0x..." hexadecimal or decimal, so that any u64 can be written exactly.
//
//   {"op":"device","name":"gpu0","kind":"emulated"}      a device in a group of its own
//   {"op":"map","iova":"0x100000","size":"0x200000"}     MAP_DMA of fresh process memory
//   {"op":"unmap","iova":"0x100000","size":"0x200000"}   UNMAP_DMA
//   {"op":"pin","iova":"0x101000","npage":4}             vfio_pin_pages by a device
//   {"op":"unpin","iova":"0x101000","npage":4}           vfio_unpin_pages
//   {"op":"write","iova":"0x180000","length":8192}       vfio_dma_rw write by a device
//   {"op":"start"} / {"op":"stop"}                       dirty tracking START / STOP
//   {"op":"read","iova":"0x0","size":"0x400000"}         GET_BITMAP: printed or exported
//   {"op":"cpu-dirty","runs":[[256,16],[1024,1]]}        guest CPU writes: pages into the CPU dirty log
//   {"op":"read",...,"cpu":true}                         GET_BITMAP merged with the CPU log, then cleared
//
// `simulate --trace FILE` writes its run in this format (formatTraceEvent), so that `replay`
// reproduces every harvest.
import { PAGE_SIZE, U64_MAX } from '../u64.js';

/** A trace event, parsed and checked. */
export type TraceEvent =
  | { op: 'device'; name: string; kind: 'emulated' | 'iommu'; pins: boolean }
  | { op: 'map'; iova: bigint; size: bigint; read: boolean; write: boolean }
  | { op: 'unmap'; iova: bigint; size: bigint }
  | { op: 'pin'; iova: bigint; npage: number; write: boolean; device?: string }
  | { op: 'unpin'; iova: bigint; npage: number; device?: string }
  | { op: 'write'; iova: bigint; length: number; value: number; device?: string }
  | { op: 'start' }
  | { op: 'stop' }
  | { op: 'cpu-dirty'; runs: [number, number][] }
  | { op: 'read'; iova: bigint; size: bigint; clear: boolean; pageSize?: bigint; label?: string; cpu?: boolean };

export type TraceOp = TraceEvent['op'];

/** A bad trace line, or an event the engine refused: the line number and the reason. */
export class TraceError extends Error {
  constructor(readonly line: number, readonly reason: string) {
    super(`line ${line}: ${reason}`);
    this.name = 'TraceError';
  }
}

/**
 * Each op's fields: required ones map to true, optional ones to false. Maps, not objects: a
 * lookup of "constructor" or "__proto__" must find nothing, not Object.prototype's members.
 */
const FIELDS: ReadonlyMap<string, ReadonlyMap<string, boolean>> = new Map(
  Object.entries({
    device: { name: true, kind: false, pins: false },
    map: { iova: true, size: true, read: false, write: false },
    unmap: { iova: true, size: true },
    pin: { iova: true, npage: true, write: false, device: false },
    unpin: { iova: true, npage: true, device: false },
    write: { iova: true, length: true, value: false, device: false },
    start: {},
    stop: {},
    read: { iova: true, size: true, clear: false, pagesize: false, label: false, cpu: false },
    'cpu-dirty': { runs: true },
  } satisfies Record<TraceOp, Record<string, boolean>>).map(([op, f]) => [op, new Map(Object.entries(f))]),
);


/** A u64 from a safe-integer number or a decimal / "0x" hexadecimal string. */
function u64(v: unknown, field: string): bigint {
  let n: bigint;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`"${field}" must be a non-negative safe integer or a string, got ${v}`);
    n = BigInt(v);
  } else if (typeof v === 'string' && /^(0x[0-9a-f]+|\d+)$/i.test(v)) {
    n = BigInt(v);
  } else {
    throw new Error(`"${field}" must be a number or a "0x..." / decimal string, got ${JSON.stringify(v)}`);
  }
  if (n > U64_MAX) throw new Error(`"${field}" does not fit in 64 bits`);
  return n;
}

/** An integer in [min, max] (a number, or a string as u64 accepts). */
function int(v: unknown, field: string, min: number, max: number): number {
  const n = u64(v, field);
  if (n < BigInt(min) || n > BigInt(max)) throw new Error(`"${field}" must be between ${min} and ${max}, got ${n}`);
  return Number(n);
}

function bool(v: unknown, field: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw new Error(`"${field}" must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function str(v: unknown, field: string): string {
  if (typeof v !== 'string' || v.length === 0) throw new Error(`"${field}" must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * Parses one line. Returns null for a blank or comment line.
 * @throws TraceError with the line number and the reason
 */
export function parseTraceLine(text: string, line: number): TraceEvent | null {
  const t = text.trim();
  if (t === '' || t.startsWith('#')) return null;
  let o: unknown;
  try {
    o = JSON.parse(t);
  } catch (e) {
    throw new TraceError(line, `not valid JSON (${(e as Error).message})`);
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new TraceError(line, 'an event must be a JSON object');
  const r = o as Record<string, unknown>;
  const op = r.op;
  const fields = typeof op === 'string' ? FIELDS.get(op) : undefined;
  if (!fields) {
    throw new TraceError(line, `unknown op ${JSON.stringify(op)} (expected one of ${[...FIELDS.keys()].join(', ')})`);
  }
  for (const k of Object.keys(r)) {
    if (k !== 'op' && !fields.has(k)) throw new TraceError(line, `unknown field ${JSON.stringify(k)} for op "${op}"`);
  }
  for (const [k, required] of fields) {
    if (required && r[k] === undefined) throw new TraceError(line, `op "${op}" needs "${k}"`);
  }
  try {
    return build(op as TraceOp, r);
  } catch (e) {
    throw new TraceError(line, (e as Error).message);
  }
}

function optDevice(r: Record<string, unknown>): { device?: string } {
  return r.device === undefined ? {} : { device: str(r.device, 'device') };
}

function build(op: TraceOp, r: Record<string, unknown>): TraceEvent {
  switch (op) {
    case 'device': {
      const kind = r.kind ?? 'emulated';
      if (kind !== 'emulated' && kind !== 'iommu') throw new Error(`"kind" must be "emulated" or "iommu", got ${JSON.stringify(kind)}`);
      return { op, name: str(r.name, 'name'), kind, pins: bool(r.pins, 'pins', kind === 'emulated') };
    }
    case 'map':
      return { op, iova: u64(r.iova, 'iova'), size: u64(r.size, 'size'), read: bool(r.read, 'read', true), write: bool(r.write, 'write', true) };
    case 'unmap':
      return { op, iova: u64(r.iova, 'iova'), size: u64(r.size, 'size') };
    case 'pin':
      return { op, iova: u64(r.iova, 'iova'), npage: int(r.npage, 'npage', 1, 512), write: bool(r.write, 'write', true), ...optDevice(r) };
    case 'unpin':
      return { op, iova: u64(r.iova, 'iova'), npage: int(r.npage, 'npage', 1, 512), ...optDevice(r) };
    case 'write':
      return {
        op,
        iova: u64(r.iova, 'iova'),
        length: int(r.length, 'length', 1, 64 << 20),
        value: r.value === undefined ? 0xa5 : int(r.value, 'value', 0, 255),
        ...optDevice(r),
      };
    case 'start':
    case 'stop':
      return { op };
    case 'read': {
      const ev: TraceEvent = { op, iova: u64(r.iova, 'iova'), size: u64(r.size, 'size'), clear: bool(r.clear, 'clear', true) };
      if (r.pagesize !== undefined) {
        const p = u64(r.pagesize, 'pagesize');
        if (p < PAGE_SIZE || (p & (p - 1n)) !== 0n) throw new Error(`"pagesize" must be a power of two of at least 4096, got ${p}`);
        ev.pageSize = p;
      }
      if (r.label !== undefined) ev.label = str(r.label, 'label');
      if (r.cpu !== undefined) ev.cpu = bool(r.cpu, 'cpu', false);
      return ev;
    }
    case 'cpu-dirty':
      return { op, runs: pageRuns(r.runs) };
  }
}

/** Most pages a CPU run may name: page numbers below 2^52 (IOVA below 2^64). */
const MAX_PAGE = 2 ** 52;

/** `[[first page, pages], ...]`: safe integers, each run at least one page, ascending, apart. */
function pageRuns(v: unknown): [number, number][] {
  if (!Array.isArray(v)) throw new Error(`"runs" must be an array of [first page, pages] pairs, got ${JSON.stringify(v)}`);
  const out: [number, number][] = [];
  let end = -1;
  for (const p of v) {
    if (!Array.isArray(p) || p.length !== 2 || !p.every((n) => Number.isSafeInteger(n) && n >= 0)) {
      throw new Error(`"runs" must hold [first page, pages] pairs of non-negative integers, got ${JSON.stringify(p)}`);
    }
    const [first, n] = p as [number, number];
    if (n < 1 || first + n > MAX_PAGE) throw new Error(`"runs": run ${JSON.stringify(p)} must have at least one page and end below page 2^52`);
    if (first <= end) throw new Error(`"runs" must be ascending and apart: ${JSON.stringify(p)} after a run ending at page ${end}`);
    end = first + n;
    out.push([first, n]);
  }
  return out;
}

const hex = (v: bigint) => `0x${v.toString(16)}`;

/**
 * One event as a trace line (without the newline), the form parseTraceLine reads back: addresses
 * as "0x..." strings, defaults left out.
 */
export function formatTraceEvent(ev: TraceEvent): string {
  switch (ev.op) {
    case 'device':
      return JSON.stringify({ op: ev.op, name: ev.name, kind: ev.kind, pins: ev.pins });
    case 'map':
      return JSON.stringify({ op: ev.op, iova: hex(ev.iova), size: hex(ev.size), ...(ev.read ? {} : { read: false }), ...(ev.write ? {} : { write: false }) });
    case 'unmap':
      return JSON.stringify({ op: ev.op, iova: hex(ev.iova), size: hex(ev.size) });
    case 'pin':
      return JSON.stringify({ op: ev.op, iova: hex(ev.iova), npage: ev.npage, ...(ev.write ? {} : { write: false }), ...dev(ev.device) });
    case 'unpin':
      return JSON.stringify({ op: ev.op, iova: hex(ev.iova), npage: ev.npage, ...dev(ev.device) });
    case 'write':
      return JSON.stringify({ op: ev.op, iova: hex(ev.iova), length: ev.length, ...(ev.value === 0xa5 ? {} : { value: ev.value }), ...dev(ev.device) });
    case 'start':
    case 'stop':
      return JSON.stringify({ op: ev.op });
    case 'cpu-dirty':
      return JSON.stringify({ op: ev.op, runs: ev.runs });
    case 'read':
      return JSON.stringify({
        op: ev.op, iova: hex(ev.iova), size: hex(ev.size), ...(ev.clear ? {} : { clear: false }),
        ...(ev.pageSize ? { pagesize: hex(ev.pageSize) } : {}), ...(ev.label ? { label: ev.label } : {}), ...(ev.cpu ? { cpu: true } : {}),
      });
  }
}

function dev(name: string | undefined): { device?: string } {
  return name === undefined ? {} : { device: name };
}

/** Splits a trace into numbered lines (1-based), for parsing one at a time. */
export function* traceLines(text: string): Generator<[number, string]> {
  const lines = text.split(/\r?\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  for (let i = 0; i < lines.length; i++) yield [i + 1, lines[i]];
}
