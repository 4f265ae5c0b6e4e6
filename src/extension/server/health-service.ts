/**
 * `grpc.health.v1.Health` for the extension server. It reports SERVING only while hooks can give correct
 * answers: after the resource store's first complete state, and not once shutdown has begun. Answering
 * before the store synced would let a client (or a gRPC health probe) route Envoy Gateway to a pod whose
 * hooks see no resources, and EG would publish xDS without our clusters.
 *
 * @module
 */
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type ServiceImpl } from '@connectrpc/connect';
import {
  type Health,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from '../../../gen/grpc/health/v1/health_pb.ts';
import type { ResourceStore } from '../../model/resource-store.ts';

export { ServingStatus };

export interface HealthState {
  /** Current status of `service`, or undefined for a service this server does not know. */
  status(service: string): ServingStatus | undefined;
  /** Forces NOT_SERVING (false) or goes back to following the store (true). */
  setServing(serving: boolean): void;
  /** Calls `listener` whenever the status may have changed; returns the unsubscribe function. */
  onChange(listener: () => void): () => void;
  /** Stops following the store. */
  dispose(): void;
}

/** `services` are the names answered besides "" (the whole server). */
export function createHealthState(store: ResourceStore, services: readonly string[]): HealthState {
  const known = new Set(['', ...services]);
  const listeners = new Set<() => void>();
  let serving = true;
  const notify = () => {
    for (const listener of listeners) listener();
  };
  const unsubscribe = store.subscribe(notify);
  return {
    status(service) {
      if (!known.has(service)) return undefined;
      return serving && store.hasSynced() ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
    },
    setServing(next) {
      if (next === serving) return;
      serving = next;
      notify();
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    dispose() {
      unsubscribe();
      listeners.clear();
    },
  };
}

/** Check answers NotFound for an unknown service; Watch reports SERVICE_UNKNOWN instead, as the spec asks. */
export function createHealthService(state: HealthState): ServiceImpl<typeof Health> {
  return {
    check(request) {
      const status = state.status(request.service);
      if (status === undefined) throw new ConnectError(`unknown service ${request.service}`, Code.NotFound);
      return create(HealthCheckResponseSchema, { status });
    },
    async *watch(request, context) {
      let wake: (() => void) | undefined;
      let changed = true;
      const stop = state.onChange(() => {
        changed = true;
        wake?.();
      });
      const aborted = new Promise<void>((resolve) => {
        if (context.signal.aborted) resolve();
        context.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      try {
        let last: ServingStatus | undefined;
        while (!context.signal.aborted) {
          if (changed) {
            changed = false;
            const status = state.status(request.service) ?? ServingStatus.SERVICE_UNKNOWN;
            if (status !== last) {
              last = status;
              yield create(HealthCheckResponseSchema, { status });
            }
            continue;
          }
          await Promise.race([new Promise<void>((resolve) => (wake = resolve)), aborted]);
          wake = undefined;
        }
      } finally {
        stop();
      }
    },
  };
}
