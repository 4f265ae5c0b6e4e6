/**
 * A steady, bounded, open-loop request stream: one GET every `1000 / rate` ms whatever the answers, each
 * with a deadline, so a stalled backend shows as failed requests at the rate they were sent (a closed
 * loop would send fewer while stalled and hide them). Each sample records who answered (the echo
 * server's `name`) and when, for the failover and recovery flows to read what moved when.
 *
 * @module
 */

export interface Sample {
  /** performance.now() when sent and when answered or failed. */
  sentAt: number;
  doneAt: number;
  /** HTTP status; 0 for no answer (connection error or the deadline). */
  status: number;
  /** The echo server's `name` on a 200, else undefined. */
  answeredBy: string | undefined;
}

export interface RequestStream {
  readonly samples: readonly Sample[];
  /** Samples sent at or after `from` (and before `to`). */
  between(from: number, to?: number): Sample[];
  /** Stops sending and resolves when every request sent has finished. */
  stop(): Promise<Sample[]>;
}

export function startRequestStream(options: {
  url: () => string;
  headers: Record<string, string>;
  /** Requests per second. */
  rate: number;
  /** Per-request deadline. */
  timeoutMs: number;
}): RequestStream {
  const samples: Sample[] = [];
  const inFlight = new Set<Promise<void>>();
  const period = 1000 / options.rate;
  let running = true;
  const one = async () => {
    const sentAt = performance.now();
    let status = 0;
    let answeredBy: string | undefined;
    try {
      const r = await fetch(options.url(), {
        headers: options.headers,
        signal: AbortSignal.timeout(options.timeoutMs),
      });
      const body = await r.text();
      status = r.status;
      if (status === 200) answeredBy = (JSON.parse(body) as { name?: string }).name;
    } catch {
      status = 0;
    }
    samples.push({ sentAt, doneAt: performance.now(), status, answeredBy });
  };
  const loop = (async () => {
    const start = performance.now();
    for (let i = 0; running; i++) {
      // Scheduled against the start, so a slow tick does not lower the rate.
      const wait = start + i * period - performance.now();
      if (wait > 0) await Bun.sleep(wait);
      if (!running) break;
      const p = one();
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    }
  })();
  const sorted = () => samples.toSorted((a, b) => a.sentAt - b.sentAt);
  return {
    samples,
    between: (from, to = Number.POSITIVE_INFINITY) =>
      sorted().filter((s) => s.sentAt >= from && s.sentAt < to),
    async stop() {
      running = false;
      await loop;
      await Promise.all(inFlight);
      return sorted();
    },
  };
}

export interface Transition {
  /** Requests sent in the window that got no 200. */
  failed: number;
  /** Requests sent in the window. */
  sent: number;
  /**
   * From the event to the first request after which every request answered 200 from `to`: the time
   * traffic took to move (undefined when it never settled).
   */
  settledMs: number | undefined;
  /** From the event to the first request `to` answered. */
  firstMs: number | undefined;
  /** From the first failed request to the last one (0 when none failed). */
  gapMs: number;
}

/**
 * What happened to the stream after an event at `at`, over the samples sent in [at − lookbackMs, end)
 * (the look-back counts requests in flight when the event happened): how many failed, and when every
 * answer came from `to`.
 */
export function transition(
  samples: readonly Sample[],
  at: number,
  end: number,
  to: string,
  lookbackMs = 0,
): Transition {
  const window = samples
    .filter((s) => s.sentAt >= at - lookbackMs && s.sentAt < end)
    .toSorted((a, b) => a.sentAt - b.sentAt);
  const ok = (s: Sample) => s.status === 200 && s.answeredBy === to;
  let settledAt: number | undefined;
  for (let i = window.length - 1; i >= 0; i--) {
    if (!ok(window[i]!)) break;
    settledAt = window[i]!.sentAt;
  }
  const first = window.find((s) => s.sentAt >= at && ok(s));
  const failures = window.filter((s) => s.status !== 200);
  return {
    failed: failures.length,
    sent: window.length,
    settledMs: settledAt === undefined ? undefined : Math.max(0, settledAt - at),
    firstMs: first === undefined ? undefined : first.sentAt - at,
    gapMs: failures.length === 0 ? 0 : failures.at(-1)!.sentAt - failures[0]!.sentAt,
  };
}
