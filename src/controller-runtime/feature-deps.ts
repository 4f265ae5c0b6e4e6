/**
 * What `run` hands every feature's setup alike, so each setup call names only what is its own. A setup
 * that needs less takes a subset by its own type; one that calls its Kubernetes client something else
 * (the proxy parents' `client`) is given `kube` under that name.
 *
 * @module
 */
import type { Registry } from 'prom-client';
import type { KubeClient } from '../kube/index.ts';
import type { Logger } from '../observability/logger.ts';
import type { Clock } from '../time/clock.ts';
import type { EventRecorder } from './events.ts';

export interface FeatureDeps {
  kube: KubeClient;
  events: EventRecorder;
  clock: Clock;
  log: Logger;
  /** The operator's metrics registry; every controller's `controller_runtime_*` series land in it. */
  registry: Registry;
}
