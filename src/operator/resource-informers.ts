/**
 * The informers over our own kinds and the Gateway API kinds, and the extension server's resource store
 * and index fed from them. Every replica runs these (not only the leader): each one serves Envoy
 * Gateway's hooks from its own cache.
 *
 * Gateway API kinds are optional: a cluster may lack some route CRDs (UDPRoute and TLSRoute are often
 * missing), or the Gateway API altogether. A lookup of the kinds served (the API server's discovery
 * documents) decides which get an informer, and is repeated while any is missing, so a CRD installed later is picked up without a restart. The store's
 * first fill (and so readiness) waits only for our own kinds: an informer that cannot list (a CRD
 * that is there but not readable) must not keep the extension server unready forever. Until every
 * served Gateway API kind has listed, the index says it is not complete, and the hooks that would
 * leave something out because of it (PostTranslateModify) fall back to adding everything.
 *
 * @module
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import type { AnyResource, Kind } from '../api/index.ts';
import { createInformer, type Informer, type InformerTransport } from '../kube/informer.ts';
import { kindKeyOf } from '../kube/object-key.ts';
import {
  type CheckingInformer,
  createResourceInformer,
  pluralOf,
  type ResourceInformer,
} from '../kube/resource-informer.ts';
import { withoutManagedFields } from '../kube/trim.ts';
import {
  GATEWAY_API_GROUP,
  GATEWAY_API_KINDS,
  type GatewayApiKind,
  isGatewayApiKind,
} from '../model/gateway-api.ts';
import type { MutableResourceIndex } from '../model/resource-index.ts';
import type { MemoryResourceStore } from '../model/resource-store.ts';
import type { Logger } from '../observability/logger.ts';
import { ENVOY_SERVICE_SELECTOR } from '../resources/tailscale-gateway/tailscale-gateway-upstream.ts';
import { cacheTransformFor } from '../tailnet-discovery/index.ts';
import { createBackoff } from '../time/backoff.ts';
import { sleep, systemClock } from '../time/clock.ts';

export interface ResourceInformers {
  tailnets: ResourceInformer<'TailscaleTailnet'>;
  endpoints: ResourceInformer<'TailscaleEndpoints'>;
  gateways: ResourceInformer<'TailscaleGateway'>;
  routePolicies: ResourceInformer<'TailscaleRoutePolicy'>;
  all(): Informer[];
}

export interface ResourceInformersOptions {
  client: InformerTransport;
  log: Logger;
  registry?: Registry;
}

export function createResourceInformers(options: ResourceInformersOptions): ResourceInformers {
  const make = <K extends Kind>(kind: K) =>
    createResourceInformer(kind, {
      client: options.client,
      transform: cacheTransformFor(kind),
      log: options.log.child({ informer: pluralOf(kind) }),
      ...(options.registry ? { registry: options.registry } : {}),
    });
  const informers = {
    tailnets: make('TailscaleTailnet'),
    endpoints: make('TailscaleEndpoints'),
    gateways: make('TailscaleGateway'),
    routePolicies: make('TailscaleRoutePolicy'),
  };
  return { ...informers, all: () => Object.values(informers) };
}

/**
 * Envoy Gateway's Envoy Services, in every namespace (EG puts them in its own namespace, or the
 * Gateway's in gateway-namespace mode), restricted by label to those made for a single Gateway. The
 * leader's services controller resolves the upstream of mode-HTTP published services from it; the
 * chart's cluster-wide get/list/watch on Services covers it.
 */
export function createEnvoyServiceInformer(options: ResourceInformersOptions): Informer {
  return createInformer({
    client: options.client,
    path: '/api/v1/services',
    resource: 'envoy-services',
    labelSelector: ENVOY_SERVICE_SELECTOR,
    transform: withoutManagedFields(),
    log: options.log,
    ...(options.registry ? { registry: options.registry } : {}),
  });
}

const PLURALS: Record<GatewayApiKind, string> = {
  Gateway: 'gateways',
  HTTPRoute: 'httproutes',
  GRPCRoute: 'grpcroutes',
  TCPRoute: 'tcproutes',
  UDPRoute: 'udproutes',
  TLSRoute: 'tlsroutes',
};
/** Newest first: a kind is watched at the first of these versions that serves it. */
const VERSION_PREFERENCE = ['v1', 'v1beta1', 'v1alpha3', 'v1alpha2'];

export interface GatewayApiInformers {
  /** The informer of a kind, once the lookup found it served. */
  get(kind: GatewayApiKind): Informer | undefined;
  all(): Informer[];
  /** Kinds found served so far. */
  served(): GatewayApiKind[];
  /** True once the served kinds have been looked up at least once. */
  kindsKnown(): boolean;
  /** Calls `listener` for every informer started, including those started before. */
  onInformer(listener: (kind: GatewayApiKind, informer: Informer) => void): () => void;
  start(): void;
  stop(): Promise<void>;
}

export interface GatewayApiInformersOptions extends ResourceInformersOptions {
  /** How often the served kinds are looked up again while one is missing; default 60 s. */
  lookupIntervalMs?: number;
}

/**
 * Which version of the Gateway API group serves each kind, read from the API server's discovery
 * documents (`/apis/<group>`, `/apis/<group>/<version>`); empty when none does.
 */
export async function servedGatewayApiKinds(
  client: Pick<InformerTransport, 'request'>,
  signal?: AbortSignal,
): Promise<Map<GatewayApiKind, string>> {
  const found = new Map<GatewayApiKind, string>();
  let group: { versions?: { version: string }[] };
  try {
    group = await client.request(`/apis/${GATEWAY_API_GROUP}`, signal ? { signal } : {});
  } catch (error) {
    if ((error as { code?: unknown }).code === 'NotFound') return found;
    throw error;
  }
  const versions = (group.versions ?? []).map((v) => v.version).sort((a, b) => rank(a) - rank(b));
  for (const version of versions) {
    const list = await client.request<{ resources?: { name: string; kind: string }[] }>(
      `/apis/${GATEWAY_API_GROUP}/${version}`,
      signal ? { signal } : {},
    );
    for (const kind of GATEWAY_API_KINDS) {
      if (found.has(kind)) continue;
      if (list.resources?.some((r) => r.name === PLURALS[kind] && r.kind === kind)) found.set(kind, version);
    }
  }
  return found;
}

const rank = (version: string) => {
  const i = VERSION_PREFERENCE.indexOf(version);
  return i === -1 ? VERSION_PREFERENCE.length : i;
};

export function createGatewayApiInformers(options: GatewayApiInformersOptions): GatewayApiInformers {
  const log = options.log.child({ component: 'gateway-api' });
  const informers = new Map<GatewayApiKind, Informer>();
  const listeners = new Set<(kind: GatewayApiKind, informer: Informer) => void>();
  let kindsKnown = false;
  let stopping: AbortController | undefined;
  let loop: Promise<void> | undefined;
  const lookupIntervalMs = options.lookupIntervalMs ?? 60_000;

  const lookUpOnce = async (signal: AbortSignal) => {
    const found = await servedGatewayApiKinds(options.client, signal);
    for (const [kind, version] of found) {
      if (informers.has(kind) || signal.aborted) continue;
      const informer = createInformer({
        client: options.client,
        path: `/apis/${GATEWAY_API_GROUP}/${version}/${PLURALS[kind]}`,
        transform: withoutManagedFields(),
        log: options.log.child({ informer: PLURALS[kind] }),
        ...(options.registry ? { registry: options.registry } : {}),
      });
      informers.set(kind, informer);
      informer.start();
      log.info({ kind, version }, 'watching a Gateway API kind');
      for (const listener of listeners) listener(kind, informer);
    }
    const missing = GATEWAY_API_KINDS.filter((kind) => !found.has(kind));
    if (!kindsKnown && missing.length > 0)
      log.info({ missing }, 'Gateway API kinds not served; looking again every minute');
    kindsKnown = true;
    return missing.length;
  };

  return {
    get: (kind) => informers.get(kind),
    all: () => [...informers.values()],
    served: () => [...informers.keys()],
    kindsKnown: () => kindsKnown,
    onInformer(listener) {
      listeners.add(listener);
      for (const [kind, informer] of informers) listener(kind, informer);
      return () => listeners.delete(listener);
    },
    start() {
      if (loop) return;
      stopping = new AbortController();
      const signal = stopping.signal;
      loop = (async () => {
        // Served kinds are looked up again every lookupIntervalMs; a failed lookup retries sooner, backing off.
        const retries = createBackoff({ baseMs: 1_000, capMs: lookupIntervalMs });
        while (!signal.aborted) {
          let delay = lookupIntervalMs;
          try {
            if ((await lookUpOnce(signal)) === 0) return;
            retries.reset();
          } catch (error) {
            if (signal.aborted) return;
            delay = retries.next();
            log.warn({ err: error, retryInMs: delay }, 'looking up the served Gateway API kinds failed');
          }
          await sleep(systemClock, delay, signal);
        }
      })();
    },
    async stop() {
      stopping?.abort();
      await loop;
      await Promise.all([...informers.values()].map((informer) => informer.stop()));
    },
  };
}

export interface FeedOptions {
  /** Kept in step with the store; Gateway API objects only go here. */
  index?: MutableResourceIndex;
  /** Optional informers (the index's only); added as the lookup finds their kinds served. */
  gatewayApi?: GatewayApiInformers;
  /** After every rebuild that changed the index or the store. */
  onUpdate?: () => void;
}

/**
 * Keeps `store` equal to what the informers hold, as validated resources, and `index` equal to what
 * they and the Gateway API informers hold. The store is filled only once every informer the hooks
 * read has listed, so the extension server never answers from half a cluster; after that, bursts of
 * events coalesce into one rebuild. The index is fed object by object from the same events.
 */
export function feedStore(
  informers: readonly CheckingInformer[],
  store: MemoryResourceStore,
  log: Logger,
  options: FeedOptions = {},
): { rebuild(): void; verify(): number; stop(): void } {
  const { index, gatewayApi } = options;
  let scheduled = false;
  const rejected = new Set<string>();
  const pending = new Map<string, { op: 'upsert' | 'remove'; obj: KubernetesObject }>();
  const updateCompleteness = () => {
    if (!index) return;
    const optional = gatewayApi?.all() ?? [];
    index.setServed(
      gatewayApi?.served() ?? [],
      (gatewayApi?.kindsKnown() ?? false) && optional.every((informer) => informer.hasSynced()),
    );
  };
  const rebuild = () => {
    scheduled = false;
    if (!informers.every((informer) => informer.hasSynced())) return;
    if (index) {
      for (const { op, obj } of pending.values()) {
        if (op === 'upsert') index.upsert(obj);
        else index.remove(obj);
      }
      pending.clear();
      updateCompleteness();
    }
    const resources: AnyResource[] = [];
    for (const [informer, object] of informers.flatMap((i) => i.list().map((o) => [i, o] as const))) {
      // Checked once per object version by its typed informer.
      const checked = informer.check(object);
      if (checked.ok) {
        resources.push(checked.value);
        continue;
      }
      // The CRD should have refused it; log each bad version once rather than on every rebuild.
      const id = `${kindKeyOf(object)}@${object.metadata?.resourceVersion}`;
      if (!rejected.has(id)) {
        rejected.add(id);
        log.warn({ object: id, issues: checked.issues }, 'ignoring an object that does not match the schema');
      }
    }
    store.replace(resources, index);
    options.onUpdate?.();
  };
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    queueMicrotask(rebuild);
  };
  const follow = (informer: Informer, toStore: boolean) => {
    const record = (op: 'upsert' | 'remove') => (obj: KubernetesObject) => {
      if (index) pending.set(kindKeyOf(obj), { op, obj });
      if (toStore || index) schedule();
    };
    const offs = [
      informer.on('add', record('upsert')),
      informer.on('update', record('upsert')),
      informer.on('delete', record('remove')),
    ];
    // An informer whose list comes back empty fires no event; its sync alone must trigger the first fill.
    void informer.waitForSync().then(schedule);
    return offs;
  };
  const offs = informers.flatMap((informer) => follow(informer, true));
  if (index && gatewayApi)
    offs.push(gatewayApi.onInformer((_, informer) => offs.push(...follow(informer, false))));

  /**
   * Compares the index with every informer's cache and repairs what differs (a missed or mis-applied
   * event); returns the number of objects repaired. Nothing to do before the first fill.
   */
  const verify = (): number => {
    if (!index || !informers.every((informer) => informer.hasSynced())) return 0;
    let repaired = 0;
    const seen = new Set<string>();
    const held = index.held();
    for (const informer of [...informers, ...(gatewayApi?.all() ?? [])]) {
      if (!informer.hasSynced()) continue;
      for (const obj of informer.list()) {
        const id = kindKeyOf(obj);
        if (!held.has(id)) {
          // Kinds the index does not follow (tailnets, policies) are never held: not a repair.
          const before = index.version;
          index.upsert(obj);
          if (index.version !== before) repaired++;
        } else if (!index.holds(obj)) {
          index.upsert(obj);
          repaired++;
        }
        seen.add(id);
      }
    }
    for (const [id, object] of held) {
      if (seen.has(id)) continue;
      const served = isGatewayApiKind(object.kind) ? gatewayApi?.get(object.kind) : undefined;
      // A kind whose informer has not listed yet keeps what it has.
      if (served && !served.hasSynced()) continue;
      index.remove(object);
      repaired++;
    }
    updateCompleteness();
    if (repaired > 0) {
      log.warn({ repaired }, 'resource index differed from the informer caches; repaired');
      // A new snapshot version, so anything cached per version is recomputed.
      schedule();
    }
    return repaired;
  };
  return {
    rebuild,
    verify,
    stop() {
      for (const off of offs) off();
    },
  };
}
