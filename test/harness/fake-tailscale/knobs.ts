/**
 * Fault injection for the fake control plane, driven from test code rather than over HTTP so a test
 * can script "three 429s, then success" without a side channel the real API does not have.
 *
 * `endpoint` values are templated paths without the `/api/v2` prefix, e.g. `/tailnet/{tailnet}/devices`
 * or `/device/{id}`; see `endpointOf`.
 *
 * @module
 */

/** OAuth scopes the real API enforces per endpoint family. */
export type FakeScope = 'devices:core' | 'auth_keys' | 'services';

export interface RequestMatch {
  method?: string;
  endpoint?: string;
}

export interface FaultSpec extends RequestMatch {
  status: number;
  /** How many matching requests fail before the rule is used up. Default 1. */
  times?: number;
  /** `Retry-After`: seconds, a Date (sent as an HTTP date) or a raw header value. */
  retryAfter?: number | Date | string;
  /** The `{"message"}` of the error body. Default: a generic text for the status. */
  message?: string;
}

interface Fault extends FaultSpec {
  remaining: number;
}

interface Latency extends RequestMatch {
  ms: number;
}

export interface FakeKnobs {
  /** Fails the next `times` matching requests with `status`. Rules are consumed in the order added. */
  fail(spec: FaultSpec): void;
  /** `times` × 429, optionally with a Retry-After. */
  rateLimit(times: number, retryAfter?: FaultSpec['retryAfter'], match?: RequestMatch): void;
  /** `times` × `status` (default 500). */
  serverError(times: number, status?: number, match?: RequestMatch): void;
  /** Delays matching requests by `ms` before answering. */
  addLatency(ms: number, match?: RequestMatch): void;
  /** Marks every issued access token expired, so the next API call with one gets 401. */
  expireTokens(): void;
  /** Answers 403 for every endpoint that needs `scope`. */
  denyScope(scope: FakeScope): void;
  allowScope(scope: FakeScope): void;
  /** Lifetime of tokens issued from now on, in seconds. Default 3600, like the real API. */
  tokenTtlSeconds: number;
  /** Clears faults, latency and denied scopes. */
  reset(): void;
}

export interface KnobsInternals extends FakeKnobs {
  takeFault(method: string, endpoint: string): Fault | undefined;
  latencyFor(method: string, endpoint: string): number;
  isDenied(scope: FakeScope): boolean;
}

const matches = (rule: RequestMatch, method: string, endpoint: string) =>
  (rule.method === undefined || rule.method.toUpperCase() === method) &&
  (rule.endpoint === undefined || rule.endpoint === endpoint);

export function createKnobs(onExpireTokens: () => void): KnobsInternals {
  let faults: Fault[] = [];
  let latencies: Latency[] = [];
  const denied = new Set<FakeScope>();
  return {
    tokenTtlSeconds: 3600,
    fail(spec) {
      faults.push({ ...spec, remaining: spec.times ?? 1 });
    },
    rateLimit(times, retryAfter, match = {}) {
      this.fail({ ...match, status: 429, times, ...(retryAfter === undefined ? {} : { retryAfter }) });
    },
    serverError(times, status = 500, match = {}) {
      this.fail({ ...match, status, times });
    },
    addLatency(ms, match = {}) {
      latencies.push({ ...match, ms });
    },
    expireTokens: onExpireTokens,
    denyScope(scope) {
      denied.add(scope);
    },
    allowScope(scope) {
      denied.delete(scope);
    },
    reset() {
      faults = [];
      latencies = [];
      denied.clear();
    },
    takeFault(method, endpoint) {
      const fault = faults.find((f) => f.remaining > 0 && matches(f, method, endpoint));
      if (!fault) return undefined;
      fault.remaining -= 1;
      faults = faults.filter((f) => f.remaining > 0);
      return fault;
    },
    latencyFor(method, endpoint) {
      return latencies.filter((l) => matches(l, method, endpoint)).reduce((sum, l) => sum + l.ms, 0);
    },
    isDenied(scope) {
      return denied.has(scope);
    },
  };
}
