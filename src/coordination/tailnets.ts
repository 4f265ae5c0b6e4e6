/**
 * One ServiceCoordinator per tailnet, for the leader. A coordinator needs the operator identity (resolved
 * in the background by `run`) and the tailnet's API client (built by the TailscaleTailnet reconciler);
 * until both exist `for()` answers undefined and the caller reports "pending". The client is looked up
 * at every call, so rotated credentials take effect without rebuilding the coordinator (and without
 * losing its wanted state and timers).
 *
 * `start()` starts the periodic stale-consumer sweep of every coordinator (and of each one created
 * later); `stop()` cancels every sweep, heartbeat and re-verify: what losing leadership must do, so
 * two replicas never both heartbeat.
 *
 * @module
 */

import { OperatorError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { TailscaleApi } from '../tailscale/index.ts';
import type { Clock } from '../time/clock.ts';
import {
  createServiceCoordinator,
  type ServiceCoordinator,
  type ServiceCoordinatorOptions,
} from './coordinator.ts';
import type { Identity } from './plan.ts';

export interface TailnetCoordinatorsOptions {
  /** The TailscaleTailnet's client, when it has one. */
  client(tailnet: string): Pick<TailscaleApi, 'services'> | undefined;
  /** The operator identity, once resolved. */
  identity(): Identity | undefined;
  clock: Clock;
  log: Pick<Logger, 'debug' | 'info' | 'warn'>;
  timings?: Pick<ServiceCoordinatorOptions, 'staleAfterMs' | 'reverifyMs' | 'heartbeatMs' | 'sweepEveryMs'>;
}

export interface TailnetCoordinators {
  /** The coordinator of a TailscaleTailnet (by object name), or undefined while identity or client is missing. */
  for(tailnet: string): ServiceCoordinator | undefined;
  identity(): Identity | undefined;
  /** Every coordinator made so far, by tailnet. */
  all(): ReadonlyMap<string, ServiceCoordinator>;
  start(): void;
  stop(): void;
}

export function createTailnetCoordinators(options: TailnetCoordinatorsOptions): TailnetCoordinators {
  const coordinators = new Map<string, ServiceCoordinator>();
  let running = false;
  const clientOf = (tailnet: string) => {
    const client = options.client(tailnet);
    if (!client)
      throw new OperatorError('Transient', `TailscaleTailnet ${tailnet} has no API client (not Ready)`);
    return client.services;
  };
  return {
    for(tailnet) {
      const existing = coordinators.get(tailnet);
      if (existing) return existing;
      const identity = options.identity();
      if (!identity || !options.client(tailnet)) return undefined;
      const services: Pick<TailscaleApi, 'services'>['services'] = {
        list: (o) => clientOf(tailnet).list(o),
        get: (name, o) => clientOf(tailnet).get(name, o),
        put: (spec, o) => clientOf(tailnet).put(spec, o),
        delete: (name, o) => clientOf(tailnet).delete(name, o),
      };
      const coordinator = createServiceCoordinator({
        client: { services },
        operatorId: identity.operatorId,
        clusterId: identity.clusterId,
        clock: options.clock,
        log: options.log,
        ...options.timings,
      });
      coordinators.set(tailnet, coordinator);
      if (running) coordinator.start();
      options.log.info({ tailnet, ...identity }, 'ServiceCoordinator ready');
      return coordinator;
    },
    identity: () => options.identity(),
    all: () => coordinators,
    start() {
      running = true;
      for (const coordinator of coordinators.values()) coordinator.start();
    },
    stop() {
      running = false;
      for (const coordinator of coordinators.values()) coordinator.stop();
    },
  };
}
