/**
 * Cross-cluster failover members: a Tailscale Service this cluster publishes (a TailscaleGateway's
 * `spec.tailnets[].ingress.services[]`) that other clusters publish too (`status.services[].remoteClusters`,
 * from the coordinator's registry) is also reachable there, at its VIP address. When the service names a
 * `tailscaleEndpoints`, that object's clusters get the VIP as a member one priority below its own
 * endpoints (src/extension/xds/clusters.ts).
 *
 * Computed from the TailscaleGateways in a snapshot (their status comes through the same informer) and
 * kept on the snapshot as a field of its own (`remoteMembersByEndpoints`, keyed by the TailscaleEndpoints'
 * `namespace/name`), not on the objects, so any copy of an object still has its members; the hooks read
 * it from the store like everything else, and the Gateway revision digest covers it, so Envoy Gateway
 * re-translates when it changes.
 *
 * @module
 */
import type { TailscaleGateway } from '../api/index.ts';
import { namespaceOf } from '../kube/object-key.ts';

/** One remote copy of a published service. */
export interface RemoteMember {
  /** `svc:<name>`. */
  service: string;
  /** The VIP address Envoy connects to (IPv4 first). */
  address: string;
  dnsName?: string;
  /** The service's TCP ports. */
  ports: number[];
  /** Cluster ids of the other clusters publishing it. */
  clusters: string[];
}

/** Remote members by TailscaleEndpoints key (`namespace/name`), as a snapshot holds them. */
export type RemoteMembers = ReadonlyMap<string, readonly RemoteMember[]>;

const PUBLISHED = new Set(['Published', 'Advertised']);

/** Remote members by TailscaleEndpoints key (`namespace/name`), sorted by service. */
export function remoteMembersByEndpoints(gateways: readonly TailscaleGateway[]): Map<string, RemoteMember[]> {
  const out = new Map<string, RemoteMember[]>();
  for (const tsgw of gateways) {
    const namespace = namespaceOf(tsgw);
    for (const attachment of tsgw.spec.tailnets) {
      for (const published of attachment.ingress?.services ?? []) {
        if (!published.tailscaleEndpoints) continue;
        const status = tsgw.status?.services?.find(
          (s) => s.tailnet === attachment.name && s.name === published.name,
        );
        const address = status?.addresses?.[0];
        if (!status || !PUBLISHED.has(status.state) || !address || !status.remoteClusters?.length) continue;
        const key = `${namespace}/${published.tailscaleEndpoints}`;
        const list = out.get(key) ?? [];
        if (list.some((m) => m.service === status.service)) continue;
        list.push({
          service: status.service,
          address,
          ...(status.dnsName ? { dnsName: status.dnsName } : {}),
          ports: [...published.ports],
          clusters: [...status.remoteClusters],
        });
        out.set(key, list);
      }
    }
  }
  for (const list of out.values()) list.sort((a, b) => a.service.localeCompare(b.service));
  return out;
}
