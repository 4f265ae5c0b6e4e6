/**
 * The two shared records a Tailscale Service carries in its annotations, read defensively and written
 * back without disturbing anything this operator does not own:
 *
 * - ours, `gateway.tailscale.com/service-registry` (schema `v1`): owner, consumers per operator with
 *   their cluster, routes and lastSeen, the VIP addresses, lastUpdated; plus the flat
 *   `owner-operator`, `consumer-count`, `last-updated` and `schema-version` keys for people and
 *   `jq`. The layout is the Go prototype's, plus `schemaVersion` and `backend`, so a service it wrote is
 *   read too;
 * - the official Tailscale Kubernetes operator's `tailscale.com/owner-references`
 *   (`{"ownerRefs":[{"operatorID":…,"resource":…}]}`). Go's `encoding/json` matches keys without regard
 *   to case and upstream tests feed `ownerrefs`, so keys are matched case-insensitively when read; we
 *   always write `ownerRefs` and keep every other operator's entry exactly as found.
 *
 * @module
 */

export const REGISTRY_ANNOTATION = 'gateway.tailscale.com/service-registry';
export const OWNER_OPERATOR_ANNOTATION = 'gateway.tailscale.com/owner-operator';
export const CONSUMER_COUNT_ANNOTATION = 'gateway.tailscale.com/consumer-count';
export const LAST_UPDATED_ANNOTATION = 'gateway.tailscale.com/last-updated';
export const SCHEMA_VERSION_ANNOTATION = 'gateway.tailscale.com/schema-version';
/** The official operator's shared-ownership annotation (reference tailscale.md §1.7). */
export const OWNER_REFERENCES_ANNOTATION = 'tailscale.com/owner-references';
/** The registry schema this code reads and writes. */
export const SCHEMA_VERSION = 'v1';

/** One operator (one installation in one cluster) using the service. */
export interface Consumer {
  operatorId: string;
  clusterId: string;
  /** Routes (e.g. `namespace/HTTPRoute/name`) of that operator that need the service; sorted. */
  routes: string[];
  /** RFC 3339; refreshed by the consumer's heartbeat. */
  lastSeen: string;
}

export interface ServiceRegistry {
  schemaVersion: typeof SCHEMA_VERSION;
  serviceName: string;
  /** What the service publishes, as given to the coordinator; empty when unknown. */
  backend: string;
  /** The operator that decides tags, ports and comment: the creator, then a remaining consumer. */
  ownerOperator: string;
  ownerCluster: string;
  /** Keyed by operator id. */
  consumers: Record<string, Consumer>;
  vipAddresses: string[];
  lastUpdated: string;
}

export type RegistryRead =
  | { kind: 'absent' }
  | { kind: 'unknown-schema'; version: string }
  | { kind: 'ok'; registry: ServiceRegistry; warnings: string[] };

/** One entry of the official operator's `ownerRefs`; `raw` is written back unchanged. */
export interface OwnerRef {
  operatorId: string | undefined;
  /** A `resource` marks exclusive ownership (e.g. a kube-apiserver ProxyGroup): nobody may join. */
  exclusive: boolean;
  raw: Record<string, unknown>;
}

export type OwnerRefsRead =
  | { kind: 'absent' }
  | { kind: 'invalid'; message: string }
  | { kind: 'ok'; refs: OwnerRef[]; text: string };

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** `object[key]` with the key matched case-insensitively, as Go's `encoding/json` does. */
function field(object: Record<string, unknown>, key: string): unknown {
  if (key in object) return object[key];
  const lower = key.toLowerCase();
  for (const [k, value] of Object.entries(object)) if (k.toLowerCase() === lower) return value;
  return undefined;
}

/** An annotation value with its key matched case-insensitively. */
export function annotation(annotations: Record<string, string> | undefined, key: string): string | undefined {
  if (!annotations) return undefined;
  const value = field(annotations, key);
  return typeof value === 'string' ? value : undefined;
}

const str = (value: unknown): string => (typeof value === 'string' ? value : '');
const strings = (value: unknown): string[] =>
  Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];

/**
 * Reads our registry. A newer schema (in the flat key or the JSON) is reported and must be left alone;
 * a v1 registry is read entry by entry, dropping what does not make sense with a warning, so one bad
 * consumer entry does not cost the others theirs.
 */
export function readRegistry(annotations: Record<string, string> | undefined): RegistryRead {
  const text = annotation(annotations, REGISTRY_ANNOTATION);
  const flatVersion = annotation(annotations, SCHEMA_VERSION_ANNOTATION);
  if (text === undefined && flatVersion === undefined) return { kind: 'absent' };
  if (flatVersion !== undefined && flatVersion !== SCHEMA_VERSION) {
    return { kind: 'unknown-schema', version: flatVersion };
  }
  const warnings: string[] = [];
  let parsed: unknown;
  try {
    parsed = text === undefined ? {} : JSON.parse(text);
  } catch {
    warnings.push(`${REGISTRY_ANNOTATION} is not JSON; rebuilt from this operator's view`);
    parsed = {};
  }
  if (!isObject(parsed)) {
    warnings.push(`${REGISTRY_ANNOTATION} is not a JSON object; rebuilt from this operator's view`);
    parsed = {};
  }
  const json = parsed as Record<string, unknown>;
  const version = field(json, 'schemaVersion');
  if (version !== undefined && version !== SCHEMA_VERSION) {
    return { kind: 'unknown-schema', version: String(version) };
  }
  const consumers: Record<string, Consumer> = {};
  const rawConsumers = field(json, 'consumers');
  if (rawConsumers !== undefined && !isObject(rawConsumers)) warnings.push('consumers is not an object');
  for (const [key, entry] of Object.entries(isObject(rawConsumers) ? rawConsumers : {})) {
    const operatorId = isObject(entry) ? str(field(entry, 'operatorId')) || key : '';
    if (!isObject(entry) || operatorId === '') {
      warnings.push(`consumer ${JSON.stringify(key)} is malformed; dropped`);
      continue;
    }
    const previous = consumers[operatorId];
    const consumer: Consumer = {
      operatorId,
      clusterId: str(field(entry, 'clusterId')),
      routes: [...new Set([...(previous?.routes ?? []), ...strings(field(entry, 'routes'))])].sort(),
      lastSeen: latest(previous?.lastSeen, str(field(entry, 'lastSeen'))),
    };
    consumers[operatorId] = consumer;
  }
  return {
    kind: 'ok',
    warnings,
    registry: {
      schemaVersion: SCHEMA_VERSION,
      serviceName: str(field(json, 'serviceName')),
      backend: str(field(json, 'backend')),
      ownerOperator:
        str(field(json, 'ownerOperator')) || (annotation(annotations, OWNER_OPERATOR_ANNOTATION) ?? ''),
      ownerCluster: str(field(json, 'ownerCluster')),
      consumers,
      vipAddresses: strings(field(json, 'vipAddresses')),
      lastUpdated: str(field(json, 'lastUpdated')),
    },
  };
}

function latest(a: string | undefined, b: string): string {
  if (a === undefined) return b;
  return (Date.parse(b) || 0) > (Date.parse(a) || 0) ? b : a;
}

/** The five annotations that hold a registry. */
export function registryAnnotations(registry: ServiceRegistry): Record<string, string> {
  const consumers = Object.fromEntries(
    Object.keys(registry.consumers)
      .sort()
      .map((key) => [key, registry.consumers[key]!]),
  );
  return {
    [REGISTRY_ANNOTATION]: JSON.stringify({ ...registry, consumers }),
    [OWNER_OPERATOR_ANNOTATION]: registry.ownerOperator,
    [CONSUMER_COUNT_ANNOTATION]: String(Object.keys(registry.consumers).length),
    [LAST_UPDATED_ANNOTATION]: registry.lastUpdated,
    [SCHEMA_VERSION_ANNOTATION]: SCHEMA_VERSION,
  };
}

/** Reads `tailscale.com/owner-references`; an unreadable value is reported, never overwritten. */
export function readOwnerRefs(annotations: Record<string, string> | undefined): OwnerRefsRead {
  const text = annotation(annotations, OWNER_REFERENCES_ANNOTATION);
  if (text === undefined) return { kind: 'absent' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { kind: 'invalid', message: `${OWNER_REFERENCES_ANNOTATION} is not JSON` };
  }
  if (!isObject(parsed))
    return { kind: 'invalid', message: `${OWNER_REFERENCES_ANNOTATION} is not an object` };
  const list = field(parsed, 'ownerRefs');
  if (list !== undefined && list !== null && !Array.isArray(list)) {
    return { kind: 'invalid', message: `${OWNER_REFERENCES_ANNOTATION}: ownerRefs is not a list` };
  }
  const refs: OwnerRef[] = [];
  for (const raw of (list ?? []) as unknown[]) {
    if (!isObject(raw))
      return { kind: 'invalid', message: `${OWNER_REFERENCES_ANNOTATION}: an entry is not an object` };
    const id = field(raw, 'operatorID');
    const resource = field(raw, 'resource');
    refs.push({
      operatorId: typeof id === 'string' && id !== '' ? id : undefined,
      exclusive: resource !== undefined && resource !== null,
      raw,
    });
  }
  return { kind: 'ok', refs, text };
}

/** The annotation value for `refs`, in the official operator's spelling. */
export function ownerRefsAnnotation(refs: OwnerRef[]): string {
  return JSON.stringify({ ownerRefs: refs.map((ref) => ref.raw) });
}

/** An owner reference naming `operatorId`, as the official operator writes its own. */
export function ownerRefFor(operatorId: string): OwnerRef {
  return { operatorId, exclusive: false, raw: { operatorID: operatorId } };
}
