/**
 * Bounded polling for integration tests: wait for a state, never for a duration. A test that needs
 * "eventually" fails with what it was waiting for and the last value seen, not with a bare timeout.
 */

export interface EventuallyOptions {
  /** Give up after this long; default 30 s. */
  timeoutMs?: number;
  /** Pause between probes; default 100 ms. */
  intervalMs?: number;
}

/** Probes until `accept` holds for the probed value, and returns that value. */
export async function eventually<T>(
  probe: () => T | Promise<T>,
  accept: (value: T) => boolean,
  { timeoutMs = 30_000, intervalMs = 100 }: EventuallyOptions = {},
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await probe();
    if (accept(last)) return last;
    if (performance.now() > deadline) {
      throw new Error(`condition not met within ${timeoutMs} ms; last value: ${JSON.stringify(last)}`);
    }
    await Bun.sleep(intervalMs);
  }
}

/** Waits until `check()` is true; `what` names the awaited state in the failure. */
export async function waitUntil(check: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}
