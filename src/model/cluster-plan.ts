/**
 * Which endpoints make one Envoy cluster, and what of their spec one cluster cannot carry. The hooks
 * build clusters from these plans and the operator reports the same plans' problems on the
 * TailscaleEndpoints (condition `ClustersConsistent`, src/resources/tailscale-gateway/tailscale-endpoints-routes.ts),
 * so what Envoy gets and what the status says cannot disagree.
 *
 * Decisions:
 * - A backendRef's `port` selects the endpoints serving that port, as it selects a Service's port:
 *   several endpoints on one port are one service (replicas, failover tiers); different ports are
 *   different services. Without a port the object must hold one service: HTTP and HTTPS endpoints on
 *   one port. Otherwise nothing is guessed (`port-required`): balancing two services together, or
 *   picking one, would both be wrong for someone.
 * - TCP and UDP endpoints never join a cluster of an HTTPRoute or a generated route, which carry HTTP.
 * - One cluster speaks one protocol (one transport socket: plaintext or TLS), so HTTP and HTTPS
 *   endpoints never share one (`mixed-protocols`); the cluster is left without endpoints rather than
 *   half of them being spoken to wrongly. HTTPS endpoints of different names do share one: each is
 *   verified against its own name (clusters.ts).
 * - One cluster has one active health checker, so endpoints asking for different checks (path,
 *   interval, timeout, thresholds) are all probed as the preferred one asks (`health-checks-merged`):
 *   the cluster is built, and the difference is said. Endpoints without a check stay unchecked.
 *
 * @module
 */
import type { Endpoint, HealthCheck, TailscaleEndpoints } from '../api/index.ts';
import { namespaceOf } from '../kube/object-key.ts';
import { byPriority, type ClusterMember, routableByHttp } from './cluster-members.ts';

/** A backendRef naming a TailscaleEndpoints, as far as its cluster is concerned. */
export interface BackendSelection {
  endpoints: TailscaleEndpoints;
  /** The backendRef's port; undefined when it has none, or when it is not known. */
  port: number | undefined;
}

/** The problems a plan can have (the condition reports each with a reason of its own). */
export type ClusterProblemKind =
  | 'mixed-protocols'
  | 'port-required'
  | 'no-matching-endpoints'
  | 'health-checks-merged';

export interface ClusterProblem {
  kind: ClusterProblemKind;
  /** `namespace/name` of every TailscaleEndpoints it concerns, sorted. */
  objects: string[];
  message: string;
  /** True when it keeps endpoints out of the cluster (all of them, or one backendRef's). */
  refused: boolean;
}

export interface ClusterPlan {
  members: ClusterMember[];
  problems: ClusterProblem[];
}

export const endpointsKey = (endpoints: TailscaleEndpoints): string =>
  `${namespaceOf(endpoints)}/${endpoints.metadata.name}`;

const memberName = (m: ClusterMember) => `${endpointsKey(m.endpoints)}/${m.endpoint.name}`;

/** `a`, `a and b`, `a, b and c`. */
const listed = (items: readonly string[]): string =>
  items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`;

/** Ports with the endpoints serving each, in port order: `80 (httpbin), 3000 (grafana)`. */
function portsOf(endpoints: readonly Endpoint[]): string[] {
  const byPort = new Map<number, string[]>();
  for (const e of endpoints) byPort.set(e.port, [...(byPort.get(e.port) ?? []), e.name]);
  return [...byPort].sort(([a], [b]) => a - b).map(([port, names]) => `${port} (${names.join(', ')})`);
}

/** The endpoints one backendRef selects, or the problem that keeps them all out. */
function select(selection: BackendSelection): { chosen: Endpoint[] } | { problem: ClusterProblem } {
  const key = endpointsKey(selection.endpoints);
  const all = selection.endpoints.spec.endpoints;
  const http = all.filter(routableByHttp);
  const refuse = (kind: ClusterProblemKind, message: string) => ({
    problem: { kind, objects: [key], message, refused: true },
  });
  const { port } = selection;
  if (port === undefined) {
    if (http.length === 0) {
      const others = all.map((e) => `${e.name} speaks ${e.protocol}`);
      return refuse(
        'no-matching-endpoints',
        `${key} has no HTTP or HTTPS endpoint${others.length > 0 ? ` (${others.join(', ')})` : ''}, which an HTTPRoute cannot carry`,
      );
    }
    const ports = portsOf(http);
    if (ports.length > 1)
      return refuse(
        'port-required',
        `${key} serves HTTP on several ports, ${listed(ports)}: set the backendRef port to one of them`,
      );
    return { chosen: http };
  }
  const chosen = http.filter((e) => e.port === port);
  if (chosen.length > 0) return { chosen };
  const elsewhere = all
    .filter((e) => e.port === port)
    .map((e) => `${e.name} speaks ${e.protocol} there`)
    .join(', ');
  const available = http.length > 0 ? `; HTTP and HTTPS ports: ${portsOf(http).join(', ')}` : '';
  return refuse(
    'no-matching-endpoints',
    `no HTTP or HTTPS endpoint of ${key} serves port ${port}` +
      (elsewhere === '' ? '' : ` (${elsewhere}, which an HTTPRoute cannot carry)`) +
      available,
  );
}

/** The cluster of one HTTPRoute rule (or one backendRef of it) naming TailscaleEndpoints. */
export function planBackendCluster(selections: readonly BackendSelection[]): ClusterPlan {
  const problems: ClusterProblem[] = [];
  const members: ClusterMember[] = [];
  // The same object and port twice (two backendRefs to it) would double its hosts' share.
  const seen = new Set<string>();
  for (const selection of selections) {
    const key = `${endpointsKey(selection.endpoints)}:${selection.port ?? ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const result = select(selection);
    if ('problem' in result) problems.push(result.problem);
    else members.push(...result.chosen.map((endpoint) => ({ endpoints: selection.endpoints, endpoint })));
  }
  return checkMembers(members, problems);
}

/**
 * The failover cluster of an object whose HTTP and HTTPS endpoints span several priorities (the
 * generated `/tailscale/<object>/` route), or undefined when they do not.
 */
export function planFailover(endpoints: TailscaleEndpoints): ClusterPlan | undefined {
  const routable = endpoints.spec.endpoints.filter(routableByHttp);
  if (new Set(routable.map((e) => e.priority)).size <= 1) return undefined;
  return checkMembers(
    routable.map((endpoint) => ({ endpoints, endpoint })),
    [],
  );
}

const objectsOf = (members: readonly ClusterMember[]) =>
  [...new Set(members.map((m) => endpointsKey(m.endpoints)))].sort();

/** Protocol and health-check agreement of the members of one cluster. */
function checkMembers(members: ClusterMember[], problems: ClusterProblem[]): ClusterPlan {
  const protocols = new Set(members.map((m) => m.endpoint.protocol));
  if (protocols.size > 1) {
    const byProtocol = byPriority(members).map((m) => `${memberName(m)} (${m.endpoint.protocol})`);
    problems.push({
      kind: 'mixed-protocols',
      objects: objectsOf(members),
      refused: true,
      message:
        `${listed(byProtocol)} would share one cluster, but Envoy speaks one protocol to a cluster: ` +
        'list them in separate TailscaleEndpoints or on separate ports',
    });
    return { members: [], problems };
  }
  const merged = healthChecksMerged(members);
  if (merged) problems.push(merged);
  return { members, problems };
}

type EnabledCheck = HealthCheck & { enabled: true };

const checkSignature = (c: HealthCheck) =>
  JSON.stringify([c.path, c.interval, c.timeout, c.healthyThreshold, c.unhealthyThreshold]);

function healthChecksMerged(members: readonly ClusterMember[]): ClusterProblem | undefined {
  const checked = byPriority(members).filter((m) => m.endpoint.healthCheck?.enabled) as (ClusterMember & {
    endpoint: { healthCheck: EnabledCheck };
  })[];
  const distinct = new Map<string, (typeof checked)[number]>();
  for (const m of checked) {
    const signature = checkSignature(m.endpoint.healthCheck);
    if (!distinct.has(signature)) distinct.set(signature, m);
  }
  if (distinct.size <= 1) return undefined;
  const checks = [...distinct.values()].map((m) => m.endpoint.healthCheck);
  const differ = (pick: (c: HealthCheck) => unknown) => new Set(checks.map(pick)).size > 1;
  const describe = (c: HealthCheck) =>
    [
      `path ${c.path}`,
      `every ${c.interval}`,
      ...(differ((x) => x.timeout) ? [`timeout ${c.timeout}`] : []),
      ...(differ((x) => `${x.healthyThreshold}/${x.unhealthyThreshold}`)
        ? [`healthy after ${c.healthyThreshold}, unhealthy after ${c.unhealthyThreshold}`]
        : []),
    ].join(', ');
  const preferred = [...distinct.values()][0]!;
  return {
    kind: 'health-checks-merged',
    objects: objectsOf(checked),
    refused: false,
    message:
      `${listed([...distinct.values()].map((m) => `${memberName(m)} (${describe(m.endpoint.healthCheck)})`))} ` +
      `ask for different health checks, but Envoy runs one health checker per cluster: all are probed as ${memberName(preferred)} is`,
  };
}
