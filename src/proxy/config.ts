/**
 * What the proxy reads: the versioned tailscaled config files (`cap-<N>.hujson`), the serve config of
 * ingress proxies and the egress config of egress proxies, as the official operator writes them
 * (reference tailscale.md §2.1, §2.2, §2.5).
 *
 * @module
 */
import type { Endpoint } from '../api/index.ts';
import { egressServiceName } from '../model/egress-target.ts';

/** Files written for single proxies by the official operator: 95 (no AppConnector) and 107. */
export const CAP_VERSIONS = [95, 107] as const;
/** The newest file, the one current images read; AuthKey is looked up here. */
export const CURRENT_CAP_FILE = `cap-${CAP_VERSIONS[CAP_VERSIONS.length - 1]}.hujson`;
export const capFile = (version: number) => `cap-${version}.hujson`;
/** Key (and file name) of the serve config in the config Secret. */
export const SERVE_CONFIG_KEY = 'serve-config';
/** Key (and file name, inside `TS_EGRESS_PROXIES_CONFIG_PATH`) of the egress config. */
export const EGRESS_CONFIG_KEY = 'egress-services';
/** The official default login server; also its API base. */
export const DEFAULT_SERVER_URL = 'https://controlplane.tailscale.com';

/**
 * The login server proxies use for an API base URL: the public API's login server is
 * controlplane.tailscale.com; a self-hosted or test control server serves both on one origin.
 */
export function loginServerFor(apiUrl: string | undefined): string {
  if (!apiUrl) return DEFAULT_SERVER_URL;
  const url = new URL(apiUrl);
  return url.hostname === 'api.tailscale.com' ? DEFAULT_SERVER_URL : url.origin;
}

export interface TailscaledConfigInput {
  hostname: string;
  serverUrl: string;
  /** Present only while the device does not exist yet. */
  authKey?: string;
  /** `svc:` names to advertise; omitted means none (the reload un-advertises everything). */
  advertiseServices?: readonly string[];
}

/**
 * The fields of `ipn.ConfigVAlpha` the operator writes. Its switches are `opt.Bool`, which decodes only
 * JSON `true`, `false` or `null`: a string such as `"false"` makes containerboot reject the file and
 * exit at start (types/opt/bool.go; reference tailnet-lab.md, M1), hence `boolean`, never a string.
 */
export interface TailscaledConfig {
  Version: 'alpha0';
  /** false: containerboot applies the serve config through LocalAPI, which a locked config forbids. */
  Locked: boolean;
  Hostname: string;
  acceptDNS: boolean;
  acceptRoutes: boolean;
  NoStatefulFiltering: boolean;
  ServerURL: string;
  AuthKey?: string;
  /** From capability version 106. */
  AdvertiseServices?: string[];
  /** From capability version 107. */
  AppConnector?: { Advertise: boolean };
}

/**
 * `ipn.ConfigVAlpha` for one capability version. Field order is fixed, so the file (and its hash) is
 * stable across reconciles.
 */
export function tailscaledConfig(input: TailscaledConfigInput, capVersion: number): TailscaledConfig {
  return {
    Version: 'alpha0',
    Locked: false,
    Hostname: input.hostname,
    acceptDNS: false,
    acceptRoutes: false,
    NoStatefulFiltering: true,
    ServerURL: input.serverUrl,
    ...(input.authKey ? { AuthKey: input.authKey } : {}),
    ...(capVersion >= 106 ? { AdvertiseServices: [...(input.advertiseServices ?? [])] } : {}),
    ...(capVersion >= 107 ? { AppConnector: { Advertise: false } } : {}),
  };
}

/** Every `cap-N.hujson` file, as Secret string data. */
export function tailscaledConfigFiles(input: TailscaledConfigInput): Record<string, string> {
  return Object.fromEntries(
    CAP_VERSIONS.map((version) => [capFile(version), JSON.stringify(tailscaledConfig(input, version))]),
  );
}

/** The AuthKey of a config Secret's newest file, if it has one. */
export function authKeyInConfig(files: Record<string, string | undefined>): string | undefined {
  const text = files[CURRENT_CAP_FILE];
  if (!text) return undefined;
  try {
    const parsed = JSON.parse(text) as { AuthKey?: unknown };
    return typeof parsed.AuthKey === 'string' && parsed.AuthKey !== '' ? parsed.AuthKey : undefined;
  } catch {
    return undefined;
  }
}

/** Where an ingress endpoint's tailnet traffic goes in the cluster. */
export interface IngressRoute {
  endpoint: string;
  /** Port the proxy listens on in the tailnet: the endpoint's port. */
  port: number;
  /** `host:port` in the cluster. */
  target: string;
}

export interface IngressServiceRef {
  name: string;
  namespace?: string;
  port?: number;
}

/**
 * How the ingress target is chosen: the endpoint's `externalTarget` when set, else the named cluster
 * Service (`spec.proxy.ingressService`, e.g. Envoy Gateway's) on its port or the endpoint's. UDP
 * endpoints and ports already taken by an earlier endpoint (by name order) are skipped and reported.
 */
export function ingressRoutes(
  endpoints: readonly Endpoint[],
  service: IngressServiceRef | undefined,
  defaultNamespace: string,
  clusterDomain: string,
): { routes: IngressRoute[]; skipped: { endpoint: string; reason: string }[] } {
  const routes: IngressRoute[] = [];
  const skipped: { endpoint: string; reason: string }[] = [];
  const taken = new Set<number>();
  for (const endpoint of [...endpoints].sort((a, b) => a.name.localeCompare(b.name))) {
    if (endpoint.protocol === 'UDP') {
      skipped.push({ endpoint: endpoint.name, reason: 'UDP cannot be served to the tailnet' });
      continue;
    }
    const target =
      endpoint.externalTarget ??
      (service
        ? `${service.name}.${service.namespace ?? defaultNamespace}.svc.${clusterDomain}:${service.port ?? endpoint.port}`
        : undefined);
    if (!target) {
      skipped.push({ endpoint: endpoint.name, reason: 'no externalTarget and no spec.proxy.ingressService' });
      continue;
    }
    if (taken.has(endpoint.port)) {
      skipped.push({ endpoint: endpoint.name, reason: `port ${endpoint.port} is already served` });
      continue;
    }
    taken.add(endpoint.port);
    routes.push({ endpoint: endpoint.name, port: endpoint.port, target });
  }
  return { routes, skipped };
}

/** `ipn.TCPPortHandler`: one of `HTTPS`, `HTTP` (Go bools: serve the port's Web handlers) or `TCPForward`. */
export type ServeTCPHandler = { HTTPS: true } | { HTTP: true } | { TCPForward: string };
/** `ipn.WebServerConfig`, keyed by `<host>:<port>`: `ipn.HTTPHandler` per mount point. */
export type ServeWeb = Record<string, { Handlers: Record<string, { Proxy: string }> }>;
/** `ipn.ServiceConfig`: what a Tailscale Service's VIP serves. */
export type ServeServiceConfig = { TCP: Record<string, ServeTCPHandler>; Web?: ServeWeb };
/** `ipn.ServeConfig` as the operator writes it; `Services` as read back from a Secret is kept as is. */
export type ServeConfig = { TCP: Record<string, ServeTCPHandler>; Services?: Record<string, unknown> };

/** `ipn.ServeConfig`: L4 forwarding of each tailnet port, which works in userspace mode. */
export function serveConfig(routes: readonly IngressRoute[]): ServeConfig {
  const tcp: Record<string, ServeTCPHandler> = {};
  for (const route of [...routes].sort((a, b) => a.port - b.port))
    tcp[String(route.port)] = { TCPForward: route.target };
  return { TCP: tcp };
}

export const EGRESS_PORT_MIN = 10000;
export const EGRESS_PORT_RANGE = 1000;

/**
 * The container port each endpoint's egress traffic arrives on (`matchPort`), 10000–10999 as the
 * official operator allocates. Deterministic from the set of names: each name hashes to a slot and
 * probes forward, in name order, so an endpoint's port survives unrelated edits in nearly every case.
 */
export function egressPorts(names: readonly string[]): Map<string, number> {
  const used = new Set<number>();
  const ports = new Map<string, number>();
  for (const name of [...names].sort()) {
    let slot = fnv1a(name) % EGRESS_PORT_RANGE;
    while (used.has(slot)) slot = (slot + 1) % EGRESS_PORT_RANGE;
    used.add(slot);
    ports.set(name, EGRESS_PORT_MIN + slot);
  }
  return ports;
}

function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

export interface EgressRoute {
  endpoint: string;
  /** The endpoint's egress Service (`egressServiceName`), also the key in the egress config. */
  serviceName: string;
  /** Port of the Service: the endpoint's port. */
  port: number;
  /** Container port on the proxy. */
  matchPort: number;
  protocol: 'TCP' | 'UDP';
  tailnetTarget: { ip?: string; fqdn?: string };
}

/**
 * Every endpoint with a tailnet address gets a Service, a port and a forwarding rule, exactly the
 * endpoints for which `egressTarget` answers `egress-proxy`; an endpoint known only by its
 * externalTarget is outside the tailnet and is reached directly, so it needs none.
 */
export function egressRoutes(endpointsName: string, endpoints: readonly Endpoint[]): EgressRoute[] {
  const ports = egressPorts(endpoints.map((e) => e.name));
  return [...endpoints]
    .filter((endpoint) => endpoint.tailscaleIP !== undefined || endpoint.tailscaleFQDN !== undefined)
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((endpoint): EgressRoute => {
      const target = endpoint.tailscaleIP
        ? { ip: endpoint.tailscaleIP }
        : { fqdn: endpoint.tailscaleFQDN!.replace(/\.$/, '') };
      return {
        endpoint: endpoint.name,
        serviceName: egressServiceName(endpointsName, endpoint.name),
        port: endpoint.port,
        matchPort: ports.get(endpoint.name)!,
        protocol: endpoint.protocol === 'UDP' ? 'UDP' : 'TCP',
        tailnetTarget: target,
      };
    });
}

/** `kube/egressservices.Configs`, keyed by Service name; ports are numbers (Go uint16). */
export type EgressServicesConfigs = Record<
  string,
  {
    tailnetTarget: { ip: string; fqdn: string };
    ports: { protocol: 'TCP' | 'UDP'; matchPort: number; targetPort: number }[];
  }
>;

/**
 * containerboot's `egressservices.Configs`: per Service, the tailnet target and the port mapping
 * `matchPort` (container) → `targetPort` (tailnet), installed as DNAT rules (kernel mode).
 */
export function egressConfig(routes: readonly EgressRoute[]): EgressServicesConfigs {
  const config: EgressServicesConfigs = {};
  for (const route of routes) {
    config[route.serviceName] = {
      tailnetTarget: { ip: route.tailnetTarget.ip ?? '', fqdn: route.tailnetTarget.fqdn ?? '' },
      ports: [{ protocol: route.protocol, matchPort: route.matchPort, targetPort: route.port }],
    };
  }
  return config;
}
