// Parsers of the quantities options take: sizes, rates and times with units, and plain numbers.
// Each returns the value in base units (bytes, bytes/s, seconds) or throws an OptionError that
// names the option and shows what it was given.

/** A bad command line (exit status 2): what was wrong, checked before anything runs. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** A bad option value: the message names the option and says what was expected. */
export class OptionError extends UsageError {
  override name = 'OptionError';
  constructor(readonly option: string, message: string) {
    super(`--${option}: ${message}`);
  }
}

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  k: 1024, kb: 1024, kib: 1024,
  m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3,
  t: 1024 ** 4, tb: 1024 ** 4, tib: 1024 ** 4,
};

const RATE_UNITS: Record<string, number> = {
  'b/s': 1,
  'kib/s': 1024, 'mib/s': 1024 ** 2, 'gib/s': 1024 ** 3,
  'kb/s': 1e3, 'mb/s': 1e6, 'gb/s': 1e9,
  'kbit/s': 1e3 / 8, 'mbit/s': 1e6 / 8, 'gbit/s': 1e9 / 8,
};

const TIME_UNITS: Record<string, number> = { ms: 1e-3, s: 1 };

/** Throws unless `text` is free of a minus sign: every quantity here is positive. */
function positive(option: string, text: string): void {
  if (/^\s*-/.test(text)) throw new OptionError(option, `must be positive, got ${JSON.stringify(text)}`);
}

function split(option: string, text: string, what: string): [number, string] {
  positive(option, text);
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z/]*)\s*$/i.exec(text);
  if (!m) throw new OptionError(option, `expected ${what}, got ${JSON.stringify(text)}`);
  return [Number(m[1]), m[2].toLowerCase()];
}

/** A size: `16GiB`, `512MiB`, `4KiB`, `65536B`; a bare number is MiB. Returns whole bytes. */
export function parseSize(option: string, text: string): number {
  const [n, u] = split(option, text, 'a size like 16GiB or 512MiB');
  const mul = u === '' ? SIZE_UNITS.mib : SIZE_UNITS[u];
  if (mul === undefined) throw new OptionError(option, `unknown size unit ${JSON.stringify(u)} (use B, KiB, MiB, GiB or TiB)`);
  const bytes = n * mul;
  if (!Number.isSafeInteger(bytes)) throw new OptionError(option, `${JSON.stringify(text)} is not a whole number of bytes`);
  return bytes;
}

/** A rate: `10Gbit/s`, `512MiB/s`, `1.5GB/s`; a bare number is MiB/s. Returns bytes/s. */
export function parseRate(option: string, text: string): number {
  const [n, u0] = split(option, text, 'a rate like 512MiB/s or 10Gbit/s');
  const u = u0 === '' ? 'mib/s' : u0.endsWith('/s') ? u0 : `${u0}/s`;
  const mul = RATE_UNITS[u];
  if (mul === undefined) {
    throw new OptionError(option, `unknown rate unit ${JSON.stringify(u0)} (use MiB/s, GiB/s, MB/s, GB/s, Mbit/s or Gbit/s)`);
  }
  return n * mul;
}

/** A duration: `300ms`, `0.3s`; a bare number is milliseconds. Returns seconds. */
export function parseTime(option: string, text: string): number {
  const [n, u] = split(option, text, 'a time like 300ms or 0.5s');
  const mul = u === '' ? TIME_UNITS.ms : TIME_UNITS[u];
  if (mul === undefined) throw new OptionError(option, `unknown time unit ${JSON.stringify(u)} (use ms or s)`);
  return n * mul;
}

/** A whole number in [min, max]. */
export function parseInteger(option: string, text: string, min: number, max: number): number {
  if (!/^\s*-?\d+\s*$/.test(text)) throw new OptionError(option, `expected a whole number, got ${JSON.stringify(text)}`);
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new OptionError(option, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

/** A fraction in [min, 1]: `0.1` or `10%`. */
export function parseFraction(option: string, text: string, min = 0): number {
  positive(option, text);
  const m = /^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$/.exec(text);
  if (!m) throw new OptionError(option, `expected a fraction like 0.1 or 10%, got ${JSON.stringify(text)}`);
  const f = Number(m[1]) / (m[2] ? 100 : 1);
  if (f < min || f > 1 || (min > 0 && f === 0)) throw new OptionError(option, `must be in ${min === 0 ? '[0' : '(0'}, 1], got ${f}`);
  return f;
}

/** One of a fixed set of words. */
export function parseChoice<T extends string>(option: string, text: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(text)) {
    throw new OptionError(option, `must be one of ${choices.join(', ')}, got ${JSON.stringify(text)}`);
  }
  return text as T;
}

/**
 * A comma-separated list of words from `choices`, or `all` for every one: `bitmap,runs-bin`.
 * @returns the set chosen, in the order of `choices`
 */
export function parseChoiceList<T extends string>(option: string, text: string, choices: readonly T[]): Set<T> {
  if (text.trim() === 'all') return new Set(choices);
  const words = text.split(',').map((w) => w.trim());
  for (const w of words) {
    if (!(choices as readonly string[]).includes(w)) {
      throw new OptionError(option, `must be all or a comma-separated list of ${choices.join(', ')}, got ${JSON.stringify(w)}`);
    }
  }
  return new Set(choices.filter((c) => words.includes(c)));
}

/** Formats bytes with a binary unit, e.g. 1.50 GiB. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}
