// The simulator's seeded pseudo-random generator: xoshiro128** seeded through splitmix32, so that
// a seed reproduces a run bit for bit on every machine (only 32-bit integer arithmetic).

/** A seeded generator of uniform 32-bit integers and of integers below a bound. */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** Seeds the state from any integer (only its low 53 bits matter). */
  constructor(seed: number) {
    let s = (seed >>> 0) ^ Math.floor(seed / 4294967296);
    const next = (): number => {
      // splitmix32: a well-mixed, never-all-zero expansion of one word into four.
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
  }

  /** The next uniform integer in [0, 2^32). */
  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** A uniform double in [0, 1) with 53 random bits. */
  float(): number {
    return ((this.u32() >>> 5) * 67108864 + (this.u32() >>> 6)) / 9007199254740992;
  }

  /** A uniform integer in [0, n), for 0 < n <= 2^53. */
  below(n: number): number {
    return Math.floor(this.float() * n);
  }

  /**
   * Writes `count` uniform integers in [base, base + n) to `out` starting at `at`. This is the
   * simulated guest choosing which pages it writes, not a pass over the engine's pages.
   */
  fillBelow(out: Uint32Array, at: number, count: number, n: number, base = 0): void {
    if (n <= 0x200000) {
      // n <= 2^21: u32 * n stays below 2^53, so the product is exact and unbiased enough.
      for (let i = 0; i < count; i++) out[at + i] = base + Math.floor((this.u32() * n) / 4294967296);
    } else {
      for (let i = 0; i < count; i++) out[at + i] = base + Math.floor(this.float() * n);
    }
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
