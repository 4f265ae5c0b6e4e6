import { describe, expect, test } from 'bun:test';
import {
  DEFAULT_INFLIGHT_BYTES,
  http2SessionOptions,
  memoryBound,
  reservationFor,
  resolveServerLimits,
} from './limits.ts';

const MiB = 1024 * 1024;

describe('server limits', () => {
  test("Bun's session memory cap is above anything the budget admits", () => {
    // The default budget, a small message limit: the budget dominates.
    const small = resolveServerLimits({ maxMessageBytes: 4 * MiB });
    expect(small.inflightBytes).toBe(DEFAULT_INFLIGHT_BYTES);
    expect(small.sessionMemoryBytes).toBeGreaterThan(small.inflightBytes + 100 * small.smallCallBytes);
    // The 256 MiB default message limit: one such call alone must still fit.
    const large = resolveServerLimits({ maxMessageBytes: 256 * MiB });
    expect(large.sessionMemoryBytes).toBeGreaterThan(reservationFor(256 * MiB));
    expect(http2SessionOptions(large).maxSessionMemory).toBe(Math.ceil(large.sessionMemoryBytes / 1e6));
  });

  test('the HTTP/2 settings Bun honours: stream limit and the default stream window', () => {
    expect(http2SessionOptions(resolveServerLimits({ maxMessageBytes: MiB })).settings).toEqual({
      maxConcurrentStreams: 100,
      initialWindowSize: 65_535,
    });
  });

  test('the documented memory bound: max(budget, 2 × message limit) + connections × 100 × 192 KiB', () => {
    const limits = resolveServerLimits({ maxMessageBytes: 8 * MiB, inflightBytes: 32 * MiB });
    const perConnection = 100 * (65_535 + 2 * 64 * 1024);
    expect(memoryBound(limits, 0)).toBe(32 * MiB);
    expect(memoryBound(limits, 3)).toBe(32 * MiB + 3 * perConnection);
    const big = resolveServerLimits({ maxMessageBytes: 100 * MiB, inflightBytes: 32 * MiB });
    expect(memoryBound(big, 0)).toBe(reservationFor(100 * MiB));
  });

  test('a budget that is not a positive whole number is refused', () => {
    expect(() => resolveServerLimits({ maxMessageBytes: MiB, inflightBytes: 0 })).toThrow('inflightBytes');
    expect(() => resolveServerLimits({ maxMessageBytes: MiB, inflightBytes: 1.5 })).toThrow('inflightBytes');
  });
});
