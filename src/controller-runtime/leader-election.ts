/**
 * Leader election on a coordination.k8s.io/v1 Lease, following client-go's `leaderelection` package.
 *
 * Only the leader runs work queues; every replica keeps serving Envoy Gateway's extension hooks from its
 * own caches (reference §4.3), so a takeover never interrupts the data path.
 *
 * The points that make it safe, each as client-go does them:
 * - A follower takes over when the lease record has not *changed* for its leaseDuration, measured on the
 *   follower's own clock from when it last saw a change. Comparing `renewTime` with local time would
 *   trust two machines' clocks to agree.
 * - Every write is a replace carrying the resourceVersion that was read: of two candidates, the API server
 *   lets exactly one win and answers the other 409.
 * - A leader that cannot renew within renewDeadline (shorter than leaseDuration) stops leading at once,
 *   before any follower may consider the lease expired.
 * - On shutdown the leader writes an empty holder, so the next leader need not wait out the lease.
 * - `acquireTime`/`renewTime` are `V1MicroTime`s: a plain `Date` serialises with three fractional
 *   digits, which the API server rejects (kubernetes-client/javascript#828).
 *
 * After losing the lease the elector goes back to campaigning (demotion, not exit); a process that
 * prefers to exit can do so from `onStoppedLeading`.
 *
 * @module
 */

import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { type V1Lease, type V1LeaseSpec, V1MicroTime } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { OperatorError } from '../errors.ts';
import type { KubeClient } from '../kube/client.ts';
import type { Logger } from '../observability/logger.ts';
import { family, Gauge } from '../observability/metric-families.ts';
import { type Clock, sleep, systemClock } from '../time/clock.ts';

export interface LeaderElectorOptions {
  /** Only raw requests are used, so each can carry the renew deadline as an abort signal. */
  client: Pick<KubeClient, 'request'>;
  namespace: string;
  /** The Lease's name, also the `name` label of `leader_election_master_status`. */
  name: string;
  /**
   * Who campaigns, e.g. the Pod's name (the entry point reads `$POD_NAME`); default the host name. The
   * identity is this plus `_` and a random suffix, so a restarted pod is a new candidate.
   */
  candidate?: string;
  /** The whole identity, suffix included, for tests that need to know it in advance. */
  identity?: string;
  /** How long followers wait after the last observed change before taking over; default 15 s. */
  leaseDurationMs?: number;
  /** How long the leader keeps retrying a renewal before it gives up leading; default 10 s. */
  renewDeadlineMs?: number;
  /** Pause between attempts to acquire or renew; default 2 s. */
  retryPeriodMs?: number;
  /** Write an empty holder when stopped while leading; default true. */
  releaseOnCancel?: boolean;
  /**
   * Called on becoming leader; `signal` aborts the moment leadership ends. Not awaited: it should start
   * the controllers and return (or run until the signal aborts).
   */
  onStartedLeading: (signal: AbortSignal) => void | Promise<void>;
  /** Called once leadership ended (lost, or released on stop); stop reconciling here, at once. */
  onStoppedLeading?: () => void;
  /** Called when a different holder is observed (including ourselves). */
  onNewLeader?: (identity: string) => void;
  log: Logger;
  /** Registry for `leader_election_master_status`; default a private one. */
  registry?: Registry;
  /** Default: the system clock. */
  clock?: Clock;
  /** Source of jitter in [0, 1); default `Math.random`. */
  random?: () => number;
}

export interface LeaderElector {
  readonly identity: string;
  /** Campaigns, leads, and campaigns again after a loss, until `stop()`. Resolves after stopping. */
  run(): Promise<void>;
  /**
   * Stops campaigning. While leading, leadership ends first (signal aborted, `onStoppedLeading`), then the
   * lease is released unless `release` is false (which models a crash: followers wait out the lease).
   */
  stop(options?: { release?: boolean }): Promise<void>;
  isLeader(): boolean;
  /** The holder last observed, if any. */
  leader(): string | undefined;
}

/** What we remember of the lease between attempts. */
interface Observed {
  raw: string;
  spec: V1LeaseSpec;
  /** Our clock's time when `raw` last changed. */
  at: number;
}

export function createLeaderElector(options: LeaderElectorOptions): LeaderElector {
  const {
    client,
    namespace,
    name,
    leaseDurationMs = 15_000,
    renewDeadlineMs = 10_000,
    retryPeriodMs = 2_000,
    releaseOnCancel = true,
    clock = systemClock,
    random = Math.random,
  } = options;
  if (!(leaseDurationMs > renewDeadlineMs && renewDeadlineMs > retryPeriodMs)) {
    throw new OperatorError('Invalid', 'leader election needs leaseDuration > renewDeadline > retryPeriod');
  }
  const identity =
    options.identity ?? `${options.candidate || hostname()}_${randomUUID().replaceAll('-', '').slice(0, 10)}`;
  const log = options.log.child({ lease: `${namespace}/${name}`, identity });
  const path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases/${encodeURIComponent(name)}`;
  const collection = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`;
  const status = family(options.registry ?? new Registry(), Gauge, {
    name: 'leader_election_master_status',
    help: 'Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master.',
    labelNames: ['name'],
  }) as Gauge<'name'>;
  status.set({ name }, 0);

  const stopController = new AbortController();
  let releaseOnStop = releaseOnCancel;
  let observed: Observed | undefined;
  let reportedLeader: string | undefined;
  let leading: AbortController | undefined;
  let running: Promise<void> | undefined;

  const leaseSeconds = Math.max(1, Math.ceil(leaseDurationMs / 1000));
  const recordOf = (spec: V1LeaseSpec | undefined): string =>
    JSON.stringify([
      spec?.holderIdentity ?? '',
      spec?.leaseDurationSeconds ?? 0,
      String(spec?.acquireTime ?? ''),
      String(spec?.renewTime ?? ''),
      spec?.leaseTransitions ?? 0,
    ]);

  const observe = (spec: V1LeaseSpec, at: number) => {
    const raw = recordOf(spec);
    if (observed?.raw !== raw) observed = { raw, spec, at };
    const holder = spec.holderIdentity ?? '';
    if (holder && holder !== reportedLeader) {
      reportedLeader = holder;
      log.info({ leader: holder }, 'new leader observed');
      try {
        options.onNewLeader?.(holder);
      } catch (error) {
        log.error({ err: error }, 'onNewLeader threw');
      }
    }
  };

  /** A request that gives up at `deadline` (our clock), so a hung connection cannot outlive a renewal. */
  const request = async <T>(url: string, init: Parameters<KubeClient['request']>[1], deadline: number) => {
    const abort = new AbortController();
    const timer = clock.setTimeout(
      () => abort.abort(new OperatorError('Transient', 'lease request timed out')),
      deadline - clock.now(),
    );
    const onStop = () => abort.abort(new OperatorError('Canceled', 'leader election stopped'));
    stopController.signal.addEventListener('abort', onStop, { once: true });
    try {
      return await client.request<T>(url, { ...init, signal: abort.signal });
    } finally {
      clock.clearTimeout(timer);
      stopController.signal.removeEventListener('abort', onStop);
    }
  };

  /** One round of client-go's `tryAcquireOrRenew`: true when we hold the lease afterwards. */
  const tryAcquireOrRenew = async (deadline: number): Promise<boolean> => {
    const now = new V1MicroTime(clock.now());
    let lease: V1Lease;
    try {
      lease = await request<V1Lease>(path, { method: 'GET' }, deadline);
    } catch (error) {
      if (OperatorError.from(error).code !== 'NotFound') {
        log.warn({ err: error }, 'reading the lease failed');
        return false;
      }
      const spec: V1LeaseSpec = {
        holderIdentity: identity,
        leaseDurationSeconds: leaseSeconds,
        acquireTime: now,
        renewTime: now,
        leaseTransitions: 0,
      };
      try {
        const created = await request<V1Lease>(
          collection,
          {
            method: 'POST',
            body: {
              apiVersion: 'coordination.k8s.io/v1',
              kind: 'Lease',
              metadata: { name, namespace },
              spec,
            },
          },
          deadline,
        );
        observe(created.spec ?? spec, clock.now());
        return true;
      } catch (createError) {
        // AlreadyExists: another candidate created it first; the next round reads it.
        log.debug({ err: createError }, 'creating the lease failed');
        return false;
      }
    }

    const current = lease.spec ?? {};
    observe(current, clock.now());
    const holder = current.holderIdentity ?? '';
    const duration = (current.leaseDurationSeconds ?? leaseSeconds) * 1000;
    if (holder && holder !== identity && observed!.at + duration > clock.now()) return false;

    const renewing = holder === identity;
    const spec: V1LeaseSpec = {
      holderIdentity: identity,
      leaseDurationSeconds: leaseSeconds,
      acquireTime: renewing && current.acquireTime ? new V1MicroTime(current.acquireTime) : now,
      renewTime: now,
      leaseTransitions: (current.leaseTransitions ?? 0) + (renewing ? 0 : 1),
    };
    try {
      const updated = await request<V1Lease>(
        path,
        {
          method: 'PUT',
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name, namespace, resourceVersion: lease.metadata?.resourceVersion },
            spec,
          },
        },
        deadline,
      );
      observe(updated.spec ?? spec, clock.now());
      return true;
    } catch (error) {
      if (OperatorError.from(error).code === 'Conflict') log.debug('lost the race for the lease (409)');
      else log.warn({ err: error }, 'writing the lease failed');
      return false;
    }
  };

  const jittered = () => retryPeriodMs * (1 + 1.2 * random());

  const acquire = async (): Promise<boolean> => {
    while (!stopController.signal.aborted) {
      // A slow apiserver should not make every attempt time out; renewDeadline bounds one round.
      if (await tryAcquireOrRenew(clock.now() + renewDeadlineMs)) return true;
      await sleep(clock, jittered(), stopController.signal);
    }
    return false;
  };

  /** Renews every retryPeriod; resolves when a renewal failed for renewDeadline, or on stop. */
  const renewLoop = async (): Promise<'lost' | 'stopped'> => {
    while (!stopController.signal.aborted) {
      const deadline = clock.now() + renewDeadlineMs;
      let renewed = false;
      while (!stopController.signal.aborted && clock.now() < deadline) {
        renewed = await tryAcquireOrRenew(deadline);
        if (renewed || stopController.signal.aborted) break;
        await sleep(
          clock,
          Math.min(retryPeriodMs, Math.max(0, deadline - clock.now())),
          stopController.signal,
        );
      }
      if (stopController.signal.aborted) return 'stopped';
      if (!renewed) return 'lost';
      await sleep(clock, retryPeriodMs, stopController.signal);
    }
    return 'stopped';
  };

  const stopLeading = () => {
    if (!leading) return;
    leading.abort(new OperatorError('Canceled', 'leadership ended'));
    leading = undefined;
    status.set({ name }, 0);
    try {
      options.onStoppedLeading?.();
    } catch (error) {
      log.error({ err: error }, 'onStoppedLeading threw');
    }
  };

  const release = async () => {
    if (!observed || (observed.spec.holderIdentity ?? '') !== identity) return;
    const now = new V1MicroTime(clock.now());
    try {
      const lease = await client.request<V1Lease>(path, { method: 'GET' });
      if (lease.spec?.holderIdentity !== identity) return;
      await client.request(path, {
        method: 'PUT',
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace, resourceVersion: lease.metadata?.resourceVersion },
          // client-go's release record: no holder, a 1 s duration, transitions unchanged.
          spec: {
            holderIdentity: '',
            leaseDurationSeconds: 1,
            acquireTime: now,
            renewTime: now,
            leaseTransitions: lease.spec?.leaseTransitions ?? 0,
          } satisfies V1LeaseSpec,
        },
      });
      log.info('released the lease');
    } catch (error) {
      log.warn({ err: error }, 'releasing the lease failed; followers will wait for it to expire');
    }
  };

  const loop = async () => {
    while (!stopController.signal.aborted) {
      if (!(await acquire())) break;
      leading = new AbortController();
      status.set({ name }, 1);
      log.info('started leading');
      const signal = leading.signal;
      try {
        void Promise.resolve(options.onStartedLeading(signal)).catch((error: unknown) =>
          log.error({ err: error }, 'onStartedLeading failed'),
        );
      } catch (error) {
        log.error({ err: error }, 'onStartedLeading threw');
      }
      const outcome = await renewLoop();
      stopLeading();
      if (outcome === 'lost')
        log.warn('failed to renew the lease within the renew deadline; stopped leading');
      else if (releaseOnStop) await release();
    }
  };

  return {
    identity,
    run() {
      running ??= loop().catch((error: unknown) => log.error({ err: error }, 'leader election crashed'));
      return running;
    },
    async stop(stopOptions = {}) {
      if (stopOptions.release === false) releaseOnStop = false;
      stopController.abort();
      await running;
      stopLeading();
    },
    isLeader: () => leading !== undefined,
    leader: () => observed?.spec.holderIdentity || undefined,
  };
}
