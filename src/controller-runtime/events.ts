/**
 * Kubernetes Events (events.k8s.io/v1) about the objects we reconcile, for `kubectl describe`.
 *
 * Why deduplicate: a reconcile that fails the same way every backoff step would otherwise write a new
 * Event each time, flooding etcd and burying the first occurrence. As client-go's event broadcaster
 * does, a repeat of the same (object, type, reason, message) within the window bumps `series.count` on
 * the Event already written instead.
 *
 * Recording never throws and never blocks a reconcile on the API server: Events are best-effort
 * diagnostics, so failures are logged and dropped.
 *
 * @module
 */

import { hostname } from 'node:os';
import { type EventsV1Event, type KubernetesObject, V1MicroTime } from '@kubernetes/client-node';
import { OperatorError } from '../errors.ts';
import type { KubeClient } from '../kube/client.ts';
import type { Logger } from '../observability/logger.ts';
import { type Clock, systemClock } from '../time/clock.ts';
import { type Condition, findCondition, isConditionTrue } from './conditions.ts';

/** The `reportingController` of every Event we write. */
export const REPORTING_CONTROLLER = 'gateway.tailscale.com/tailscale-gateway';

/** Where Events go; {@link kubeEventSink} in production, a fake in unit tests. */
export interface EventSink {
  create(namespace: string, event: EventsV1Event): Promise<EventsV1Event>;
  /** A JSON merge patch of an existing Event. */
  patch(namespace: string, name: string, patch: object): Promise<EventsV1Event>;
}

export function kubeEventSink(client: Pick<KubeClient, 'request'>): EventSink {
  const base = (namespace: string) =>
    `/apis/events.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/events`;
  return {
    create: (namespace, event) =>
      client.request<EventsV1Event>(base(namespace), {
        method: 'POST',
        body: { apiVersion: 'events.k8s.io/v1', kind: 'Event', ...event },
      }),
    patch: (namespace, name, patch) =>
      client.request<EventsV1Event>(`${base(namespace)}/${encodeURIComponent(name)}`, {
        method: 'PATCH',
        body: patch,
        contentType: 'application/merge-patch+json',
      }),
  };
}

export type EventType = 'Normal' | 'Warning';

export interface EventRecorderOptions {
  sink: EventSink;
  /** Default `gateway.tailscale.com/tailscale-gateway`. */
  reportingController?: string;
  /** Which replica wrote it; default the leader-election identity if you pass it, else the host name. */
  reportingInstance?: string;
  /** Repeats within this long become a series on one Event; default 6 min, as client-go. */
  dedupWindowMs?: number;
  log: Logger;
  /** Default: the system clock. */
  clock?: Clock;
}

export interface EventRecorder {
  /**
   * Records an Event about `regarding`. `action` says what we were doing (default: `reason`). The
   * promise always resolves; awaiting it is only useful in tests.
   */
  event(
    regarding: KubernetesObject,
    type: EventType,
    reason: string,
    message: string,
    action?: string,
  ): Promise<void>;
}

/** The API server refuses notes over 1 kB. */
const NOTE_LIMIT = 1024;

interface Series {
  /** Resolves to the written Event's name, or undefined when creating it failed. */
  name: Promise<string | undefined>;
  namespace: string;
  count: number;
  firstSeen: number;
  lastSeen: number;
}

export function createEventRecorder(options: EventRecorderOptions): EventRecorder {
  const {
    sink,
    reportingController = REPORTING_CONTROLLER,
    reportingInstance = hostname(),
    dedupWindowMs = 6 * 60_000,
    clock = systemClock,
  } = options;
  const log = options.log.child({ component: 'events' });
  const series = new Map<string, Series>();
  let sequence = 0;

  const prune = (now: number) => {
    for (const [key, entry] of series) if (now - entry.firstSeen >= dedupWindowMs) series.delete(key);
  };

  const create = async (namespace: string, event: EventsV1Event): Promise<string | undefined> => {
    try {
      const created = await sink.create(namespace, event);
      return created.metadata?.name ?? event.metadata?.name;
    } catch (error) {
      log.warn({ err: error, reason: event.reason }, 'could not record an event');
      return undefined;
    }
  };

  return {
    async event(regarding, type, reason, message, action = reason) {
      try {
        const now = clock.now();
        prune(now);
        const meta = regarding.metadata ?? {};
        // Cluster-scoped objects' Events go to `default`, as client-go does.
        const namespace = meta.namespace || 'default';
        const note = message.length > NOTE_LIMIT ? `${message.slice(0, NOTE_LIMIT - 3)}...` : message;
        const key = JSON.stringify([
          meta.uid ?? '',
          regarding.apiVersion,
          regarding.kind,
          namespace,
          meta.name,
          type,
          reason,
          action,
          note,
        ]);
        const existing = series.get(key);
        if (existing) {
          existing.count++;
          existing.lastSeen = now;
          const count = existing.count;
          const name = await existing.name;
          if (!name) return;
          try {
            await sink.patch(existing.namespace, name, {
              series: { count, lastObservedTime: new V1MicroTime(now) },
            });
          } catch (error) {
            // The Event may have expired (the API server keeps them for an hour): start a new one.
            if (OperatorError.from(error).code === 'NotFound') series.delete(key);
            log.warn({ err: error, reason }, 'could not update an event series');
          }
          return;
        }
        const base = (meta.name ?? 'object').slice(0, 200);
        const event: EventsV1Event = {
          metadata: { name: `${base}.${(now * 1000 + (sequence++ % 1000)).toString(16)}`, namespace },
          eventTime: new V1MicroTime(now),
          reportingController,
          reportingInstance,
          action,
          reason,
          note,
          type,
          regarding: {
            apiVersion: regarding.apiVersion,
            kind: regarding.kind,
            name: meta.name,
            ...(meta.namespace ? { namespace: meta.namespace } : {}),
            ...(meta.uid ? { uid: meta.uid } : {}),
            ...(meta.resourceVersion ? { resourceVersion: meta.resourceVersion } : {}),
          },
        };
        const entry: Series = {
          name: create(namespace, event),
          namespace,
          count: 1,
          firstSeen: now,
          lastSeen: now,
        };
        series.set(key, entry);
        if (!(await entry.name)) series.delete(key);
      } catch (error) {
        log.warn({ err: error, reason }, 'recording an event failed');
      }
    },
  };
}

/**
 * The Event of a Ready transition, as every reconciler reports it: Normal when the object became Ready,
 * Warning when it stopped being, with the new Ready condition's reason and message. Nothing when
 * readiness did not change, so a steady state records nothing.
 */
export function recordReadyTransition(
  events: { event(...args: Parameters<EventRecorder['event']>): unknown } | undefined,
  regarding: KubernetesObject,
  previous: readonly Condition[] | undefined,
  next: { ready: boolean; status: { conditions?: readonly Condition[] | undefined } },
  action: string,
): void {
  const READY = 'Ready';
  if (!events || isConditionTrue(previous, READY) === next.ready) return;
  const ready = findCondition(next.status.conditions, READY);
  void events.event(
    regarding,
    next.ready ? 'Normal' : 'Warning',
    ready?.reason ?? READY,
    ready?.message ?? '',
    action,
  );
}
