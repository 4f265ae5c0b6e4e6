/**
 * Envoy clusters for tailnet endpoints. One builder serves three callers: the per-endpoint cluster
 * and the failover cluster that PostTranslateModify adds, and the custom-backend cluster that
 * PostClusterModify rewrites. Keeping one builder means a TailscaleEndpoints object behaves the same
 * however it is reached.
 *
 * @module
 */

import { isIP } from 'node:net';
import { create, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { durationFromMs } from '@bufbuild/protobuf/wkt';
import {
  type Cluster,
  Cluster_DiscoveryType,
  Cluster_DnsLookupFamily,
  type Cluster_TransportSocketMatch,
  Cluster_TransportSocketMatchSchema,
  ClusterSchema,
} from '../../../gen/envoy/config/cluster/v3/cluster_pb.ts';
import {
  type OutlierDetection,
  OutlierDetectionSchema,
} from '../../../gen/envoy/config/cluster/v3/outlier_detection_pb.ts';
import { type TransportSocket, TransportSocketSchema } from '../../../gen/envoy/config/core/v3/base_pb.ts';
import { type HealthCheck, HealthCheckSchema } from '../../../gen/envoy/config/core/v3/health_check_pb.ts';
import type { LocalityLbEndpointsSchema } from '../../../gen/envoy/config/endpoint/v3/endpoint_components_pb.ts';
import {
  type ClusterLoadAssignment,
  ClusterLoadAssignmentSchema,
} from '../../../gen/envoy/config/endpoint/v3/endpoint_pb.ts';
import {
  CertificateValidationContextSchema,
  SubjectAltNameMatcher_SanType,
} from '../../../gen/envoy/extensions/transport_sockets/tls/v3/common_pb.ts';
import type { Endpoint } from '../../api/index.ts';
import { byPriority, type ClusterMember, routableByHttp } from '../../model/cluster-members.ts';
import { endpointsKey } from '../../model/cluster-plan.ts';
import { type EgressTarget, type EgressTargetOptions, egressTarget } from '../../model/egress-target.ts';
import type { RemoteMember, RemoteMembers } from '../../model/remote-endpoints.ts';
import { toDuration } from './duration.ts';

/** Envoy Gateway's own connect timeout for backend clusters; ours match so behaviour is uniform. */
const CONNECT_TIMEOUT_MS = 10_000;

/**
 * Where EG's Envoy image (and most distributions) keep the system CA bundle. Tailnet HTTPS services
 * usually present publicly trusted certificates (`tailscale cert` issues them from Let's Encrypt).
 */
export const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/**
 * The name the service answers to (Host header, TLS SNI and certificate): the external target's host
 * when traffic goes there, else the MagicDNS name. Undefined when only an IP is known.
 */
export function serviceHostName(endpoint: Endpoint, target: EgressTarget): string | undefined {
  if (target.via === 'external-target') return isIP(target.host) ? undefined : target.host;
  return endpoint.tailscaleFQDN?.replace(/\.$/, '');
}

/**
 * Envoy priorities must be dense (0, 1, 2, …); the API allows gaps (0 and 5), so spec priorities are
 * mapped to their rank.
 */
export function priorityRanks(members: readonly ClusterMember[]): Map<number, number> {
  const distinct = [...new Set(members.map((m) => m.endpoint.priority))].sort((a, b) => a - b);
  return new Map(distinct.map((priority, rank) => [priority, rank]));
}

interface ResolvedMember extends ClusterMember {
  target: EgressTarget;
  hostName: string | undefined;
  /** What the service should see as Host and be probed with: never the proxy's or the cluster's name. */
  logicalHost: string;
}

/** A TCP socket address of an endpoint (host name or IP). */
const socketAddress = (host: string, port: number) => ({
  address: {
    case: 'socketAddress' as const,
    value: { address: host, portSpecifier: { case: 'portValue' as const, value: port } },
  },
});

/** The endpoint metadata namespace Envoy matches `transport_socket_matches` against. */
const TRANSPORT_SOCKET_MATCH = 'envoy.transport_socket_match';
/** Our key in it: the name an HTTPS endpoint's TLS is verified against (empty: none known). */
const TLS_NAME_KEY = 'tailscale-gateway.tls-name';

/**
 * The inline load assignment: one locality per endpoint, at the endpoint's (ranked) priority. With
 * `tlsNames`, each endpoint carries the name its transport socket is matched by (see buildAddressing).
 */
export function buildLoadAssignment(
  clusterName: string,
  members: readonly ResolvedMember[],
  tlsNames = false,
): ClusterLoadAssignment {
  const ranks = priorityRanks(members);
  const healthChecked = members.some((m) => m.endpoint.healthCheck?.enabled);
  const localities: MessageInitShape<typeof LocalityLbEndpointsSchema>[] = members.map((m) => ({
    // The endpoint's name as sub-zone makes each endpoint visible in Envoy's stats and admin output.
    locality: { subZone: `${m.endpoints.metadata.name}/${m.endpoint.name}` },
    priority: ranks.get(m.endpoint.priority) ?? 0,
    loadBalancingWeight: m.endpoint.weight,
    lbEndpoints: [
      {
        ...(tlsNames
          ? { metadata: { filterMetadata: { [TRANSPORT_SOCKET_MATCH]: tlsMatch(m.hostName) } } }
          : {}),
        loadBalancingWeight: m.endpoint.weight,
        hostIdentifier: {
          case: 'endpoint',
          value: {
            address: socketAddress(m.target.host, m.target.port),
            // Envoy uses it for auto_host_rewrite: the service sees its own name, not the proxy's.
            hostname: m.logicalHost,
            // Without it an HTTP probe's Host would be the cluster name.
            healthCheckConfig:
              healthChecked && !m.endpoint.healthCheck?.enabled
                ? { disableActiveHealthCheck: true }
                : { hostname: m.logicalHost },
          },
        },
      },
    ],
  }));
  return create(ClusterLoadAssignmentSchema, { clusterName, endpoints: localities });
}

/**
 * Active health checking from the first member that enables it (members come highest priority
 * first). Envoy has one checker per cluster, so a cluster whose endpoints ask for different checks
 * probes all of them as the preferred endpoint asks; cluster-plan.ts reports it.
 *
 * `no_traffic_interval` is the endpoint's interval too: Envoy's default (60 s) applies to a cluster
 * that has not carried traffic yet — every cluster just added, and every cluster EG re-sends after any
 * edit — and the probe armed then waits the full 60 s even once traffic starts. On the node
 * (test/node/failover.test.ts) that left a stopped priority-0 device unnoticed by the 1 s probes it
 * asked for: traffic moved only when outlier detection counted connect timeouts (10 s), and came back
 * only when the 30 s ejection ended.
 */
export function buildHealthChecks(members: readonly ClusterMember[]): HealthCheck[] {
  const first = members.find((m) => m.endpoint.healthCheck?.enabled);
  const check = first?.endpoint.healthCheck;
  if (first === undefined || check === undefined) return [];
  const http = routableByHttp(first.endpoint);
  return [
    create(HealthCheckSchema, {
      timeout: toDuration(check.timeout),
      interval: toDuration(check.interval),
      noTrafficInterval: toDuration(check.interval),
      healthyThreshold: check.healthyThreshold,
      unhealthyThreshold: check.unhealthyThreshold,
      healthChecker: http
        ? { case: 'httpHealthCheck', value: { path: check.path } }
        : { case: 'tcpHealthCheck', value: {} },
    }),
  ];
}

/**
 * Passive checking: hosts answering 5xx or refusing connections are ejected, which lowers their
 * priority's health and moves traffic to the next priority even between active probes. 100% may be
 * ejected, or a dead primary would keep a share of traffic instead of failing over.
 */
export function buildOutlierDetection(): OutlierDetection {
  return create(OutlierDetectionSchema, {
    consecutive5xx: 5,
    consecutiveGatewayFailure: 3,
    enforcingConsecutiveGatewayFailure: 100,
    interval: durationFromMs(10_000),
    baseEjectionTime: durationFromMs(30_000),
    maxEjectionPercent: 100,
  });
}

const UPSTREAM_TLS_CONTEXT =
  'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
/** UpstreamTlsContext.common_tls_context, UpstreamTlsContext.sni, CommonTlsContext.validation_context. */
const UPSTREAM_COMMON_TLS_CONTEXT = 1;
const UPSTREAM_SNI = 2;
const COMMON_VALIDATION_CONTEXT = 3;

/**
 * TLS to the service, verified against the system CAs and, when the name is known, the name. The
 * generated code has no UpstreamTlsContext (tls.proto is not in the extension protocol's closure), so
 * its two outer messages are written by field number around a generated CertificateValidationContext.
 */
export function buildUpstreamTls(hostName: string | undefined): TransportSocket {
  const validation = create(CertificateValidationContextSchema, {
    trustedCa: { specifier: { case: 'filename', value: SYSTEM_CA_BUNDLE } },
    matchTypedSubjectAltNames:
      hostName === undefined
        ? []
        : [
            {
              sanType: SubjectAltNameMatcher_SanType.DNS,
              matcher: { matchPattern: { case: 'exact', value: hostName } },
            },
          ],
  });
  const common = new BinaryWriter()
    .tag(COMMON_VALIDATION_CONTEXT, WireType.LengthDelimited)
    .bytes(toBinary(CertificateValidationContextSchema, validation))
    .finish();
  const upstream = new BinaryWriter()
    .tag(UPSTREAM_COMMON_TLS_CONTEXT, WireType.LengthDelimited)
    .bytes(common);
  if (hostName !== undefined) upstream.tag(UPSTREAM_SNI, WireType.LengthDelimited).string(hostName);
  return create(TransportSocketSchema, {
    name: 'envoy.transport_sockets.tls',
    configType: { case: 'typedConfig', value: { typeUrl: UPSTREAM_TLS_CONTEXT, value: upstream.finish() } },
  });
}

/** `remote`: the snapshot's remote members (`ResourceSnapshot.remoteMembersByEndpoints`). */
export function resolveMembers(
  members: readonly ClusterMember[],
  options: EgressTargetOptions,
  remote: RemoteMembers,
): ResolvedMember[] {
  const local = byPriority(members).map((m) => {
    const target = egressTarget(m.endpoints, m.endpoint, options);
    const hostName = serviceHostName(m.endpoint, target);
    return { ...m, target, hostName, logicalHost: hostName ?? m.endpoint.tailscaleIP ?? target.host };
  });
  return [...local, ...resolveRemote(local, remote)];
}

/** Priority of remote members: above the API's highest (10), so they rank after every local one. */
const REMOTE_PRIORITY = 11;

/**
 * Cross-cluster failover (src/model/remote-endpoints.ts): the VIP of a Tailscale Service other clusters
 * publish too, one priority below the object's own endpoints, reached at the VIP directly (Envoy's
 * network must route the tailnet), presenting the preferred member's name (Host, SNI).
 */
function resolveRemote(local: readonly ResolvedMember[], members: RemoteMembers): ResolvedMember[] {
  const out: ResolvedMember[] = [];
  const seen = new Set<string>();
  for (const preferred of local) {
    const owner = endpointsKey(preferred.endpoints);
    for (const remote of members.get(owner) ?? []) {
      const key = `${owner}/${remote.service}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const port = remotePort(remote, preferred.endpoint);
      const endpoint: Endpoint = {
        name: `remote-${remote.service.replace(/^svc:/, '')}`,
        port,
        protocol: preferred.endpoint.protocol,
        weight: 1,
        priority: REMOTE_PRIORITY,
        tailscaleIP: remote.address,
      };
      out.push({
        endpoints: preferred.endpoints,
        endpoint,
        target: { via: 'tailnet', host: remote.address, port },
        hostName: preferred.hostName,
        logicalHost: preferred.logicalHost,
      });
    }
  }
  return out;
}

/** The service port matching the endpoint's, else the protocol's usual one, else the first. */
function remotePort(remote: RemoteMember, endpoint: Endpoint): number {
  if (remote.ports.includes(endpoint.port)) return endpoint.port;
  const usual = endpoint.protocol === 'HTTPS' ? 443 : endpoint.protocol === 'HTTP' ? 80 : undefined;
  if (usual !== undefined && remote.ports.includes(usual)) return usual;
  return remote.ports[0] ?? endpoint.port;
}

/** The parts of a cluster that say where the hosts are and how they are checked. */
export interface ClusterAddressing {
  discovery: Cluster_DiscoveryType;
  loadAssignment: ClusterLoadAssignment;
  healthChecks: HealthCheck[];
  outlierDetection: OutlierDetection;
  /** Set when the endpoints speak HTTPS: TLS verified against the preferred endpoint's name. */
  transportSocket: TransportSocket | undefined;
  /** The TLS of HTTPS endpoints of other names, matched by their metadata; empty when all share one. */
  transportSocketMatches: Cluster_TransportSocketMatch[];
}

const tlsMatch = (hostName: string | undefined) => ({ [TLS_NAME_KEY]: hostName ?? '' });

/**
 * TLS for every HTTPS name among the members: the preferred one's as the cluster's socket, each other
 * as a match on the endpoint metadata buildLoadAssignment writes. A failover standby is another device,
 * so another MagicDNS name and certificate; verified against the preferred endpoint's name, its
 * handshake would fail exactly when it is needed.
 */
function buildTls(resolved: readonly ResolvedMember[]): {
  transportSocket: TransportSocket | undefined;
  transportSocketMatches: Cluster_TransportSocketMatch[];
} {
  const preferred = resolved[0];
  if (preferred?.endpoint.protocol !== 'HTTPS')
    return { transportSocket: undefined, transportSocketMatches: [] };
  const others = [...new Set(resolved.map((m) => m.hostName))].filter((name) => name !== preferred.hostName);
  return {
    transportSocket: buildUpstreamTls(preferred.hostName),
    transportSocketMatches: others.map((hostName, i) =>
      create(Cluster_TransportSocketMatchSchema, {
        name: `tls-name-${i + 1}`,
        match: tlsMatch(hostName),
        transportSocket: buildUpstreamTls(hostName),
      }),
    ),
  };
}

/**
 * STATIC when every host is an IP literal (no resolver involved, nothing to re-resolve), else
 * STRICT_DNS: it keeps every resolved address and re-resolves on the DNS TTL, which a proxy Service
 * with several ready pods and a MagicDNS name whose address changes both need. LOGICAL_DNS would fit a
 * single name but not a failover cluster of several, and one type for all keeps behaviour uniform.
 * The members speak one protocol (cluster-plan.ts sees to it); HTTPS ones each get TLS for their own
 * name (buildTls). No members: a cluster without endpoints, which Envoy answers with 503.
 */
export function buildAddressing(
  clusterName: string,
  members: readonly ClusterMember[],
  options: EgressTargetOptions,
  remote: RemoteMembers,
): ClusterAddressing {
  const resolved = resolveMembers(members, options, remote);
  const allIps = resolved.every((m) => isIP(m.target.host) !== 0);
  const tls = buildTls(resolved);
  return {
    discovery: allIps ? Cluster_DiscoveryType.STATIC : Cluster_DiscoveryType.STRICT_DNS,
    loadAssignment: buildLoadAssignment(clusterName, resolved, tls.transportSocketMatches.length > 0),
    healthChecks: buildHealthChecks(resolved),
    outlierDetection: buildOutlierDetection(),
    ...tls,
  };
}

/** A complete cluster of our own, for PostTranslateModify. */
export function buildCluster(
  name: string,
  members: readonly ClusterMember[],
  options: EgressTargetOptions,
  remote: RemoteMembers,
): Cluster {
  const addressing = buildAddressing(name, members, options, remote);
  return create(ClusterSchema, {
    name,
    clusterDiscoveryType: { case: 'type', value: addressing.discovery },
    connectTimeout: durationFromMs(CONNECT_TIMEOUT_MS),
    dnsLookupFamily: Cluster_DnsLookupFamily.V4_PREFERRED,
    loadAssignment: addressing.loadAssignment,
    healthChecks: addressing.healthChecks,
    outlierDetection: addressing.outlierDetection,
    transportSocket: addressing.transportSocket,
    transportSocketMatches: addressing.transportSocketMatches,
  });
}

/**
 * The cluster of a published service's target Service (ingress-generation.ts): plain HTTP to the
 * Service's cluster DNS name. STRICT_DNS, so a headless Service's every ready Pod is used and a
 * ClusterIP that changes is followed (re-resolved on the DNS TTL); EG's connect timeout, as for every
 * cluster of ours. No health checks or outlier detection: the Service already sends traffic to ready
 * Pods only, and ejecting its one ClusterIP would only turn errors into 503s.
 */
export function buildTargetCluster(name: string, host: string, port: number): Cluster {
  return create(ClusterSchema, {
    name,
    clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.STRICT_DNS },
    connectTimeout: durationFromMs(CONNECT_TIMEOUT_MS),
    dnsLookupFamily: Cluster_DnsLookupFamily.V4_PREFERRED,
    loadAssignment: {
      clusterName: name,
      endpoints: [
        {
          lbEndpoints: [
            {
              hostIdentifier: {
                case: 'endpoint',
                value: { address: socketAddress(host, port) },
              },
            },
          ],
        },
      ],
    },
  });
}
