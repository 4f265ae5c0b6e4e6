/**
 * Tailscale Services hosted by an ingress TailscaleProxyGroup: which services its proxies serve and
 * advertise, for the TailscaleGateways whose `spec.tailnets[].ingress.proxyGroup` names it (pure).
 *
 * The rule (reference tailscale.md §2.4, and issue #18186 upstream: a host advertising a service it has
 * no configuration for is flagged): every advertised service has serve config. Both live in the same
 * config Secret, but tailscaled reloads the `cap-N.hujson` file and containerboot the serve config
 * separately, so the order is made explicit across writes, using what the cache shows each replica's
 * config Secret holds now:
 *
 * - serve config: every hosted service, plus every service a replica still advertises (kept until it is
 *   un-advertised, so un-advertising always comes first on removal);
 * - AdvertiseServices of replica i: the hosted services that are *published* (the TailscaleGateway's
 *   status says the coordinator has the Tailscale Service with us as a consumer: never a refused one)
 *   and whose serve block replica i's config Secret already holds.
 *
 * So a new service costs two writes of the config Secrets (serve config, then the advertisement) and a
 * removed one two (un-advertise, then drop the serve block); no written state ever advertises a service
 * without its serve config.
 *
 * A service of mode HTTP is served at layer 7 (serve's HTTP handler, which keeps the client's Host and
 * adds the caller's Tailscale-User-* headers) and proxied to the Gateway's Envoy. Its Web handler is
 * keyed by the service's MagicDNS name and its upstream is resolved by the services controller, so it is
 * hosted only once its status entry has both (`dnsName`, `upstream`); until then nothing is served for
 * it, so nothing can advertise it either.
 *
 * Served with HTTPS, it needs a certificate for its DNS name, which the group's replicas share (see
 * src/proxy/objects.ts): replica 0 obtains it once the serve block reaches it. Like the official
 * operator (cmd/k8s-operator/ingress-for-pg.go, maybeUpdateAdvertiseServicesConfig), the service is
 * advertised only once that Secret holds a certificate and key: the other replicas never issue one, so
 * before that they would fail every TLS handshake, and in a multi-cluster service the clients routed
 * here would fail while another cluster serves them. The Secret is wanted while any serve block with
 * the name is desired or still in a replica's config Secret, so it goes only after un-advertising and
 * after the serve block has left every config Secret; and while a TailscaleGateway still names the
 * service (`namedCertificateDomains`), so a service that only waits for a while (its Envoy Service gone)
 * keeps its certificate: Let's Encrypt issues 5 certificates for one name a week.
 *
 * A port whose handler changes type (a service switched between mode TCP and HTTP: `TCPForward` ↔
 * `HTTPS`/`HTTP` on 443 or 80) cannot change in one write: tailscaled refuses a serve config that
 * changes the serve type of a port a service already serves (`want to serve "https", but port 443 is
 * already serving "tcp" for svc:…`, ipn/ipnlocal/serve.go, validateServeConfigUpdate), and containerboot
 * exits on the refusal, so the proxy crash-loops on the config it is given. What tailscaled holds is
 * the serve config it applied last, which its kube store keeps in the replica's *state* Secret
 * (`appliedServeServicesOf`), not the one the config Secret asks for. So the plan first writes the
 * service without the ports whose applied handler type differs on any replica (`withoutPorts`), and
 * writes the new handler only once every replica's state shows that applied. A service mid-switch is
 * not advertised (its port serves nothing): if a replica still advertises it, its serve block stays as
 * written until it is un-advertised, as on removal.
 *
 * @module
 */

import type { KubernetesObject, V1Secret } from '@kubernetes/client-node';
import type { TailscaleGateway, TailscaleProxyGroup } from '../api/index.ts';
import { createdMs, namespaceOf } from '../kube/index.ts';
import { fieldsOf, listOf, specOf } from '../kube/object-fields.ts';
import {
  CURRENT_CAP_FILE,
  SERVE_CONFIG_KEY,
  type ServeServiceConfig,
  type ServeTCPHandler,
} from './config.ts';
import { STATE_KEYS, secretText } from './state.ts';

/** States of status.services in which the Tailscale Service exists with us attached. */
export const PUBLISHED_STATES: readonly string[] = ['Published', 'Advertised'];

export interface HostedService {
  /** `svc:<name>`. */
  service: string;
  /** The Tailscale Service's ports: mode TCP forwards each; mode HTTP serves its one port (443 or 80). */
  ports: number[];
  /** Host the proxies send traffic to: the target Service (TCP) or the Gateway's Envoy Service (HTTP). */
  targetHost: string;
  /** Mode HTTP: what the Web handler needs. Absent for layer-4 forwarding. */
  http?: HostedHttp;
  /** The coordinator holds the Tailscale Service for us: it may be advertised. */
  publishable: boolean;
  /** The TailscaleGateway (`namespace/name`) that asks for it. */
  source: string;
}

export interface HostedHttp {
  /** `<name>.<MagicDNS suffix>`: the serve Web key (the name clients connect to). */
  dnsName: string;
  /** `http://<envoy service>.<namespace>.svc.<cluster domain>:<listener port>`. */
  upstream: string;
  /** routeGeneration.ingress.protocol of the attachment: HTTPS on 443, HTTP on 80. */
  protocol: 'HTTP' | 'HTTPS';
}

/** The port a mode-HTTP service is served and declared on. */
export const httpServicePort = (protocol: 'HTTP' | 'HTTPS'): number => (protocol === 'HTTPS' ? 443 : 80);

const upstreamHost = (upstream: string) => {
  try {
    return new URL(upstream).hostname;
  } catch {
    return upstream;
  }
};

/** Objects without a creation time sort last. */
const createdAt = (obj: { metadata?: object }) => createdMs(obj) ?? Number.MAX_SAFE_INTEGER;

/** The ingress proxy groups (`namespace/name`) a TailscaleGateway's spec names. */
export function ingressProxyGroupsOf(tsgw: KubernetesObject): string[] {
  const namespace = namespaceOf(tsgw);
  const groups = new Set<string>();
  for (const attachment of listOf(specOf(tsgw).tailnets)) {
    const group = fieldsOf(fieldsOf(attachment).ingress).proxyGroup;
    if (typeof group === 'string' && group !== '') groups.add(`${namespace}/${group}`);
  }
  return [...groups];
}

/**
 * What `group` hosts: each service of each TailscaleGateway in its namespace whose ingress names it on
 * the group's tailnet. Two TailscaleGateways asking for the same service: the older (then by name)
 * decides the target; both are consumers of the one Tailscale Service anyway. A mode-HTTP service
 * whose status lacks its DNS name or upstream is not hosted yet, and still keeps the name from younger
 * objects (the older one decides, also while it waits).
 */
export function hostedServices(
  group: TailscaleProxyGroup,
  gateways: readonly TailscaleGateway[],
  clusterDomain: string,
): HostedService[] {
  if (group.spec.type !== 'ingress') return [];
  const namespace = namespaceOf(group);
  const candidates: { tsgw: TailscaleGateway; created: number }[] = [];
  for (const tsgw of gateways) {
    if (namespaceOf(tsgw) !== namespace || tsgw.metadata.deletionTimestamp) continue;
    candidates.push({ tsgw, created: createdAt(tsgw) });
  }
  candidates.sort(
    (a, b) => a.created - b.created || a.tsgw.metadata.name.localeCompare(b.tsgw.metadata.name),
  );
  const hosted = new Map<string, HostedService>();
  const claimed = new Set<string>();
  for (const { tsgw } of candidates) {
    const source = `${namespace}/${tsgw.metadata.name}`;
    for (const attachment of tsgw.spec.tailnets) {
      const ingress = attachment.ingress;
      if (ingress?.proxyGroup !== group.metadata.name) continue;
      if (attachment.tailscaleTailnetRef.name !== group.spec.tailnet) continue;
      for (const published of ingress.services) {
        const service = `svc:${published.name}`;
        if (claimed.has(service)) continue;
        claimed.add(service);
        const entry = tsgw.status?.services?.find(
          (s) => s.tailnet === attachment.name && s.name === published.name,
        );
        const publishable = entry !== undefined && PUBLISHED_STATES.includes(entry.state);
        if (published.mode === 'HTTP') {
          if (!entry?.dnsName || !entry.upstream) continue;
          const protocol = attachment.routeGeneration.ingress.protocol;
          hosted.set(service, {
            service,
            ports: [httpServicePort(protocol)],
            targetHost: upstreamHost(entry.upstream),
            http: { dnsName: entry.dnsName, upstream: entry.upstream, protocol },
            publishable,
            source,
          });
          continue;
        }
        hosted.set(service, {
          service,
          ports: [...published.ports],
          targetHost: `${published.target.name}.${published.target.namespace ?? namespace}.svc.${clusterDomain}`,
          publishable,
          source,
        });
      }
    }
  }
  return [...hosted.values()].sort((a, b) => a.service.localeCompare(b.service));
}

/**
 * The DNS names (`<name>.<MagicDNS suffix>`, as the services controller computes them) of the services
 * of mode HTTP served with HTTPS that TailscaleGateways name for `group`, hosted or not.
 */
export function namedCertificateDomains(
  group: TailscaleProxyGroup,
  gateways: readonly TailscaleGateway[],
  magicDNSSuffix: string | undefined,
): string[] {
  if (group.spec.type !== 'ingress' || !magicDNSSuffix) return [];
  const namespace = namespaceOf(group);
  const names = new Set<string>();
  for (const tsgw of gateways) {
    if (namespaceOf(tsgw) !== namespace || tsgw.metadata.deletionTimestamp) continue;
    for (const attachment of tsgw.spec.tailnets) {
      if (attachment.ingress?.proxyGroup !== group.metadata.name) continue;
      if (attachment.tailscaleTailnetRef.name !== group.spec.tailnet) continue;
      if (attachment.routeGeneration.ingress.protocol !== 'HTTPS') continue;
      for (const service of attachment.ingress.services) {
        const name = `${service.name}.${magicDNSSuffix}`;
        if (service.mode === 'HTTP' && SECRET_NAME.test(name)) names.add(name);
      }
    }
  }
  return [...names].sort();
}

/**
 * One service's serve block. Mode TCP: L4 forwarding of each port to the same port of the target.
 * Mode HTTP: serve's HTTP handler on 443 (HTTPS, a certificate for the DNS name) or 80, proxying every
 * path to the upstream; the Web key is `<DNS name>:<port>`, as tailscaled looks it up for a service VIP.
 */
export function serviceServeBlock(hosted: HostedService): ServeServiceConfig {
  if (hosted.http) {
    const port = String(httpServicePort(hosted.http.protocol));
    return {
      TCP: { [port]: hosted.http.protocol === 'HTTPS' ? { HTTPS: true } : { HTTP: true } },
      Web: { [`${hosted.http.dnsName}:${port}`]: { Handlers: { '/': { Proxy: hosted.http.upstream } } } },
    };
  }
  const tcp: Record<string, ServeTCPHandler> = {};
  for (const port of [...hosted.ports].sort((a, b) => a - b))
    tcp[String(port)] = { TCPForward: `${hosted.targetHost}:${port}` };
  return { TCP: tcp };
}

/** The `Services` of a config Secret's serve config, as written. */
export function serveServicesOf(config: V1Secret | undefined): Record<string, unknown> {
  const text = secretText(config, SERVE_CONFIG_KEY);
  if (!text) return {};
  try {
    const services = (JSON.parse(text) as { Services?: unknown }).Services;
    return services && typeof services === 'object' ? (services as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** `AdvertiseServices` of a config Secret's newest `cap-N.hujson`. */
export function advertisedServicesOf(config: V1Secret | undefined): string[] {
  const text = secretText(config, CURRENT_CAP_FILE);
  if (!text) return [];
  try {
    const list = (JSON.parse(text) as { AdvertiseServices?: unknown }).AdvertiseServices;
    return Array.isArray(list) ? list.filter((s): s is string => typeof s === 'string') : [];
  } catch {
    return [];
  }
}

export interface ServiceHostingPlan {
  /** The serve config's `Services`. */
  serveServices: Record<string, unknown>;
  /** AdvertiseServices per replica. */
  advertise: string[][];
  /** DNS names whose shared certificate Secret must exist: served with HTTPS now or still written. */
  certDomains: string[];
}

/** Whether a hosted service is served with HTTPS, so needs the shared certificate of its DNS name. */
export const needsCertificate = (hosted: HostedService): boolean => hosted.http?.protocol === 'HTTPS';

/** Whether a cert Secret holds a certificate and key (what tailscaled's kube store requires of it). */
export function certificateIssued(secret: KubernetesObject | undefined): boolean {
  const data = (secret as V1Secret | undefined)?.data;
  return Boolean(data?.['tls.crt'] && data['tls.key']);
}

/** A DNS name that can be a Secret's name (a DNS-1123 subdomain); others get no shared certificate. */
const SECRET_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** The DNS names served with HTTPS on 443 by serve blocks (`Services` of a serve config). */
export function httpsNamesOf(services: Record<string, unknown>): string[] {
  const names = new Set<string>();
  for (const block of Object.values(services)) {
    const { TCP, Web } = (block ?? {}) as { TCP?: Record<string, { HTTPS?: unknown }>; Web?: object };
    if (TCP?.['443']?.HTTPS !== true || !Web) continue;
    for (const hostPort of Object.keys(Web)) {
      const colon = hostPort.lastIndexOf(':');
      const host = hostPort.slice(0, colon);
      if (colon > 0 && hostPort.slice(colon + 1) === '443' && SECRET_NAME.test(host)) names.add(host);
    }
  }
  return [...names].sort();
}

/**
 * Serve types as tailscaled v1.102.2 tells handlers apart (ipn/ipnlocal/serve.go,
 * serveTypeFromPortHandler): what a port may not change in one step. `unknown` is a handler with none
 * of them set (tailscaled's -1).
 */
export type ServeType = 'http' | 'https' | 'tcp' | 'tls-terminated-tcp' | 'unknown';

/** The serve type of one `TCP` entry, checked in tailscaled's order. */
export function serveTypeOf(handler: unknown): ServeType {
  const h = (handler ?? {}) as {
    HTTP?: unknown;
    HTTPS?: unknown;
    TerminateTLS?: unknown;
    TCPForward?: unknown;
  };
  if (h.HTTP === true) return 'http';
  if (h.HTTPS === true) return 'https';
  if (typeof h.TerminateTLS === 'string' && h.TerminateTLS !== '') return 'tls-terminated-tcp';
  if (typeof h.TCPForward === 'string' && h.TCPForward !== '') return 'tcp';
  return 'unknown';
}

const tcpOf = (block: unknown): Record<string, unknown> => {
  const tcp = (block as { TCP?: unknown } | null | undefined)?.TCP;
  return tcp && typeof tcp === 'object' ? (tcp as Record<string, unknown>) : {};
};

/**
 * The `Services` of the serve config tailscaled applied last, from a replica's state Secret. tailscaled
 * stores it under `ipn.ServeConfigKey(profile)`, `_serve/<profile id>`, which its kube store writes as
 * `_serve_<profile id>` (keys outside `[A-Za-z0-9._-]` get `_`); the current profile is
 * `_current-profile`'s value, `profile-<id>`. It survives Pod restarts: a new Pod's tailscaled starts
 * from it, so it is what the next serve config must be a valid update of.
 */
export function appliedServeServicesOf(state: V1Secret | undefined): Record<string, unknown> {
  const profile = secretText(state, STATE_KEYS.currentProfile);
  if (!profile?.startsWith('profile-')) return {};
  const key = `_serve/${profile.slice('profile-'.length)}`.replace(/[^A-Za-z0-9._-]/g, '_');
  const text = secretText(state, key);
  if (!text) return {};
  try {
    const services = (JSON.parse(text) as { Services?: unknown } | null)?.Services;
    return services && typeof services === 'object' ? (services as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** The ports both serve blocks serve, with a different serve type: what tailscaled refuses to swap. */
export function conflictingPorts(applied: unknown, desired: unknown): number[] {
  const before = tcpOf(applied);
  const after = tcpOf(desired);
  return Object.keys(after)
    .filter((port) => port in before && serveTypeOf(before[port]) !== serveTypeOf(after[port]))
    .map(Number)
    .sort((a, b) => a - b);
}

/** A serve block without `ports`: their `TCP` entries and the Web servers (`<host>:<port>`) on them. */
export function withoutPorts(block: unknown, ports: readonly number[]): Record<string, unknown> {
  const drop = new Set(ports.map(String));
  const { TCP, Web, ...rest } = (block ?? {}) as { TCP?: unknown; Web?: unknown };
  const tcp = Object.fromEntries(Object.entries(tcpOf(block)).filter(([port]) => !drop.has(port)));
  const web =
    Web && typeof Web === 'object'
      ? Object.fromEntries(
          Object.entries(Web).filter(
            ([hostPort]) => !drop.has(hostPort.slice(hostPort.lastIndexOf(':') + 1)),
          ),
        )
      : {};
  return { ...rest, TCP: tcp, ...(Object.keys(web).length > 0 ? { Web: web } : {}) };
}

/** Whether `served` has every port of `desired` (whatever its handler): the block is there in full. */
const servesEveryPort = (served: unknown, desired: unknown) => {
  const ports = tcpOf(served);
  return Object.keys(tcpOf(desired)).every((port) => port in ports);
};

/**
 * The serve blocks, advertisements and certificate Secrets to write, from what is hosted, what each
 * replica's config Secret holds now (`observed[i]`, undefined when not created yet), whether the
 * certificate of a DNS name has been issued (false unless told: an HTTPS service is never advertised
 * without one), the certificates to keep besides (`namedCertificateDomains`) and each replica's state
 * Secret (`appliedStates[i]`: the serve config its tailscaled applied; none known, nothing withheld).
 *
 * A replica starts advertising a service once its config Secret has the service's block with every
 * port, and keeps advertising while any block is there (a port added to an advertised service costs
 * no outage), except while the service switches a port's serve type.
 */
export function planServiceHosting(
  hosted: readonly HostedService[],
  observed: readonly (V1Secret | undefined)[],
  certIssued: (dnsName: string) => boolean = () => false,
  keepCertificates: readonly string[] = [],
  appliedStates: readonly (V1Secret | undefined)[] = [],
): ServiceHostingPlan {
  const serveServices: Record<string, unknown> = {};
  for (const h of hosted) serveServices[h.service] = serviceServeBlock(h);
  // Still advertised somewhere: keep its serve block (as written) until it is un-advertised.
  for (const config of observed) {
    const served = serveServicesOf(config);
    for (const service of advertisedServicesOf(config))
      if (!(service in serveServices) && served[service] !== undefined)
        serveServices[service] = served[service];
  }
  // A port whose serve type changes: withheld until no replica's tailscaled serves the old type on it.
  const applied = appliedStates.map(appliedServeServicesOf);
  const conflictsOf = (service: string, block: unknown) =>
    new Set(applied.flatMap((services) => conflictingPorts(services[service], block)));
  const switching = new Set<string>();
  for (const [service, block] of Object.entries(serveServices)) {
    const ports = conflictsOf(service, block);
    if (ports.size === 0) continue;
    switching.add(service);
    // Un-advertised first: the block as written stays while a replica advertises the service, if
    // tailscaled takes it (a block it refuses, written before this rule, serves nothing anyway).
    const written = observed.map((config) => serveServicesOf(config)[service]).find((b) => b !== undefined);
    const advertised = observed.some((config) => advertisedServicesOf(config).includes(service));
    serveServices[service] =
      advertised && written !== undefined && conflictsOf(service, written).size === 0
        ? written
        : withoutPorts(block, [...ports]);
  }
  const advertise = observed.map((config) => {
    const served = serveServicesOf(config);
    const advertising = advertisedServicesOf(config);
    return hosted
      .filter(
        (h) =>
          h.publishable &&
          !switching.has(h.service) &&
          served[h.service] !== undefined &&
          (advertising.includes(h.service) || servesEveryPort(served[h.service], serveServices[h.service])) &&
          (!needsCertificate(h) || certIssued(h.http!.dnsName)),
      )
      .map((h) => h.service)
      .sort();
  });
  const sorted = Object.fromEntries(Object.entries(serveServices).sort(([a], [b]) => a.localeCompare(b)));
  const certDomains = new Set([...httpsNamesOf(sorted), ...keepCertificates]);
  for (const config of observed)
    for (const name of httpsNamesOf(serveServicesOf(config))) certDomains.add(name);
  return { serveServices: sorted, advertise, certDomains: [...certDomains].sort() };
}
