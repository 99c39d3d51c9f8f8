import { describe, expect, it } from 'vitest';
import { decide, dirtyRate, expectedDowntime, roundDuration } from '../src/sim/convergence.js';

const MiB = 2 ** 20;

describe('convergence arithmetic', () => {
  const rule = { bandwidth: 1000 * MiB, downtimeLimit: 0.3, maxRounds: 5 };

  it('times rounds and downtime at the link bandwidth', () => {
    expect(roundDuration(500 * MiB, 1000 * MiB)).toBe(0.5);
    expect(expectedDowntime(250 * MiB, 1000 * MiB)).toBe(0.25);
    expect(dirtyRate(300 * MiB, 2)).toBe(150 * MiB);
    expect(dirtyRate(300 * MiB, 0)).toBe(0);
  });

  it('switches over at exactly the limit, not one page above it', () => {
    expect(decide(rule, 1, 300 * MiB)).toBe('switch-over');
    expect(decide(rule, 1, 300 * MiB + 4096)).toBe('continue');
  });

  it('gives up after maxRounds rounds unless the last harvest fits', () => {
    expect(decide(rule, 4, 301 * MiB)).toBe('continue');
    expect(decide(rule, 5, 301 * MiB)).toBe('give-up');
    expect(decide(rule, 5, 299 * MiB)).toBe('switch-over');
  });
});
