/**
 * The unit clusters and routes are planned from, shared by the model (route generation, the failover
 * plan) and the xDS builders, so the model does not import the xDS layer above it.
 *
 * @module
 */
import type { Endpoint, TailscaleEndpoints } from '../api/index.ts';

/** One endpoint of one TailscaleEndpoints object: the unit a cluster is built from. */
export interface ClusterMember {
  endpoints: TailscaleEndpoints;
  endpoint: Endpoint;
}

/** Protocols an Envoy HTTP route or cluster can carry; UDP services are not reachable through one. */
export const routableByHttp = (endpoint: Endpoint): boolean =>
  endpoint.protocol === 'HTTP' || endpoint.protocol === 'HTTPS';

/** Members ordered as Envoy should prefer them: priority, then spec order (stable sort). */
export const byPriority = (members: readonly ClusterMember[]): ClusterMember[] =>
  [...members].sort((a, b) => a.endpoint.priority - b.endpoint.priority);
