/**
 * Names of the xDS resources this extension adds. Both hooks that touch a generated service (the
 * virtual-host hook names the route and points it at a cluster; the translate hook creates that
 * cluster) derive names here, so the route's cluster reference and the cluster can never disagree.
 *
 * Names are `tailscale/<namespace>/<endpoints>[/<endpoint>]`: the prefix cannot collide with Envoy
 * Gateway's own names (which start with a route kind such as `httproute/`), the rest is unique
 * because Kubernetes names are, and a reader of an Envoy config dump sees where a resource came from.
 *
 * @module
 */

/** Every name this extension generates starts with it; used to find and replace earlier output. */
export const NAME_PREFIX = 'tailscale/';

/** The per-endpoint cluster, or the endpoints object's failover cluster when `endpoint` is omitted. */
export function clusterName(namespace: string, endpoints: string, endpoint?: string): string {
  return endpoint === undefined
    ? `${NAME_PREFIX}${namespace}/${endpoints}`
    : `${NAME_PREFIX}${namespace}/${endpoints}/${endpoint}`;
}

/** A generated route has the name of the cluster it forwards to: one route per cluster and vhost. */
export const routeName = clusterName;

/** True for a resource this extension generated (and so may replace). */
export const isGeneratedName = (name: string): boolean => name.startsWith(NAME_PREFIX);
