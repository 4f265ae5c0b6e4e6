/**
 * Health: is this pod working well, as opposed to merely alive or ready?
 *
 * Implements the design's degradation rules for the extension server: the pod is `degraded` when more
 * than 10 % of Envoy Gateway hook calls failed over the last five minutes, or when the config cache or
 * resource index has not been refreshed for ten minutes (a stuck informer serves stale routes without
 * ever failing a call). `/health` serves `evaluate()`; `/metrics` in JSON serves `snapshot()`.
 *
 * Degradation is for humans and alerts, not for probes: restarting a pod whose upstream is failing does
 * not help, which is why liveness (`/healthz`) and readiness (`/readyz`) do not consult it.
 *
 * @module
 */

import { OperatorError } from '../errors.ts';

export interface HealthOptions {
  /** Milliseconds since the epoch; injected so tests control time. Default `Date.now`. */
  clock?: () => number;
  /** How far back the failure rate looks. Default 5 minutes (the design's window). */
  windowMs?: number;
  /**
   * Number of buckets the window is split into. Memory is fixed at this many counters regardless of call
   * volume; a call stays in the window for between `windowMs - windowMs / buckets` and `windowMs`.
   * Default 30 (10-second buckets for a 5-minute window).
   */
  buckets?: number;
  /** Failure fraction that must be *exceeded* to degrade; exactly at the threshold is healthy. Default 0.1. */
  failureRateThreshold?: number;
  /** Age beyond which a tracked cache or index degrades health. Default 10 minutes. */
  maxStalenessMs?: number;
  /**
   * Calls needed in the window before the failure rate is judged. Default 1, the design's rule taken
   * literally; raise it so that one failure on an idle pod does not flip it to degraded.
   */
  minCalls?: number;
}

/** One named rule and its verdict, shown by `/health` so a 503 names what failed. */
export interface HealthCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface HealthReport {
  status: 'healthy' | 'degraded';
  checks: HealthCheck[];
}

/** Per-hook lifetime statistics in the JSON metrics document. */
export interface HookStats {
  calls: number;
  successes: number;
  failures: number;
  averageDurationMs: number;
}

/** The design's JSON metrics document (`ExtensionServerMetrics` plus cache ages), served by `/metrics.json`. */
export interface HealthSnapshot {
  hooks: {
    totalCalls: number;
    successfulCalls: number;
    failedCalls: number;
    lastCallDurationMs: number;
    averageCallDurationMs: number;
    /** The calls the failure-rate check currently sees, so the JSON explains a `degraded` verdict. */
    window: { seconds: number; calls: number; failures: number };
    byHook: Record<string, HookStats>;
  };
  /** `lastUpdated` is null until the first `markFresh`; `ageSeconds` then counts from `track`. */
  caches: Record<string, { lastUpdated: string | null; ageSeconds: number }>;
  uptimeSeconds: number;
}

export interface Health {
  /** Records one hook call for both the failure-rate window and the lifetime statistics. */
  recordHookCall(hook: string, ok: boolean, durationMs: number): void;
  /**
   * Registers a cache or index whose age is checked. Until its first `markFresh` its age counts from
   * registration, so a cache that never fills degrades after `maxStalenessMs` instead of at once (start-up
   * is readiness's concern) or never (which would hide a dead informer).
   */
  track(name: string): void;
  /** Notes that `name` was just refreshed; tracks it implicitly so a missed `track` cannot hide it. */
  markFresh(name: string): void;
  evaluate(): HealthReport;
  snapshot(): HealthSnapshot;
}

/** Name of the check covering the hook failure rate. */
export const HOOK_FAILURE_RATE_CHECK = 'hook-failure-rate';

const MINUTE = 60_000;

interface MutableHookStats {
  calls: number;
  successes: number;
  failures: number;
  totalDurationMs: number;
}

interface Tracked {
  registeredAt: number;
  lastUpdated: number | undefined;
}

/**
 * Creates a health tracker.
 *
 * @throws {OperatorError} code `Invalid` when an option is out of range.
 * @example
 * const health = createHealth();
 * health.track('resource-index');
 * index.onUpdate(() => health.markFresh('resource-index'));
 */
export function createHealth(options: HealthOptions = {}): Health {
  const {
    clock = Date.now,
    windowMs = 5 * MINUTE,
    buckets = 30,
    failureRateThreshold = 0.1,
    maxStalenessMs = 10 * MINUTE,
    minCalls = 1,
  } = options;
  requireOption('windowMs', windowMs, Number.isFinite(windowMs) && windowMs > 0);
  requireOption('buckets', buckets, Number.isInteger(buckets) && buckets >= 1);
  requireOption(
    'failureRateThreshold',
    failureRateThreshold,
    failureRateThreshold >= 0 && failureRateThreshold <= 1,
  );
  requireOption('maxStalenessMs', maxStalenessMs, Number.isFinite(maxStalenessMs) && maxStalenessMs > 0);
  requireOption('minCalls', minCalls, Number.isInteger(minCalls) && minCalls >= 1);

  const startedAt = clock();
  const bucketMs = windowMs / buckets;
  // The ring: slot i holds the counts for bucket number `epochs[i]` (time / bucketMs). A slot whose
  // epoch has fallen out of the window is stale and is reset when reused.
  const epochs = new Float64Array(buckets).fill(Number.NEGATIVE_INFINITY);
  const calls = new Float64Array(buckets);
  const failures = new Float64Array(buckets);

  const byHook = new Map<string, MutableHookStats>();
  const totals: MutableHookStats = { calls: 0, successes: 0, failures: 0, totalDurationMs: 0 };
  let lastCallDurationMs = 0;
  const tracked = new Map<string, Tracked>();

  const epochAt = (time: number): number => Math.floor(time / bucketMs);

  function windowCounts(now: number): { calls: number; failures: number } {
    const current = epochAt(now);
    let windowCalls = 0;
    let windowFailures = 0;
    for (let i = 0; i < buckets; i++) {
      const epoch = epochs[i]!;
      // Epochs ahead of `current` only exist if the clock stepped back; they are not "the last window".
      if (epoch > current - buckets && epoch <= current) {
        windowCalls += calls[i]!;
        windowFailures += failures[i]!;
      }
    }
    return { calls: windowCalls, failures: windowFailures };
  }

  function ageMs(entry: Tracked, now: number): number {
    return Math.max(0, now - (entry.lastUpdated ?? entry.registeredAt));
  }

  return {
    recordHookCall(hook, ok, durationMs) {
      const duration = Number.isFinite(durationMs) && durationMs > 0 ? durationMs : 0;
      const epoch = epochAt(clock());
      const slot = ((epoch % buckets) + buckets) % buckets;
      if (epochs[slot] !== epoch) {
        epochs[slot] = epoch;
        calls[slot] = 0;
        failures[slot] = 0;
      }
      calls[slot]! += 1;
      if (!ok) failures[slot]! += 1;

      let stats = byHook.get(hook);
      if (stats === undefined) {
        stats = { calls: 0, successes: 0, failures: 0, totalDurationMs: 0 };
        byHook.set(hook, stats);
      }
      for (const target of [stats, totals]) {
        target.calls += 1;
        if (ok) target.successes += 1;
        else target.failures += 1;
        target.totalDurationMs += duration;
      }
      lastCallDurationMs = duration;
    },

    track(name) {
      if (!tracked.has(name)) tracked.set(name, { registeredAt: clock(), lastUpdated: undefined });
    },

    markFresh(name) {
      const now = clock();
      const entry = tracked.get(name);
      if (entry === undefined) tracked.set(name, { registeredAt: now, lastUpdated: now });
      else entry.lastUpdated = now;
    },

    evaluate() {
      const now = clock();
      const checks: HealthCheck[] = [];

      const recent = windowCounts(now);
      const rate = recent.calls === 0 ? 0 : recent.failures / recent.calls;
      // Compare counts rather than the float rate so that exactly-at-threshold (1 of 10) stays healthy.
      const exceeded =
        recent.calls >= minCalls &&
        recent.failures - failureRateThreshold * recent.calls > 1e-9 * recent.calls;
      const base = `${recent.failures}/${recent.calls} hook calls failed (${percent(rate)}) in the last ${duration(windowMs)}`;
      checks.push({
        name: HOOK_FAILURE_RATE_CHECK,
        ok: !exceeded,
        detail:
          recent.calls < minCalls && recent.calls > 0
            ? `${base}; fewer than ${minCalls} calls, not judged`
            : `${base}; threshold ${percent(failureRateThreshold)}`,
      });

      for (const [name, entry] of tracked) {
        const age = ageMs(entry, now);
        const ok = age <= maxStalenessMs;
        const what =
          entry.lastUpdated === undefined
            ? `never updated (tracked for ${duration(age)})`
            : `updated ${duration(age)} ago`;
        checks.push({ name, ok, detail: `${what}; limit ${duration(maxStalenessMs)}` });
      }

      return { status: checks.every((check) => check.ok) ? 'healthy' : 'degraded', checks };
    },

    snapshot() {
      const now = clock();
      const hooks: Record<string, HookStats> = {};
      for (const [hook, stats] of byHook) {
        hooks[hook] = {
          calls: stats.calls,
          successes: stats.successes,
          failures: stats.failures,
          averageDurationMs: average(stats),
        };
      }
      const caches: HealthSnapshot['caches'] = {};
      for (const [name, entry] of tracked) {
        caches[name] = {
          lastUpdated: entry.lastUpdated === undefined ? null : new Date(entry.lastUpdated).toISOString(),
          ageSeconds: ageMs(entry, now) / 1000,
        };
      }
      return {
        hooks: {
          totalCalls: totals.calls,
          successfulCalls: totals.successes,
          failedCalls: totals.failures,
          lastCallDurationMs,
          averageCallDurationMs: average(totals),
          window: { seconds: windowMs / 1000, ...windowCounts(now) },
          byHook: hooks,
        },
        caches,
        uptimeSeconds: Math.max(0, now - startedAt) / 1000,
      };
    },
  };
}

function requireOption(name: string, value: number, valid: boolean): void {
  if (!valid) {
    throw new OperatorError('Invalid', `health option ${name} is out of range: ${value}`, { field: name });
  }
}

function average(stats: MutableHookStats): number {
  return stats.calls === 0 ? 0 : stats.totalDurationMs / stats.calls;
}

function percent(fraction: number): string {
  return `${Number((fraction * 100).toFixed(1))}%`;
}

/** Human-readable duration for check details: `42s`, `5m`, `10m30s`. */
function duration(ms: number): string {
  const totalSeconds = Math.round(ms / 1000);
  const minutes = Math.floor(totalSeconds / 60);
  const seconds = totalSeconds % 60;
  if (minutes === 0) return `${seconds}s`;
  return seconds === 0 ? `${minutes}m` : `${minutes}m${seconds}s`;
}
