/**
 * Tailnet → cluster through the Gateway: the published services of mode HTTP
 * (`spec.tailnets[].ingress.services[]` with `mode: HTTP`) and what each becomes in Envoy — a virtual
 * host of its own on the joined Gateway whose domains are the names tailnet clients use, with one
 * route (`routeGeneration.ingress.pathPrefix`) to a cluster of the target Service.
 *
 * The services reconciler (status `hosts`), the ingress proxies' serve config (the Web key is the DNS
 * name) and the translate hook (virtual hosts and clusters) all start here, so the name a proxy
 * serves, the domain Envoy matches and the status a user reads cannot disagree.
 *
 * Decisions:
 * - Domains: the service's MagicDNS name (`<name>.<suffix>`, known once the TailscaleTailnet reports
 *   its suffix; this is the Host the proxies pass on, since `tailscale serve` keeps the client's Host),
 *   then the expanded `hostPattern` (`{service}` is the published name, `{tailnet}` the attachment
 *   name), for clients that reach the service under a name of the user's own DNS.
 * - Names are `tailscale/<namespace>/<tsgw>/ingress/<attachment>/<service>`: five segments after the
 *   prefix, so never equal to an endpoints cluster (two or three), and `isGeneratedName` holds, so
 *   earlier output is replaced rather than duplicated.
 *
 * @module
 */
import type { PublishedService, TailscaleGateway } from '../api/index.ts';
import { namespaceOf } from '../kube/object-key.ts';
import { NAME_PREFIX } from './names.ts';
import { expandPattern, normalizePrefix } from './route-generation.ts';

export interface IngressService {
  /** Name of the virtual host, its route and its cluster. */
  name: string;
  /** The TailscaleGateway's namespace and name. */
  namespace: string;
  tailscaleGateway: string;
  /** spec.tailnets[].name. */
  attachment: string;
  published: PublishedService;
  /** Virtual-host domains, DNS name first; empty never (the hostPattern always yields one). */
  hosts: string[];
  /** The expanded pathPrefix, ending in `/`. */
  pathPrefix: string;
  /** The target Service's cluster DNS name and port. */
  targetHost: string;
  targetPort: number;
  /** The protocol the proxies serve to tailnet clients. */
  protocol: 'HTTP' | 'HTTPS';
}

export function ingressName(namespace: string, tsgw: string, attachment: string, service: string): string {
  return `${NAME_PREFIX}${namespace}/${tsgw}/ingress/${attachment}/${service}`;
}

const INGRESS_NAME = new RegExp(`^${NAME_PREFIX}[^/]*/[^/]*/ingress/[^/]*/[^/]*$`);

/** True for a name {@link ingressName} builds (Envoy Gateway's six-segment ListenerSet names look alike). */
export const isIngressName = (name: string): boolean => INGRESS_NAME.test(name);

/** The domains of a published service's virtual host: DNS name (when known), then the hostPattern. */
export function ingressHosts(
  hostPattern: string,
  values: { service: string; tailnet: string },
  dnsName: string | undefined,
): string[] {
  const hosts = dnsName ? [dnsName.toLowerCase()] : [];
  const pattern = expandPattern(hostPattern, values).toLowerCase();
  if (!hosts.includes(pattern)) hosts.push(pattern);
  return hosts;
}

/**
 * The mode-HTTP services of one TailscaleGateway, in spec order. The DNS name comes from the object's
 * own status (the services reconciler writes `<name>.<suffix>` there); `dnsNames` overrides it for the
 * reconciler, which computes the status being written.
 */
export function ingressServicesOf(
  tsgw: TailscaleGateway,
  clusterDomain: string,
  dnsNames?: ReadonlyMap<string, string>,
): IngressService[] {
  const namespace = namespaceOf(tsgw);
  const out: IngressService[] = [];
  for (const attachment of tsgw.spec.tailnets) {
    const ingress = attachment.ingress;
    if (!ingress) continue;
    const template = attachment.routeGeneration.ingress;
    for (const published of ingress.services) {
      if (published.mode !== 'HTTP' || published.target.port === undefined) continue;
      const key = `${attachment.name}/${published.name}`;
      const dnsName =
        dnsNames?.get(key) ??
        tsgw.status?.services?.find((s) => s.tailnet === attachment.name && s.name === published.name)
          ?.dnsName;
      const values = { service: published.name, tailnet: attachment.name };
      out.push({
        name: ingressName(namespace, tsgw.metadata.name, attachment.name, published.name),
        namespace,
        tailscaleGateway: tsgw.metadata.name,
        attachment: attachment.name,
        published,
        hosts: ingressHosts(template.hostPattern, values, dnsName),
        pathPrefix: normalizePrefix(expandPattern(template.pathPrefix, values)),
        targetHost: `${published.target.name}.${published.target.namespace ?? namespace}.svc.${clusterDomain}`,
        targetPort: published.target.port,
        protocol: template.protocol,
      });
    }
  }
  return out;
}
