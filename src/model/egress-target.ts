/**
 * Where traffic from the cluster to one tailnet endpoint goes. One function, used by the extension
 * hooks (the clusters they add point here) and by the proxy controller (the Services it creates are
 * named here), so the two can never disagree.
 *
 * Order: the operator's egress proxy Service when the TailscaleEndpoints runs egress proxies and the
 * endpoint has a tailnet address; else the endpoint's `externalTarget`; else the tailnet address itself
 * (Envoy must then be on the tailnet).
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { Endpoint, TailscaleEndpoints } from '../api/index.ts';
import { namespaceOf } from '../kube/object-key.ts';

/** Kubernetes' default cluster DNS domain: the `clusterDomain` setting's default, and every fallback to it. */
export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';

export type EgressTarget =
  /** The egress proxy Service in the cluster. */
  | { via: 'egress-proxy'; host: string; port: number; serviceName: string; namespace: string }
  /** `externalTarget`, reached directly. */
  | { via: 'external-target'; host: string; port: number }
  /** The tailnet IP or MagicDNS name, reached directly. */
  | { via: 'tailnet'; host: string; port: number };

export interface EgressTargetOptions {
  /**
   * Whether the operator runs proxies (true in `run`). Standalone mode has no cluster and no proxies, so
   * it routes to `externalTarget` or the tailnet address directly. Default true.
   */
  proxies?: boolean;
  /** The cluster's DNS domain. Default `cluster.local`. */
  clusterDomain?: string;
}

export function egressTarget(
  endpoints: TailscaleEndpoints,
  endpoint: Endpoint,
  options: EgressTargetOptions = {},
): EgressTarget {
  const connectionType = endpoints.spec.proxy?.connectionType ?? 'bidirectional';
  const onTailnet = endpoint.tailscaleIP !== undefined || endpoint.tailscaleFQDN !== undefined;
  // Egress proxies forward to tailnet addresses only; an endpoint known just by its externalTarget is
  // outside the tailnet, so the cluster reaches it directly.
  if ((options.proxies ?? true) && connectionType !== 'ingress' && onTailnet) {
    const namespace = namespaceOf(endpoints);
    const serviceName = egressServiceName(endpoints.metadata.name, endpoint.name);
    return {
      via: 'egress-proxy',
      serviceName,
      namespace,
      host: `${serviceName}.${namespace}.svc.${options.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN}`,
      port: endpoint.port,
    };
  }
  if (endpoint.externalTarget) {
    const split = endpoint.externalTarget.lastIndexOf(':');
    const host = endpoint.externalTarget.slice(0, split).replace(/^\[(.*)\]$/, '$1');
    return { via: 'external-target', host, port: Number(endpoint.externalTarget.slice(split + 1)) };
  }
  const host = endpoint.tailscaleIP ?? endpoint.tailscaleFQDN!.replace(/\.$/, '');
  return { via: 'tailnet', host, port: endpoint.port };
}

const MAX_SERVICE_NAME = 63;

/**
 * `<endpoints>-<endpoint>-egress`, shortened with a stable hash suffix when it would exceed the 63
 * characters a Service name may have.
 */
export function egressServiceName(endpointsName: string, endpointName: string): string {
  const full = `${endpointsName}-${endpointName}-egress`;
  if (full.length <= MAX_SERVICE_NAME) return full;
  const hash = createHash('sha256').update(full).digest('hex').slice(0, 8);
  const suffix = `-${hash}-egress`;
  return `${full.slice(0, MAX_SERVICE_NAME - suffix.length).replace(/-+$/, '')}${suffix}`;
}
