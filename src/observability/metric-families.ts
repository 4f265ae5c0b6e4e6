/**
 * Metric families shared by every queue and controller on one registry.
 *
 * Several queues (one per controller) label the same family with their `name`, and prom-client throws
 * when a family is registered twice on a registry, so families are looked up before they are created.
 * Gauges whose value is a function of time (longest-running processor, unfinished work) are computed at
 * scrape time from providers, since nothing would otherwise update them while a reconcile hangs.
 *
 * @module
 */

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/**
 * controller-runtime's buckets for queue and work durations (10 ns × 10ⁿ up to 1000 s), so existing
 * dashboards' quantile queries line up.
 */
export const DURATION_BUCKETS = Array.from({ length: 12 }, (_, i) => 1e-8 * 10 ** i);

/** controller-runtime's reconcile-time buckets. */
export const RECONCILE_TIME_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.25, 1.5,
  1.75, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
];

/** What every family here is configured with; the constructors take more (buckets), passed along as given. */
interface FamilyConfig {
  name: string;
  help: string;
  labelNames?: readonly string[];
  buckets?: number[];
}

type Ctor<M> = new (config: FamilyConfig & { registers: Registry[] }) => M;

/** Returns the family already registered under `config.name`, or registers a new one. */
export function family<M extends Counter | Gauge | Histogram>(
  registry: Registry,
  ctor: Ctor<M>,
  config: FamilyConfig,
): M {
  const existing = registry.getSingleMetric(config.name);
  // A name is registered by one family constructor only (prom-client throws on a second).
  if (existing) return existing as M;
  return new ctor({ ...config, registers: [registry] });
}

export { Counter, Gauge, Histogram };

/** A per-registry set of providers feeding a scrape-time gauge; cleared entries report nothing. */
const providerSets = new WeakMap<Registry, Map<string, Set<() => [Record<string, string>, number]>>>();

/**
 * A gauge whose samples come from callbacks at scrape time. Each callback returns its labels and
 * value; `remove()` unregisters it (and drops its series) when its owner shuts down.
 */
export function scrapeGauge(
  registry: Registry,
  config: { name: string; help: string; labelNames: readonly string[] },
  provider: () => [Record<string, string>, number],
): { remove(): void } {
  let byName = providerSets.get(registry);
  if (!byName) {
    byName = new Map();
    providerSets.set(registry, byName);
  }
  let providers = byName.get(config.name);
  if (!providers) {
    const set = new Set<() => [Record<string, string>, number]>();
    providers = set;
    byName.set(config.name, set);
    if (!registry.getSingleMetric(config.name)) {
      new Gauge({
        ...config,
        registers: [registry],
        collect(this: Gauge) {
          this.reset();
          for (const provide of set) {
            const [labels, value] = provide();
            this.set(labels, value);
          }
        },
      });
    }
  }
  const set = providers;
  set.add(provider);
  return { remove: () => set.delete(provider) };
}
