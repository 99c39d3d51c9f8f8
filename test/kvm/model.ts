// A plain-TS model of docs/conformance.md §19.3–§19.7, written from the rules and nothing else:
// explicit per-page protection in both modes, bitmaps as sets, rings as arrays of entries. The
// random operation test runs the same calls on it and on the engine and compares every result.
const PAGE = 4096n;
const LOG = 1;
const RO = 2;
const E = { EINVAL: 22, EEXIST: 17, ENOENT: 2, EFAULT: 14, ENXIO: 6, ENOSPC: 28, E2BIG: 7 };

export interface MSlot {
  num: number;
  as: number;
  flags: number;
  base: bigint;
  npages: number;
  uaddr: bigint;
  bitmap: Set<number> | null;
  /** Pages not protected. */
  writable: Set<number>;
  counts: Map<number, number>;
}

export interface MEntry {
  flags: number;
  slot: number;
  offset: bigint;
}

/** The model of one VM, its vCPU 0 and its owner process's guest memory. */
export class KvmModel {
  readonly maxSlots: number;
  slots = new Map<number, MSlot>();
  manual = 0;
  ringSize = 0;
  ring: MEntry[] = [];
  dirty = 0;
  reset = 0;
  nodes = 0;
  /** Notifications seen by the registered node(s): `w gpa bytes` and `r gfn n`. */
  log: string[] = [];
  /** Guest bytes written, by host page number. */
  mem = new Map<number, Uint8Array>();
  /** Host ranges [start, end) that are mapped. */
  mapped: [bigint, bigint][] = [];

  constructor(maxSlots = 32764) {
    this.maxSlots = maxSlots;
  }

  get entries(): number {
    return this.ringSize / 16;
  }

  get used(): number {
    return this.dirty - this.reset;
  }

  get softFull(): boolean {
    return this.ringSize > 0 && this.used >= this.entries - 64;
  }

  enableRing(size: number): number {
    if (size === 0 || (size & (size - 1)) !== 0 || size < 4096) return -E.EINVAL;
    if (size > 1048576) return -E.E2BIG;
    if (this.ringSize) return -E.EINVAL;
    for (const s of this.slots.values()) if (s.flags & LOG) return -E.EINVAL;
    this.ringSize = size;
    this.ring = Array.from({ length: size / 16 }, () => ({ flags: 0, slot: 0, offset: 0n }));
    return 0;
  }

  private newBitmap(s: MSlot): void {
    s.bitmap = new Set();
    if (this.manual & 2) for (let i = 0; i < s.npages; i++) s.bitmap.add(i);
  }

  private overlaps(as: number, base: bigint, n: number, self?: MSlot): boolean {
    for (const s of this.slots.values()) {
      if (s === self || s.as !== as) continue;
      if (base < s.base + BigInt(s.npages) && s.base < base + BigInt(n)) return true;
    }
    return false;
  }

  rgn(slot: number, flags: number, gpa: bigint, size: bigint, uaddr: bigint): number {
    const id = slot & 0xffff;
    const as = slot >>> 16;
    if (flags & ~3) return -E.EINVAL;
    if (id >= this.maxSlots) return -E.EINVAL;
    if (size % PAGE || gpa % PAGE || uaddr % PAGE || uaddr + size > 0x7ffffffff000n) return -E.EINVAL;
    if (as >= 2) return -E.EINVAL;
    if (gpa + size >= 1n << 64n) return -E.EINVAL;
    if (size / PAGE > 0x7fffffffn) return -E.EINVAL;
    const n = Number(size / PAGE);
    const old = this.slots.get(slot);
    if (size === 0n) {
      if (!old) return -E.EINVAL;
      this.slots.delete(slot);
      if (this.nodes) this.log.push(`r ${old.base} ${old.npages}`);
      return 0;
    }
    const base = gpa / PAGE;
    const bitmapMode = this.ringSize === 0;
    if (!old) {
      if (this.overlaps(as, base, n)) return -E.EEXIST;
      if (base + BigInt(n) - 1n > (1n << 40n) - 1n) return -E.EINVAL;
      const s: MSlot = { num: slot, as, flags, base, npages: n, uaddr, bitmap: null, writable: new Set(), counts: new Map() };
      if (flags & LOG && bitmapMode) this.newBitmap(s);
      this.slots.set(slot, s);
      return 0;
    }
    if (uaddr !== old.uaddr || n !== old.npages || (flags ^ old.flags) & RO) return -E.EINVAL;
    if (base !== old.base) {
      if (this.overlaps(as, base, n, old)) return -E.EEXIST;
      if (this.nodes) return -E.EINVAL;
      if (base + BigInt(n) - 1n > (1n << 40n) - 1n) return -E.EINVAL;
      old.base = base;
      old.writable.clear();
      old.counts.clear();
      if (!(flags & LOG)) old.bitmap = null;
      else if (!old.bitmap && bitmapMode) this.newBitmap(old);
      old.flags = flags;
      return 0;
    }
    if (flags === old.flags) return 0;
    if (flags & LOG && !(old.flags & LOG)) {
      let gotInitial = false;
      if (bitmapMode) {
        this.newBitmap(old);
        gotInitial = (this.manual & 2) !== 0;
      }
      if (!gotInitial) old.writable.clear();
    } else if (!(flags & LOG) && old.flags & LOG) {
      old.bitmap = null;
    }
    old.flags = flags;
    return 0;
  }

  slotAt(as: number, gfn: bigint): MSlot | undefined {
    for (const s of this.slots.values()) if (s.as === as && gfn >= s.base && gfn < s.base + BigInt(s.npages)) return s;
    return undefined;
  }

  private isMapped(a: bigint, n: bigint): boolean {
    return this.mapped.some(([s, e]) => a >= s && a + n <= e);
  }

  private check(gpa: bigint, len: number, as: number, write: boolean): number {
    if (len < 1 || gpa + BigInt(len) > 1n << 64n || (as !== 0 && as !== 1)) return -E.EINVAL;
    for (let p = gpa / PAGE; p <= (gpa + BigInt(len) - 1n) / PAGE; p++) {
      const s = this.slotAt(as, p);
      if (!s || (write && s.flags & RO)) return -E.EFAULT;
      const a = p * PAGE > gpa ? p * PAGE : gpa;
      const b = (p + 1n) * PAGE < gpa + BigInt(len) ? (p + 1n) * PAGE : gpa + BigInt(len);
      if (!this.isMapped(this.hva(s, a), b - a)) return -E.EFAULT;
    }
    return 0;
  }

  hva(s: MSlot, gpa: bigint): bigint {
    return s.uaddr + (gpa - s.base * PAGE);
  }

  private record(s: MSlot, i: number): void {
    if (!(s.flags & LOG)) return;
    if (this.ringSize) {
      const e = this.ring[this.dirty % this.entries];
      e.slot = s.num;
      e.offset = BigInt(i);
      e.flags = 1;
      this.dirty++;
    } else {
      s.bitmap!.add(i);
    }
  }

  /** The pieces of [gpa, gpa + len). */
  private *pieces(gpa: bigint, len: number): Generator<[bigint, number, number]> {
    let done = 0;
    while (done < len) {
      const a = gpa + BigInt(done);
      const n = Math.min(len - done, Number(PAGE - (a % PAGE)));
      yield [a, done, n];
      done += n;
    }
  }

  write(gpa: bigint, data: Uint8Array, as = 0): number {
    const c = this.check(gpa, data.length, as, true);
    if (c) return c;
    let done = 0;
    for (const [a, at, n] of this.pieces(gpa, data.length)) {
      if (this.softFull) break;
      const s = this.slotAt(as, a / PAGE)!;
      const i = Number(a / PAGE - s.base);
      this.store(this.hva(s, a), data.subarray(at, at + n));
      if ((s.counts.get(i) ?? 0) > 0) {
        this.record(s, i);
        if (this.nodes) this.log.push(`w ${a} ${n}`);
      } else if (!s.writable.has(i)) {
        this.record(s, i);
        s.writable.add(i);
      }
      done += n;
    }
    return done;
  }

  writeGuest(gpa: bigint, data: Uint8Array, as = 0): number {
    const c = this.check(gpa, data.length, as, true);
    if (c) return c;
    if (this.ringSize) {
      let need = 0;
      for (const [a] of this.pieces(gpa, data.length)) if (this.slotAt(as, a / PAGE)!.flags & LOG) need++;
      if (this.entries - this.used < need) return -E.ENOSPC;
    }
    for (const [a, at, n] of this.pieces(gpa, data.length)) {
      const s = this.slotAt(as, a / PAGE)!;
      this.store(this.hva(s, a), data.subarray(at, at + n));
      this.record(s, Number(a / PAGE - s.base));
    }
    return 0;
  }

  read(gpa: bigint, len: number, as = 0): Uint8Array | number {
    const c = this.check(gpa, len, as, false);
    if (c) return c;
    const out = new Uint8Array(len);
    for (const [a, at, n] of this.pieces(gpa, len)) {
      const h = this.hva(this.slotAt(as, a / PAGE)!, a);
      const page = this.mem.get(Number(h / PAGE));
      if (page) out.set(page.subarray(Number(h % PAGE), Number(h % PAGE) + n), at);
    }
    return out;
  }

  /** Bytes into the model's memory at host address h (within one page). */
  private store(h: bigint, bytes: Uint8Array): void {
    const key = Number(h / PAGE);
    let page = this.mem.get(key);
    if (!page) this.mem.set(key, (page = new Uint8Array(4096)));
    page.set(bytes, Number(h % PAGE));
  }

  private logSlot(num: number): MSlot | number {
    if (this.ringSize) return -E.ENXIO;
    if (num >>> 16 >= 2 || (num & 0xffff) >= this.maxSlots) return -E.EINVAL;
    return 0;
  }

  /** GET: the set bits (page indices), or -errno. */
  get(num: number): number[] | number {
    const e = this.logSlot(num);
    if (typeof e === 'number' && e) return e;
    const s = this.slots.get(num);
    if (!s || !s.bitmap) return -E.ENOENT;
    const bits = [...s.bitmap].sort((a, b) => a - b);
    if (!(this.manual & 1)) {
      s.bitmap.clear();
      for (const i of bits) s.writable.delete(i);
    }
    return bits;
  }

  clear(num: number, first: bigint, count: number, bits: number[]): number {
    const e = this.logSlot(num);
    if (typeof e === 'number' && e) return e;
    if (first & 63n) return -E.EINVAL;
    const s = this.slots.get(num);
    if (!s || !s.bitmap) return -E.ENOENT;
    const n = BigInt(s.npages);
    if (first > n || BigInt(count) > n - first || (BigInt(count) < n - first && count & 63)) return -E.EINVAL;
    const f = Number(first);
    const lim = Math.ceil(count / 64) * 64;
    for (const b of bits) {
      if (b >= lim) continue;
      if (s.bitmap.delete(f + b)) s.writable.delete(f + b);
    }
    return 0;
  }

  /** The user's harvest: entries from `fetch` while flags = 1 get flags 2; the new fetch index. */
  harvest(fetch: number): [number, MEntry[]] {
    const got: MEntry[] = [];
    while (fetch !== this.dirty) {
      const e = this.ring[fetch % this.entries];
      if (e.flags !== 1) break;
      got.push({ ...e });
      e.flags = 2;
      fetch++;
    }
    return [fetch, got];
  }

  resetRings(): number {
    if (!this.ringSize) return -E.EINVAL;
    let n = 0;
    while (this.reset !== this.dirty) {
      const e = this.ring[this.reset % this.entries];
      if (!(e.flags & 2)) break;
      e.flags = 0;
      this.reset++;
      n++;
      const s = this.slots.get(e.slot);
      if (s && e.slot >>> 16 < 2 && e.offset < BigInt(s.npages)) s.writable.delete(Number(e.offset));
    }
    return n;
  }

  trackAdd(gfn: bigint, delta: 1 | -1): number {
    const s = this.slotAt(0, gfn);
    if (!s) return -E.EINVAL;
    const i = Number(gfn - s.base);
    const c = s.counts.get(i) ?? 0;
    if (delta > 0) {
      s.counts.set(i, Math.min(65535, c + 1));
      s.writable.delete(i);
    } else if (c > 0) s.counts.set(i, c - 1);
    return 0;
  }

  trackCount(gfn: bigint): number {
    const s = this.slotAt(0, gfn);
    return s ? s.counts.get(Number(gfn - s.base)) ?? 0 : -E.EINVAL;
  }
}
