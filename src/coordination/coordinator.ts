/**
 * The ServiceCoordinator: several operators, in different clusters, publish the same backend as ONE
 * Tailscale Service and attach to it instead of duplicating it (design: "Multi-Operator Service
 * Coordination").
 *
 * The Services API has no compare-and-swap: a PUT replaces the whole service and the last writer wins.
 * The coordinator copes the way the official operator does (reference tailscale.md §1.6), and a little
 * more:
 *
 * 1. every change is read-modify-write from a fresh GET, adding or removing only our own entries;
 * 2. a PUT is sent only when something differs, and always carries the current `addrs`;
 * 3. each write is read back at once, and written again (bounded) if a racing writer dropped our entry;
 * 4. after every change a re-verify runs after a random 5–10 minutes and repairs an overwrite that
 *    landed after the read-back;
 * 5. while a service is wanted, our consumer's `lastSeen` is refreshed every `heartbeatMs` (a third of
 *    the stale threshold), so other clusters' sweeps keep us; a crashed cluster stops refreshing and is
 *    swept after `staleAfterMs`.
 *
 * Calls for one service are serialised inside one coordinator, so a burst of reconciles of the same
 * route costs GETs, not PUTs. Everything it does not own (other consumers, the official operator's
 * owner references, other annotations, tags and ports of a service owned by someone else) is kept.
 *
 * @module
 */

import { OperatorError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { TailscaleApi, TailscaleService } from '../tailscale/index.ts';
import type { Clock, TimerHandle } from '../time/clock.ts';
import { isServiceName } from './names.ts';
import {
  describeService,
  type Identity,
  type Plan,
  planEnsure,
  planSweep,
  type Refusal,
  type RefusalReason,
  type ServiceShape,
  type ServiceView,
  type ShapeMismatch,
} from './plan.ts';

const MINUTE = 60_000;
/** Writes per call before giving up on a service that keeps changing under us (re-verify continues). */
const MAX_WRITES = 5;

export interface ServiceCoordinatorOptions {
  /** The tailnet's API client (`TailnetClients.current(tailnet)`); only its services are used. */
  client: Pick<TailscaleApi, 'services'>;
  /** Stable per installation: our consumer key and owner reference (see src/resources/tailscale-gateway/identity.ts). */
  operatorId: string;
  /** Stable per cluster; recorded with our consumer. */
  clusterId: string;
  clock: Clock;
  log: Pick<Logger, 'debug' | 'info' | 'warn'>;
  /** A consumer not seen for this long is removed by the sweep. Default 30 minutes. */
  staleAfterMs?: number;
  /** Re-verify window after a change, `[min, max]` ms, chosen uniformly. Default 5–10 minutes. */
  reverifyMs?: readonly [number, number];
  /** How often our lastSeen is refreshed while wanted. Default a third of `staleAfterMs`. */
  heartbeatMs?: number;
  /** How often `start()` sweeps stale consumers. Default half of `staleAfterMs`. */
  sweepEveryMs?: number;
  /** In `[0, 1)`; default `Math.random`. */
  random?: () => number;
}

export interface EnsureServiceOptions {
  /** What the service publishes (recorded in the registry; the name is derived from it by the caller). */
  backend: string;
  /** The route that needs it, e.g. `namespace/HTTPRoute/name`. */
  route: string;
  /** `tcp:<port>`; applied only while we own the service. */
  ports?: string[];
  /** ACL tags of the service (keys of `autoApprovers.services`); applied only while we own it. */
  tags?: string[];
  comment?: string;
  signal?: AbortSignal;
}

export interface ServiceReady {
  status: 'ready';
  service: string;
  addrs: string[];
  owner: string;
  consumers: ServiceView['consumers'];
  consumerCount: number;
  /** Owner references of operators outside our registry, i.e. the official Tailscale operator. */
  otherOwners: string[];
  /** Whether this call wrote to the control plane. */
  changed: boolean;
  created: boolean;
  /** Our wishes the service does not meet because someone else owns it. */
  mismatches: ShapeMismatch[];
  warnings: string[];
}

export interface ServiceRefused extends Refusal {
  status: 'refused';
  service: string;
}

export type EnsureResult = ServiceReady | ServiceRefused;

export type DetachResult =
  | { status: 'detached'; service: string; changed: boolean }
  | { status: 'deleted'; service: string }
  | ServiceRefused;

export interface SweepResult {
  /** Consumers removed, per service. */
  removed: { service: string; operatorId: string }[];
  /** Services deleted because nobody was left. */
  deleted: string[];
  /** Services with a registry we may not touch. */
  refused: ServiceRefused[];
}

export interface ServiceCoordinator {
  readonly identity: Identity;
  /** Attaches `route` to the service, creating it when absent. */
  ensureService(name: string, options: EnsureServiceOptions): Promise<EnsureResult>;
  /**
   * Makes `routes` exactly our routes on the service (adding the missing, removing the others this
   * process recorded), creating the service when absent: one read (and at most one write) for a whole
   * set, what a reconciler that knows every route at once calls. An empty set is a detach.
   */
  syncRoutes(
    name: string,
    options: Omit<EnsureServiceOptions, 'route'> & { routes: readonly string[] },
  ): Promise<EnsureResult>;
  /**
   * Drops our consumer from the service whatever routes it records (also ones recorded before a
   * restart); deletes the service when nobody is left.
   */
  release(name: string, options?: { signal?: AbortSignal }): Promise<DetachResult>;
  /** Services this process wants (has routes on), with their routes. */
  wanted(): { service: string; routes: string[] }[];
  /** Removes `route` from our consumer; drops the consumer with its last route; deletes the service when nobody is left. */
  detach(name: string, route: string, options?: { signal?: AbortSignal }): Promise<DetachResult>;
  /** One sweep over every service on the tailnet. */
  cleanupStaleConsumers(options?: { signal?: AbortSignal }): Promise<SweepResult>;
  /** Runs the re-verify of `name` now (what the timer does). */
  reverify(name: string): Promise<void>;
  /** Services with a re-verify or heartbeat scheduled, and when. */
  scheduled(): { service: string; at: number }[];
  /** Resolves once no call or re-verify is in flight (tests: after advancing a fake clock). */
  settled(): Promise<void>;
  /** Starts periodic sweeps. */
  start(): void;
  /** Cancels every timer; in-flight calls finish. */
  stop(): void;
}

/** One service's desired state in this process. */
interface Wanted {
  backend: string;
  routes: Set<string>;
  /** Routes detached here, kept until a re-verify finds them absent. */
  removed: Set<string>;
  shape: ServiceShape;
  /** Set by syncRoutes: `routes` is the whole set of our routes. */
  exact?: boolean;
  timer?: { handle: TimerHandle; at: number };
}

/** A refusal as a Warning Event / False condition: reason and message. */
export function describeRefusal(refusal: Refusal): {
  type: 'Warning';
  reason: RefusalReason;
  message: string;
} {
  return { type: 'Warning', reason: refusal.reason, message: refusal.message };
}

export function createServiceCoordinator(options: ServiceCoordinatorOptions): ServiceCoordinator {
  const { client, clock, log } = options;
  const identity: Identity = { operatorId: options.operatorId, clusterId: options.clusterId };
  const staleAfterMs = options.staleAfterMs ?? 30 * MINUTE;
  const [reverifyMin, reverifyMax] = options.reverifyMs ?? [5 * MINUTE, 10 * MINUTE];
  const heartbeatMs = options.heartbeatMs ?? Math.floor(staleAfterMs / 3);
  const sweepEveryMs = options.sweepEveryMs ?? Math.floor(staleAfterMs / 2);
  const random = options.random ?? Math.random;
  if (!identity.operatorId || !identity.clusterId) {
    throw new OperatorError('Invalid', 'the ServiceCoordinator needs an operator id and a cluster id');
  }
  if (!(reverifyMin > 0 && reverifyMax >= reverifyMin)) {
    throw new OperatorError('Invalid', 're-verify window must be 0 < min <= max');
  }

  const wanted = new Map<string, Wanted>();
  const locks = new Map<string, Promise<unknown>>();
  let sweepTimer: TimerHandle | undefined;
  /** Sweeps started by the timer and not finished. */
  const sweeps = new Set<Promise<void>>();
  let stopped = false;

  /** Runs `fn` after every earlier call for `name` in this process. */
  function locked<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const previous = locks.get(name) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const tail = run.catch(() => undefined);
    locks.set(name, tail);
    void tail.then(() => {
      if (locks.get(name) === tail) locks.delete(name);
    });
    return run;
  }

  async function read(name: string, signal?: AbortSignal): Promise<TailscaleService | null> {
    try {
      return await client.services.get(name, signal ? { signal } : {});
    } catch (error) {
      if (OperatorError.from(error).code === 'NotFound') return null;
      throw error;
    }
  }

  function schedule(name: string, delayMs: number): void {
    const state = wanted.get(name);
    if (!state || stopped) return;
    if (state.timer) clock.clearTimeout(state.timer.handle);
    const at = clock.now() + delayMs;
    const handle = clock.setTimeout(() => {
      if (state.timer?.handle === handle) delete state.timer;
      void reverify(name).catch((error: unknown) => {
        log.warn(
          { service: name, err: OperatorError.from(error).message },
          'Tailscale Service re-verify failed; retrying',
        );
        schedule(name, reverifyDelay());
      });
    }, delayMs);
    state.timer = { handle, at };
  }

  const reverifyDelay = () => reverifyMin + Math.floor(random() * (reverifyMax - reverifyMin + 1));

  /** After a call: re-verify soon after a change; otherwise keep a heartbeat while wanted, forget when not. */
  function afterwards(name: string, changed: boolean): void {
    const state = wanted.get(name);
    if (!state) return;
    if (changed) {
      schedule(name, reverifyDelay());
      return;
    }
    if (state.routes.size === 0) {
      if (state.timer) clock.clearTimeout(state.timer.handle);
      wanted.delete(name);
      return;
    }
    if (!state.timer) schedule(name, heartbeatMs);
  }

  interface Outcome {
    plan: Plan;
    changed: boolean;
    created: boolean;
    deleted: boolean;
    current: TailscaleService | null;
  }

  /** Read, plan, write, read back — until the plan says nothing more to do. */
  async function converge(
    name: string,
    planFor: (current: TailscaleService | null) => Plan,
    signal?: AbortSignal,
    track: { wrote: boolean } = { wrote: false },
  ): Promise<Outcome> {
    let current = await read(name, signal);
    let changed = false;
    let created = false;
    let deleted = false;
    for (let writes = 0; ; writes++) {
      const plan = planFor(current);
      if (plan.action === 'none' || plan.action === 'refuse') {
        return { plan, changed, created, deleted, current };
      }
      if (writes >= MAX_WRITES) {
        throw new OperatorError(
          'Conflict',
          `Tailscale Service ${name} kept changing under us after ${MAX_WRITES} writes; will re-verify`,
        );
      }
      const callOptions = signal ? { signal } : {};
      if (plan.action === 'delete') {
        await client.services.delete(name, callOptions);
        changed = track.wrote = true;
        deleted = true;
        log.info({ service: name }, 'deleted Tailscale Service: no consumer and no owner left');
      } else {
        try {
          await client.services.put(plan.spec, { ...callOptions, current });
          changed = track.wrote = true;
          created ||= plan.create;
          deleted = false;
          log.info({ service: name, create: plan.create }, 'wrote Tailscale Service');
        } catch (error) {
          // Another operator created it between our read and our create: re-read and attach.
          const failure = OperatorError.from(error);
          if (
            !(
              current === null &&
              (failure.code === 'Invalid' || failure.code === 'Conflict' || failure.code === 'AlreadyExists')
            )
          ) {
            throw error;
          }
          log.debug({ service: name, err: failure.message }, 'create lost a race; attaching instead');
        }
      }
      current = await read(name, signal);
    }
  }

  function ready(name: string, outcome: Outcome, mismatches: ShapeMismatch[]): EnsureResult {
    const described = outcome.current ? describeService(outcome.current) : null;
    if (described === null || 'reason' in described) {
      // Planned "nothing to do" on a service that is gone or unreadable: cannot happen for a wanted one.
      throw new OperatorError('Internal', `Tailscale Service ${name}: no readable state after converging`);
    }
    return {
      status: 'ready',
      service: name,
      addrs: described.addrs,
      owner: described.owner,
      consumers: described.consumers,
      consumerCount: described.consumers.length,
      otherOwners: described.otherOwners,
      changed: outcome.changed,
      created: outcome.created,
      mismatches,
      warnings: described.warnings,
    };
  }

  const refused = (name: string, refusal: Refusal): ServiceRefused => ({
    status: 'refused',
    service: name,
    ...refusal,
  });

  /** Moves the service towards this process's wanted state for it. */
  async function reconcileWanted(name: string, signal?: AbortSignal): Promise<Outcome> {
    const state = wanted.get(name);
    const intent = {
      add: [...(state?.routes ?? [])],
      remove: [...(state?.removed ?? [])],
      ...(state?.backend ? { backend: state.backend } : {}),
      ...(state ? { shape: state.shape } : {}),
      ...(state?.exact ? { exact: true } : {}),
    };
    const track = { wrote: false };
    try {
      return await converge(
        name,
        (current) => planEnsure(name, current, identity, intent, clock.now(), heartbeatMs),
        signal,
        track,
      );
    } catch (error) {
      // A failure after a write (or a service that keeps changing) still needs its re-verify.
      if (track.wrote || wanted.get(name)?.routes.size) schedule(name, reverifyDelay());
      throw error;
    }
  }

  function want(name: string): Wanted {
    let state = wanted.get(name);
    if (!state) {
      state = { backend: '', routes: new Set(), removed: new Set(), shape: {} };
      wanted.set(name, state);
    }
    return state;
  }

  function checkName(name: string): void {
    if (!isServiceName(name)) {
      throw new OperatorError('Invalid', `${JSON.stringify(name)} is not "svc:" + a DNS label`, {
        field: 'name',
      });
    }
  }

  async function reverify(name: string): Promise<void> {
    await locked(name, async () => {
      if (!wanted.has(name)) return;
      const outcome = await reconcileWanted(name);
      if (outcome.plan.action === 'refuse') {
        log.warn({ service: name, reason: outcome.plan.refusal.reason }, outcome.plan.refusal.message);
      } else if (outcome.changed) {
        log.info({ service: name }, 're-verify repaired the Tailscale Service');
      }
      const state = wanted.get(name);
      if (state && outcome.plan.action !== 'refuse' && !outcome.changed) state.removed.clear();
      afterwards(name, outcome.changed);
    });
  }

  async function cleanupStaleConsumers(opts: { signal?: AbortSignal } = {}): Promise<SweepResult> {
    const result: SweepResult = { removed: [], deleted: [], refused: [] };
    const services = await client.services.list(opts.signal ? { signal: opts.signal } : {});
    for (const listed of services) {
      if (!isServiceName(listed.name)) continue;
      const ownWanted = () => (wanted.get(listed.name)?.routes.size ?? 0) > 0;
      const first = planSweep(listed, identity, clock.now(), staleAfterMs, heartbeatMs, ownWanted());
      if (first.action === 'none') continue;
      await locked(listed.name, async () => {
        const removed = new Set<string>();
        const outcome = await converge(
          listed.name,
          (current) => {
            if (current === null) return { action: 'none', view: null, mismatches: [] };
            const plan = planSweep(current, identity, clock.now(), staleAfterMs, heartbeatMs, ownWanted());
            if (plan.action === 'put' || plan.action === 'delete')
              for (const id of plan.removed) removed.add(id);
            return plan;
          },
          opts.signal,
        );
        if (outcome.plan.action === 'refuse') result.refused.push(refused(listed.name, outcome.plan.refusal));
        for (const operatorId of removed) {
          result.removed.push({ service: listed.name, operatorId });
          log.info({ service: listed.name, consumer: operatorId }, 'removed a stale consumer');
        }
        if (outcome.deleted) result.deleted.push(listed.name);
        if (outcome.changed) afterwards(listed.name, true);
      });
    }
    return result;
  }

  /**
   * What ensureService and syncRoutes share once they have set the routes: the wanted shape, one
   * reconcile against the API, and the answer. A refused service is forgotten rather than retried on a
   * timer (it is not ours to touch); the caller's requeue retries.
   */
  async function settle(
    name: string,
    state: ReturnType<typeof want>,
    opts: {
      tags?: string[] | undefined;
      ports?: string[] | undefined;
      comment?: string | undefined;
      signal?: AbortSignal | undefined;
    },
  ) {
    state.shape = {
      ...(opts.tags ? { tags: opts.tags } : {}),
      ...(opts.ports ? { ports: opts.ports } : {}),
      ...(opts.comment !== undefined ? { comment: opts.comment } : {}),
    };
    const outcome = await reconcileWanted(name, opts.signal);
    if (outcome.plan.action === 'refuse') {
      if (state.timer) clock.clearTimeout(state.timer.handle);
      wanted.delete(name);
      return refused(name, outcome.plan.refusal);
    }
    afterwards(name, outcome.changed);
    const mismatches = outcome.plan.action === 'none' ? outcome.plan.mismatches : [];
    return ready(name, outcome, mismatches);
  }

  return {
    identity,

    ensureService(name, opts) {
      checkName(name);
      return locked(name, async () => {
        const state = want(name);
        state.backend = opts.backend;
        state.routes.add(opts.route);
        state.removed.delete(opts.route);
        return settle(name, state, opts);
      });
    },

    syncRoutes(name, opts) {
      checkName(name);
      if (opts.routes.length === 0)
        throw new OperatorError('Invalid', 'syncRoutes needs a route; detach instead');
      return locked(name, async () => {
        const state = want(name);
        state.backend = opts.backend;
        state.exact = true;
        const next = new Set(opts.routes);
        for (const route of state.routes) if (!next.has(route)) state.removed.add(route);
        for (const route of next) state.removed.delete(route);
        state.routes = next;
        return settle(name, state, opts);
      });
    },

    wanted: () =>
      [...wanted.entries()]
        .filter(([, state]) => state.routes.size > 0)
        .map(([service, state]) => ({ service, routes: [...state.routes].sort() })),

    release(name, opts = {}) {
      checkName(name);
      return locked(name, async () => {
        const state = want(name);
        for (const route of state.routes) state.removed.add(route);
        state.routes.clear();
        state.exact = true;
        const outcome = await reconcileWanted(name, opts.signal);
        if (outcome.plan.action === 'refuse') {
          wanted.delete(name);
          return refused(name, outcome.plan.refusal);
        }
        afterwards(name, outcome.changed);
        if (outcome.deleted) return { status: 'deleted', service: name };
        return { status: 'detached', service: name, changed: outcome.changed };
      });
    },

    detach(name, route, opts = {}) {
      checkName(name);
      return locked(name, async () => {
        const state = want(name);
        state.routes.delete(route);
        state.removed.add(route);
        const outcome = await reconcileWanted(name, opts.signal);
        if (outcome.plan.action === 'refuse') {
          wanted.delete(name);
          return refused(name, outcome.plan.refusal);
        }
        afterwards(name, outcome.changed);
        if (outcome.deleted) return { status: 'deleted', service: name };
        return { status: 'detached', service: name, changed: outcome.changed };
      });
    },

    cleanupStaleConsumers,

    reverify,

    async settled() {
      while (locks.size > 0 || sweeps.size > 0) await Promise.all([...locks.values(), ...sweeps]);
    },

    scheduled: () =>
      [...wanted.entries()]
        .filter(([, state]) => state.timer)
        .map(([service, state]) => ({ service, at: state.timer!.at })),

    start() {
      stopped = false;
      const tick = () => {
        sweepTimer = clock.setTimeout(() => {
          const sweep = (async () => {
            try {
              await cleanupStaleConsumers();
            } catch (error) {
              log.warn({ err: OperatorError.from(error).message }, 'stale-consumer sweep failed');
            }
            if (!stopped) tick();
          })();
          sweeps.add(sweep);
          void sweep.finally(() => sweeps.delete(sweep));
        }, sweepEveryMs);
      };
      if (sweepTimer === undefined) tick();
    },

    stop() {
      stopped = true;
      if (sweepTimer !== undefined) clock.clearTimeout(sweepTimer);
      sweepTimer = undefined;
      for (const state of wanted.values()) {
        if (state.timer) clock.clearTimeout(state.timer.handle);
        delete state.timer;
      }
    },
  };
}

/**
 * The operator's settings the coordinator's timings come from, in seconds; spelled out here rather
 * than picked from the CLI's Config so coordination/ stays below the entry point.
 */
export interface CoordinatorSettings {
  readonly serviceStaleAfter: number;
  readonly serviceReverifyMin: number;
  readonly serviceReverifyMax: number;
}

/** The coordinator's timings from the operator's settings (seconds → ms). */
export function coordinatorTimings(
  config: CoordinatorSettings,
): Pick<ServiceCoordinatorOptions, 'staleAfterMs' | 'reverifyMs'> {
  return {
    staleAfterMs: config.serviceStaleAfter * 1000,
    reverifyMs: [config.serviceReverifyMin * 1000, config.serviceReverifyMax * 1000],
  };
}
