/**
 * Tailnet → cluster: the Tailscale Services a TailscaleGateway publishes (`spec.tailnets[].ingress`),
 * coordinated with every other operator publishing the same name (src/coordination), hosted by an
 * ingress TailscaleProxyGroup (src/proxy/service-hosting.ts). Leader only.
 *
 * One reconcile of a TailscaleGateway:
 * - each wanted service: `syncRoutes` on the tailnet's coordinator with our routes on it, which are the
 *   TailscaleGateway itself plus every HTTPRoute attached to its Gateway (from the index, so an
 *   HTTPRoute change re-coordinates at once), ports `tcp:<port>`, and tags (the service's, else the
 *   proxy group's, for `autoApprovers.services`);
 * - each service this object published before and no longer wants (status lists it): `release`;
 * - deletion: release every service, then drop the finalizer;
 * - status (`services` and the `TailscaleServices` condition, under a field manager of their own so the
 *   status reconciler's conditions are untouched): per service its state, VIP addresses, DNS name
 *   (`<name>.<MagicDNS suffix>` from the TailscaleTailnet's status), owner, consumer count, the other
 *   clusters attached, and how many proxies advertise it (their config Secrets say so).
 *
 * A refused service (a person's, an exclusively owned one, an unknown registry schema) is left alone,
 * never advertised, and reported as a Warning Event and the condition's reason.
 *
 * A service of mode HTTP is served by the proxies at layer 7 and proxied to the Envoy Service of the
 * joined Gateway (src/resources/tailscale-gateway/tailscale-gateway-upstream.ts). That upstream is resolved from the
 * caches before any Tailscale API call: without a Gateway, an HTTP listener or its Envoy Service the
 * service stays Pending (nothing to serve, so nothing to advertise, and no Tailscale Service declared on a
 * port nobody serves). Its entry then carries `upstream` and `hosts` (the extension's virtual-host
 * domains, from src/model/ingress-generation.ts, so status and Envoy cannot disagree), and the
 * Tailscale Service is declared on the one port the proxies serve (443 for HTTPS, 80 for HTTP). Served
 * with HTTPS, it is advertised only once the proxies' shared certificate is issued; until then its
 * message says so.
 *
 * @module
 */

import type { KubernetesObject, V1Secret } from '@kubernetes/client-node';
import type {
  Checked,
  PublishedServiceStatus,
  TailscaleGateway,
  TailscaleGatewayStatus,
} from '../../api/index.ts';
import { canonical } from '../../canonical-json.ts';
import {
  type Condition,
  conditionsEqual,
  type EventRecorder,
  type ReconcileResult,
  type Reconciler,
  setCondition,
} from '../../controller-runtime/index.ts';
import {
  describeRefusal,
  type ServiceCoordinator,
  serviceNameFor,
  type TailnetCoordinators,
} from '../../coordination/index.ts';
import { OperatorError } from '../../errors.ts';
import { namespaceOf, splitKey } from '../../kube/index.ts';
import { isGatewayParent } from '../../model/gateway-api.ts';
import { ingressServicesOf } from '../../model/ingress-generation.ts';
import type { ResourceSnapshot } from '../../model/resource-store.ts';
import { configSecretName, proxyBaseName } from '../../proxy/names.ts';
import { proxyTags } from '../../proxy/parents.ts';
import { advertisedServicesOf, certificateIssued, httpServicePort } from '../../proxy/service-hosting.ts';
import { CONDITION_TAILSCALE_SERVICES } from './tailscale-gateway-status.ts';
import { resolveUpstream } from './tailscale-gateway-upstream.ts';

/** Field manager of `status.services` and the TailscaleServices condition. */
export const SERVICES_FIELD_MANAGER = 'tailscale-gateway-services';
/** Held while this object has Tailscale Services to release. */
export const SERVICES_FINALIZER = 'gateway.tailscale.com/tailscale-services';
/** Routes recorded per service at most (the registry lives in an annotation). */
export const MAX_ROUTES = 32;
/** How soon a pending or failed service is tried again. */
export const RETRY_MS = 15_000;
/** How often a published service is read again (VIPs, other clusters attaching). */
export const REFRESH_MS = 60_000;
/** How soon to look again while the Gateway or Envoy Service caches have not listed yet. */
export const CACHE_WAIT_MS = 1_000;

/** A lookup in a cache that may not have listed yet: 'unknown' until it has. */
export type CacheLookup<T> = T | 'unknown';

export interface ServicesReconcilerOptions {
  /** The TailscaleGateway, checked once by its informer. */
  getTailscaleGateway(namespace: string, name: string): Checked<TailscaleGateway> | undefined;
  getTailnet(name: string): KubernetesObject | undefined;
  getProxyGroup(namespace: string, name: string): KubernetesObject | undefined;
  /**
   * Mode HTTP: the joined Gateway (undefined when it does not exist, 'unknown' while Gateway API
   * discovery or the Gateway informer has not answered: a Pending written then would un-host a working
   * service on every leader change).
   */
  getGateway(namespace: string, name: string): CacheLookup<KubernetesObject | undefined>;
  /** Mode HTTP: the Services labelled as the Envoy Service of the Gateway `namespace/name`. */
  getEnvoyServices(gatewayNamespace: string, gatewayName: string): CacheLookup<KubernetesObject[]>;
  /** Cluster DNS domain of the upstream's name. */
  clusterDomain: string;
  /** A config or certificate Secret of a proxy (operator namespace), from the proxy children cache. */
  getSecret(namespace: string, name: string): KubernetesObject | undefined;
  operatorNamespace: string;
  coordinators: TailnetCoordinators;
  snapshot(): ResourceSnapshot;
  /** Applies `{conditions, services}` under SERVICES_FIELD_MANAGER. */
  writeStatus(
    obj: KubernetesObject,
    status: Partial<TailscaleGatewayStatus>,
    signal: AbortSignal,
  ): Promise<void>;
  setFinalizers(obj: KubernetesObject, finalizers: string[], signal: AbortSignal): Promise<void>;
  events: EventRecorder;
  clock: { now(): number };
  retryMs?: number;
  refreshMs?: number;
}

interface Problem {
  reason: string;
  message: string;
}

type Entry = PublishedServiceStatus & { problem?: Problem };

const sameEntries = (
  a: readonly PublishedServiceStatus[] | undefined,
  b: readonly PublishedServiceStatus[],
) => canonical(a ?? []) === canonical(b);

export function createServicesReconciler(options: ServicesReconcilerOptions): Reconciler {
  const retryMs = options.retryMs ?? RETRY_MS;
  const refreshMs = options.refreshMs ?? REFRESH_MS;

  return async (key, { signal, log }): Promise<ReconcileResult | undefined> => {
    const { namespace = '', name } = splitKey(key);
    const checked = options.getTailscaleGateway(namespace, name);
    if (!checked?.ok) return undefined;
    const { value: tsgw, raw } = checked;
    const finalizers = raw.metadata?.finalizers ?? [];
    const previous = tsgw.status?.services ?? [];
    const deleting = raw.metadata?.deletionTimestamp !== undefined;
    const wanted = deleting ? [] : wantedServices(tsgw);

    if (deleting && !finalizers.includes(SERVICES_FINALIZER)) return undefined;
    if (!deleting && wanted.length > 0 && !finalizers.includes(SERVICES_FINALIZER))
      await options.setFinalizers(raw, [...finalizers, SERVICES_FINALIZER], signal);

    // Release what is no longer wanted (all of it when deleting).
    const wantedKeys = new Set(wanted.map((w) => `${w.attachment}/${w.service.name}`));
    let releasePending = false;
    const keptEntries: PublishedServiceStatus[] = [];
    for (const entry of previous) {
      if (wantedKeys.has(`${entry.tailnet}/${entry.name}`)) continue;
      if (entry.state === 'Refused' || entry.state === 'Pending') continue;
      const coordinator = options.coordinators.for(entry.tailscaleTailnet);
      if (!coordinator) {
        if (options.getTailnet(entry.tailscaleTailnet) === undefined) {
          log.warn(
            { service: entry.service, tailnet: entry.tailscaleTailnet },
            'the TailscaleTailnet is gone; cannot detach from the Tailscale Service (other operators sweep our consumer once stale)',
          );
          continue;
        }
        releasePending = true;
        keptEntries.push(entry);
        continue;
      }
      try {
        const result = await coordinator.release(entry.service, { signal });
        log.info({ service: entry.service, result: result.status }, 'released a Tailscale Service');
      } catch (error) {
        releasePending = true;
        keptEntries.push({ ...entry, state: 'Failed', message: failure(error).slice(0, 1024) });
      }
    }

    if (deleting) {
      if (releasePending) {
        await writeIfChanged(raw, tsgw, keptEntries, [], signal);
        return { requeueAfter: retryMs };
      }
      await options.setFinalizers(
        raw,
        finalizers.filter((f) => f !== SERVICES_FINALIZER),
        signal,
      );
      log.info('Tailscale Services released; finalizer dropped');
      return undefined;
    }

    if (wanted.some((w) => w.service.mode === 'HTTP') && !upstreamCachesKnown(tsgw)) {
      log.debug('the Gateway or Envoy Service cache has not listed yet; waiting before resolving upstreams');
      return { requeueAfter: CACHE_WAIT_MS };
    }
    const entries: Entry[] = [];
    for (const item of wanted) entries.push(await ensure(tsgw, item, signal));
    const all = [...entries.map(({ problem: _, ...entry }) => entry), ...keptEntries];
    await writeIfChanged(raw, tsgw, all, entries, signal);
    if (wanted.length === 0 && !releasePending && finalizers.includes(SERVICES_FINALIZER))
      await options.setFinalizers(
        raw,
        finalizers.filter((f) => f !== SERVICES_FINALIZER),
        signal,
      );
    for (const entry of entries)
      if (entry.state === 'Refused' && entry.problem)
        void options.events.event(raw, 'Warning', entry.problem.reason, entry.problem.message, 'Publish');
    if (wanted.length === 0 && !releasePending) return undefined;
    const unsettled = releasePending || entries.some((e) => e.state === 'Pending' || e.state === 'Failed');
    return { requeueAfter: unsettled ? retryMs : refreshMs };
  };

  async function writeIfChanged(
    raw: KubernetesObject,
    tsgw: TailscaleGateway,
    services: PublishedServiceStatus[],
    entries: readonly Entry[],
    signal: AbortSignal,
  ): Promise<void> {
    const sorted = [...services].sort(
      (a, b) => a.tailnet.localeCompare(b.tailnet) || a.name.localeCompare(b.name),
    );
    const current = (tsgw.status?.conditions ?? []).filter((c) => c.type === CONDITION_TAILSCALE_SERVICES);
    const desired = servicesCondition(tsgw, current, entries, new Date(options.clock.now()));
    if (sameEntries(tsgw.status?.services, sorted) && conditionsEqual(current, desired)) return;
    await options.writeStatus(
      raw,
      { conditions: desired, ...(sorted.length > 0 ? { services: sorted } : {}) },
      signal,
    );
  }

  /** The Gateway this object joins: gatewayRef with its namespace defaulted. */
  function gatewayOf(tsgw: TailscaleGateway) {
    const ref = tsgw.spec.gatewayRef;
    return {
      namespace: ref.namespace ?? namespaceOf(tsgw),
      name: ref.name,
      ...(ref.sectionName !== undefined ? { sectionName: ref.sectionName } : {}),
    };
  }

  function upstreamCachesKnown(tsgw: TailscaleGateway): boolean {
    const gateway = gatewayOf(tsgw);
    return (
      options.getGateway(gateway.namespace, gateway.name) !== 'unknown' &&
      options.getEnvoyServices(gateway.namespace, gateway.name) !== 'unknown'
    );
  }

  /** Mode HTTP: the upstream, or the Pending reason; undefined for mode TCP. */
  function httpDetails(tsgw: TailscaleGateway, item: WantedService) {
    if (item.service.mode !== 'HTTP') return undefined;
    const gateway = gatewayOf(tsgw);
    const object = options.getGateway(gateway.namespace, gateway.name);
    const envoyServices = options.getEnvoyServices(gateway.namespace, gateway.name);
    return resolveUpstream({
      gateway,
      object: object === 'unknown' ? undefined : object,
      envoyServices: envoyServices === 'unknown' ? [] : envoyServices,
      clusterDomain: options.clusterDomain,
    });
  }

  /** The virtual-host domains of a mode-HTTP service, as the extension computes them. */
  function hostsOf(tsgw: TailscaleGateway, item: WantedService, dnsName: string | undefined): string[] {
    // Without the status being replaced, so a DNS name not known now is not taken from the old one.
    const { status: _, ...spec } = tsgw;
    const dnsNames = new Map(dnsName ? [[`${item.attachment}/${item.service.name}`, dnsName]] : []);
    const generated = ingressServicesOf(spec, options.clusterDomain, dnsNames).find(
      (s) => s.attachment === item.attachment && s.published.name === item.service.name,
    );
    return generated?.hosts ?? [];
  }

  async function ensure(tsgw: TailscaleGateway, item: WantedService, signal: AbortSignal): Promise<Entry> {
    const namespace = namespaceOf(tsgw);
    const serviceName = serviceNameFor(item.service.name);
    const base: Entry = {
      tailnet: item.attachment,
      name: item.service.name,
      service: serviceName,
      tailscaleTailnet: item.tailnet,
      state: 'Pending',
    };
    const pending = (reason: string, message: string): Entry => ({
      ...base,
      message: message.slice(0, 1024),
      problem: { reason, message },
    });
    const tailnet = options.getTailnet(item.tailnet) as
      | (KubernetesObject & { status?: { magicDNSSuffix?: string } })
      | undefined;
    if (!tailnet) return pending('TailnetNotFound', `TailscaleTailnet ${item.tailnet} not found`);
    const group = options.getProxyGroup(namespace, item.proxyGroup) as
      | (KubernetesObject & {
          spec?: { type?: string; tailnet?: string; tags?: string[]; replicas?: number };
        })
      | undefined;
    if (!group)
      return pending(
        'ProxyGroupNotFound',
        `TailscaleProxyGroup ${namespace}/${item.proxyGroup} not found; it hosts ${serviceName}`,
      );
    if (group.spec?.type !== 'ingress' || group.spec.tailnet !== item.tailnet)
      return pending(
        'ProxyGroupMismatch',
        `TailscaleProxyGroup ${item.proxyGroup} must be of type ingress on TailscaleTailnet ${item.tailnet} (it is ${group.spec?.type} on ${group.spec?.tailnet})`,
      );
    const http = httpDetails(tsgw, item);
    if (http && !http.ok) return pending(http.reason, http.message);
    const coordinator: ServiceCoordinator | undefined = options.coordinators.for(item.tailnet);
    if (!coordinator)
      return pending(
        options.coordinators.identity() ? 'TailnetNotReady' : 'IdentityPending',
        options.coordinators.identity()
          ? `TailscaleTailnet ${item.tailnet} has no working credentials yet`
          : 'waiting for the operator identity (ConfigMap tailscale-gateway-identity)',
      );
    const tags = item.service.tags ?? proxyTags(group.spec.tags, tailnet);
    const suffix = tailnet.status?.magicDNSSuffix;
    const dnsName = suffix ? `${item.service.name}.${suffix}` : undefined;
    // Mode HTTP: what the proxies serve it with; kept in every state past this point, so a failed API
    // call does not also take the serve block away.
    const httpStatus = http?.ok
      ? { upstream: http.upstream, hosts: hostsOf(tsgw, item, dnsName) }
      : undefined;
    const httpFields = httpStatus ? { ...(dnsName ? { dnsName } : {}), ...httpStatus } : {};
    const ports = http?.ok
      ? [`tcp:${httpServicePort(protocolOf(tsgw, item.attachment))}`]
      : item.service.ports.map((p) => `tcp:${p}`);
    try {
      const result = await coordinator.syncRoutes(serviceName, {
        backend: item.service.name,
        routes: routesOf(tsgw, options.snapshot()),
        ports,
        tags,
        comment: `Published by tailscale-gateway from TailscaleGateway ${namespace}/${tsgw.metadata.name}`,
        signal,
      });
      if (result.status === 'refused') {
        const refusal = describeRefusal(result);
        return {
          ...base,
          state: 'Refused',
          ...httpFields,
          message: refusal.message.slice(0, 1024),
          problem: refusal,
        };
      }
      const own = options.coordinators.identity()?.clusterId;
      const remoteClusters = [
        ...new Set(result.consumers.map((c) => c.clusterId).filter((c) => c && c !== own)),
      ].sort();
      const advertisedBy = advertisers(namespace, item.proxyGroup, group.spec.replicas ?? 2, serviceName);
      const notes = result.mismatches.map(
        (m) =>
          `${m.field} is ${JSON.stringify(m.actual)}, not ${JSON.stringify(m.wanted)} (owned by ${result.owner})`,
      );
      if (httpStatus && !dnsName)
        notes.push(
          `mode HTTP: served once TailscaleTailnet ${item.tailnet} reports its MagicDNS suffix (the serve config is keyed by the DNS name)`,
        );
      if (
        httpStatus &&
        dnsName &&
        advertisedBy === 0 &&
        protocolOf(tsgw, item.attachment) === 'HTTPS' &&
        !certificateIssued(options.getSecret(options.operatorNamespace, dnsName))
      )
        notes.push(
          `waiting for the certificate: replica 0 of TailscaleProxyGroup ${item.proxyGroup} obtains it from Let's Encrypt into Secret ${options.operatorNamespace}/${dnsName}; the service is advertised once it is there`,
        );
      return {
        ...base,
        state: advertisedBy > 0 ? 'Advertised' : 'Published',
        ...(result.addrs.length > 0 ? { addresses: result.addrs.slice(0, 4) } : {}),
        ...(dnsName ? { dnsName } : {}),
        owner: result.owner,
        consumers: result.consumerCount,
        ...(remoteClusters.length > 0 ? { remoteClusters: remoteClusters.slice(0, 16) } : {}),
        advertisedBy,
        ...httpStatus,
        ...(notes.length > 0 ? { message: notes.join('; ').slice(0, 1024) } : {}),
      };
    } catch (error) {
      const message = failure(error);
      return {
        ...base,
        state: 'Failed',
        ...httpFields,
        message: message.slice(0, 1024),
        problem: { reason: 'TailscaleAPIError', message },
      };
    }
  }

  /** Replicas of the group whose config Secret advertises `service`. */
  function advertisers(namespace: string, group: string, replicas: number, service: string): number {
    const base = proxyBaseName(namespace, group, 'pg');
    let count = 0;
    for (let i = 0; i < replicas; i++) {
      const secret = options.getSecret(options.operatorNamespace, configSecretName(base, i)) as
        | V1Secret
        | undefined;
      if (advertisedServicesOf(secret).includes(service)) count++;
    }
    return count;
  }
}

interface WantedService {
  attachment: string;
  tailnet: string;
  proxyGroup: string;
  service: NonNullable<TailscaleGateway['spec']['tailnets'][number]['ingress']>['services'][number];
}

/** routeGeneration.ingress.protocol of an attachment: what a mode-HTTP service is served with. */
const protocolOf = (tsgw: TailscaleGateway, attachment: string) =>
  tsgw.spec.tailnets.find((a) => a.name === attachment)?.routeGeneration.ingress.protocol ?? 'HTTPS';

export function wantedServices(tsgw: TailscaleGateway): WantedService[] {
  return tsgw.spec.tailnets.flatMap((attachment) =>
    (attachment.ingress?.services ?? []).map((service) => ({
      attachment: attachment.name,
      tailnet: attachment.tailscaleTailnetRef.name,
      proxyGroup: attachment.ingress!.proxyGroup,
      service,
    })),
  );
}

/**
 * Our routes on the service: the TailscaleGateway, then the HTTPRoutes attached to its Gateway (the
 * first MAX_ROUTES - 1 by namespace and name).
 */
export function routesOf(tsgw: TailscaleGateway, snapshot: ResourceSnapshot): string[] {
  const namespace = namespaceOf(tsgw);
  const own = `${namespace}/TailscaleGateway/${tsgw.metadata.name}`;
  const ref = tsgw.spec.gatewayRef;
  const routes = snapshot.index
    .routesOfGateway(ref.namespace ?? namespace, ref.name)
    .filter((r) => r.kind === 'HTTPRoute' && r.parents.some(isGatewayParent))
    .map((r) => `${r.namespace}/${r.kind}/${r.name}`)
    .sort()
    .slice(0, MAX_ROUTES - 1);
  return [own, ...routes];
}

/** The TailscaleServices condition: True when every service is advertised; else the first problem. */
export function servicesCondition(
  tsgw: TailscaleGateway,
  previous: readonly Condition[],
  entries: readonly Entry[],
  now: Date,
): Condition[] {
  if (entries.length === 0) return [];
  const order = ['Refused', 'Failed', 'Pending', 'Published'];
  const worst = [...entries].sort((a, b) => {
    const rank = (e: Entry) => {
      const i = order.indexOf(e.state);
      return i === -1 ? order.length : i;
    };
    return rank(a) - rank(b);
  })[0]!;
  const generation = tsgw.metadata.generation;
  const input =
    worst.state === 'Advertised'
      ? {
          status: 'True' as const,
          reason: 'Advertised',
          message: `${entries.length} Tailscale Service(s) published and advertised: ${entries.map((e) => e.service).join(', ')}`,
        }
      : worst.state === 'Published'
        ? {
            status: 'False' as const,
            reason: 'AwaitingAdvertisement',
            message: `${worst.service} exists; waiting for the proxy group to serve and advertise it`,
          }
        : {
            status: 'False' as const,
            reason: worst.problem?.reason ?? worst.state,
            message: `${worst.service}: ${worst.problem?.message ?? worst.message ?? worst.state}`,
          };
  return setCondition(
    previous,
    {
      type: CONDITION_TAILSCALE_SERVICES,
      ...input,
      message: input.message.slice(0, 32768),
      ...(generation === undefined ? {} : { observedGeneration: generation }),
    },
    now,
  );
}

const failure = (error: unknown) => {
  const e = OperatorError.from(error);
  return `${e.code}: ${e.message}`;
};
