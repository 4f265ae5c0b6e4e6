/**
 * What to do with a Tailscale Service, decided from the service as just read: pure functions, so every
 * rule (attach, create, detach, sweep, refuse, owner transfer, "PUT only when something differs") is
 * testable without a control plane, and the coordinator only reads, writes and retries.
 *
 * @module
 */

import type { TailscaleService, TailscaleServiceSpec } from '../tailscale/index.ts';
import {
  annotation,
  CONSUMER_COUNT_ANNOTATION,
  type Consumer,
  LAST_UPDATED_ANNOTATION,
  OWNER_OPERATOR_ANNOTATION,
  OWNER_REFERENCES_ANNOTATION,
  type OwnerRef,
  ownerRefFor,
  ownerRefsAnnotation,
  REGISTRY_ANNOTATION,
  readOwnerRefs,
  readRegistry,
  registryAnnotations,
  SCHEMA_VERSION,
  SCHEMA_VERSION_ANNOTATION,
  type ServiceRegistry,
} from './registry.ts';

/** Who we are: the consumer key is the operator id; the cluster id says where it runs. */
export interface Identity {
  operatorId: string;
  clusterId: string;
}

/** The parts of a service its owner decides. */
export interface ServiceShape {
  tags?: string[];
  ports?: string[];
  comment?: string;
}

/**
 * Why a service is left alone. The caller reports it as a Warning Event and a False condition; nothing
 * is written to the service.
 */
export type RefusalReason =
  /** Neither our registry nor the official operator's owner references: a person made it. */
  | 'NotManaged'
  /** Our registry in a schema newer than this code understands. */
  | 'UnknownSchema'
  /** An owner reference with a `resource`: exclusively owned (e.g. by a kube-apiserver ProxyGroup). */
  | 'ExclusiveOwner'
  /** `tailscale.com/owner-references` is unreadable; overwriting it could drop another operator. */
  | 'InvalidOwnerReferences';

export interface Refusal {
  reason: RefusalReason;
  message: string;
}

/** Tags or ports we asked for that the service, owned by someone else, does not have. */
export interface ShapeMismatch {
  field: 'tags' | 'ports' | 'comment';
  wanted: string[] | string;
  actual: string[] | string;
}

/** A service as the coordinator reports it. */
export interface ServiceView {
  name: string;
  addrs: string[];
  /** Operator id of the owner (ours, another gateway operator's, or the official operator's). */
  owner: string;
  consumers: Consumer[];
  /** Owner references of operators that are not gateway consumers (the official operator). */
  otherOwners: string[];
  warnings: string[];
}

export type Plan =
  | { action: 'refuse'; refusal: Refusal }
  | { action: 'none'; view: ServiceView | null; mismatches: ShapeMismatch[] }
  | {
      action: 'put';
      spec: TailscaleServiceSpec;
      create: boolean;
      mismatches: ShapeMismatch[];
      removed: string[];
    }
  | { action: 'delete'; removed: string[] };

export interface EnsureIntent {
  /** Our routes that must be recorded. */
  add: string[];
  /** Our routes that must not be. */
  remove: string[];
  backend?: string;
  shape?: ServiceShape;
  /** `add` is the whole set: routes recorded earlier (e.g. before a restart) and not in it go. */
  exact?: boolean;
}

interface Analysis {
  registry: ServiceRegistry | null;
  refs: OwnerRef[] | null;
  warnings: string[];
}

function analyse(current: TailscaleService): Analysis | Refusal {
  const refs = readOwnerRefs(current.annotations);
  if (refs.kind === 'invalid') {
    return {
      reason: 'InvalidOwnerReferences',
      message: `Tailscale Service ${current.name}: ${refs.message}; left alone so no operator's ownership is lost`,
    };
  }
  const registry = readRegistry(current.annotations);
  if (registry.kind === 'unknown-schema') {
    return {
      reason: 'UnknownSchema',
      message: `Tailscale Service ${current.name} has a registry in schema ${JSON.stringify(registry.version)}, newer than this operator's ${SCHEMA_VERSION}; left alone (upgrade the operator)`,
    };
  }
  if (registry.kind === 'absent' && refs.kind === 'absent') {
    return {
      reason: 'NotManaged',
      message: `Tailscale Service ${current.name} exists without ${REGISTRY_ANNOTATION} or ${OWNER_REFERENCES_ANNOTATION}: it was likely created by a person or another tool, and is left alone. Delete it, or pick another service name.`,
    };
  }
  return {
    registry: registry.kind === 'ok' ? registry.registry : null,
    refs: refs.kind === 'ok' ? refs.refs : null,
    warnings: registry.kind === 'ok' ? registry.warnings : [],
  };
}

const isRefusal = (value: Analysis | Refusal): value is Refusal => 'reason' in value;

/** Whether a consumer's lastSeen is older than `ms` (or unreadable) at `now`. */
export function olderThan(lastSeen: string | undefined, now: number, ms: number): boolean {
  const seen = lastSeen === undefined ? Number.NaN : Date.parse(lastSeen);
  return !Number.isFinite(seen) || now - seen > ms;
}

function emptyRegistry(current: TailscaleService, refs: OwnerRef[] | null): ServiceRegistry {
  return {
    schemaVersion: SCHEMA_VERSION,
    serviceName: current.name,
    backend: '',
    ownerOperator: refs?.find((r) => r.operatorId)?.operatorId ?? '',
    ownerCluster: '',
    consumers: {},
    vipAddresses: [],
    lastUpdated: '',
  };
}

const cloneRegistry = (r: ServiceRegistry): ServiceRegistry => ({
  ...r,
  consumers: Object.fromEntries(
    Object.entries(r.consumers).map(([k, c]) => [k, { ...c, routes: [...c.routes] }]),
  ),
  vipAddresses: [...r.vipAddresses],
});

const sameList = (a: readonly string[] | undefined, b: readonly string[] | undefined) =>
  JSON.stringify([...(a ?? [])].sort()) === JSON.stringify([...(b ?? [])].sort());

function view(current: TailscaleService, analysis: Analysis): ServiceView {
  const consumers = Object.values(analysis.registry?.consumers ?? {});
  const ids = new Set(consumers.map((c) => c.operatorId));
  return {
    name: current.name,
    addrs: current.addrs ?? [],
    owner: analysis.registry?.ownerOperator || (analysis.refs?.find((r) => r.operatorId)?.operatorId ?? ''),
    consumers,
    otherOwners: (analysis.refs ?? [])
      .map((r) => r.operatorId)
      .filter((id): id is string => id !== undefined && !ids.has(id)),
    warnings: analysis.warnings,
  };
}

/** The view of a service read from the control plane, or null when it is not readable as shared. */
export function describeService(current: TailscaleService): ServiceView | Refusal {
  const analysis = analyse(current);
  return isRefusal(analysis) ? analysis : view(current, analysis);
}

/** Attach (or create) with `intent.add`, detach `intent.remove`: one step towards the intent. */
export function planEnsure(
  name: string,
  current: TailscaleService | null,
  self: Identity,
  intent: EnsureIntent,
  now: number,
  heartbeatMs: number,
): Plan {
  const nowIso = new Date(now).toISOString();
  const wantRoutes = (existing: string[]) => {
    const routes = new Set(existing);
    if (intent.exact) routes.clear();
    for (const route of intent.add) routes.add(route);
    for (const route of intent.remove) routes.delete(route);
    return [...routes].sort();
  };
  if (current === null) {
    const routes = wantRoutes([]);
    if (routes.length === 0) return { action: 'none', view: null, mismatches: [] };
    const registry: ServiceRegistry = {
      schemaVersion: SCHEMA_VERSION,
      serviceName: name,
      backend: intent.backend ?? '',
      ownerOperator: self.operatorId,
      ownerCluster: self.clusterId,
      consumers: {
        [self.operatorId]: {
          operatorId: self.operatorId,
          clusterId: self.clusterId,
          routes,
          lastSeen: nowIso,
        },
      },
      vipAddresses: [],
      lastUpdated: nowIso,
    };
    return {
      action: 'put',
      create: true,
      mismatches: [],
      removed: [],
      spec: {
        name,
        ...shapeSpec(intent.shape),
        annotations: {
          ...registryAnnotations(registry),
          [OWNER_REFERENCES_ANNOTATION]: ownerRefsAnnotation([ownerRefFor(self.operatorId)]),
        },
      },
    };
  }
  const analysis = analyse(current);
  if (isRefusal(analysis)) {
    // Detaching from a service that is not ours to read: nothing of ours can be in it.
    if (intent.add.length === 0 && analysis.reason === 'NotManaged') {
      return { action: 'none', view: null, mismatches: [] };
    }
    return { action: 'refuse', refusal: analysis };
  }
  if (intent.add.length > 0) {
    const exclusive = analysis.refs?.find((r) => r.exclusive && r.operatorId !== self.operatorId);
    if (exclusive) {
      return {
        action: 'refuse',
        refusal: {
          reason: 'ExclusiveOwner',
          message: `Tailscale Service ${current.name} is exclusively owned by operator ${exclusive.operatorId ?? '(unnamed)'} (an owner reference with a resource); it cannot be shared`,
        },
      };
    }
  }
  const before = analysis.registry ?? emptyRegistry(current, analysis.refs);
  const registry = cloneRegistry(before);
  const mine = registry.consumers[self.operatorId];
  const routes = wantRoutes(mine?.routes ?? []);
  if (routes.length === 0) delete registry.consumers[self.operatorId];
  else {
    registry.consumers[self.operatorId] = {
      operatorId: self.operatorId,
      clusterId: self.clusterId,
      routes,
      lastSeen: mine?.lastSeen ?? nowIso,
    };
  }
  if (intent.backend && !registry.backend) registry.backend = intent.backend;
  const refs = (analysis.refs ?? []).filter((r) => r.operatorId !== self.operatorId || routes.length > 0);
  if (routes.length > 0 && !refs.some((r) => r.operatorId === self.operatorId)) {
    refs.push(ownerRefFor(self.operatorId));
  }
  return finish(current, analysis, registry, refs, self, now, heartbeatMs, intent.shape, []);
}

/**
 * Removes consumers whose lastSeen is older than `staleAfterMs` (their owner references too). Our own
 * consumer goes only when this process no longer wants it (`ownWanted` false); a wanted one is left to
 * the heartbeat.
 */
export function planSweep(
  current: TailscaleService,
  self: Identity,
  now: number,
  staleAfterMs: number,
  heartbeatMs: number,
  ownWanted: boolean,
): Plan {
  const analysis = analyse(current);
  if (isRefusal(analysis) || analysis.registry === null)
    return { action: 'none', view: null, mismatches: [] };
  const registry = cloneRegistry(analysis.registry);
  const removed: string[] = [];
  for (const consumer of Object.values(registry.consumers)) {
    if (consumer.operatorId === self.operatorId && ownWanted) continue;
    if (olderThan(consumer.lastSeen, now, staleAfterMs)) {
      delete registry.consumers[consumer.operatorId];
      removed.push(consumer.operatorId);
    }
  }
  if (removed.length === 0) return { action: 'none', view: view(current, analysis), mismatches: [] };
  const refs = (analysis.refs ?? []).filter(
    (r) => r.operatorId === undefined || !removed.includes(r.operatorId),
  );
  return finish(current, analysis, registry, refs, self, now, heartbeatMs, undefined, removed);
}

function shapeSpec(shape: ServiceShape | undefined): Partial<TailscaleServiceSpec> {
  return {
    ...(shape?.tags ? { tags: [...shape.tags] } : {}),
    ...(shape?.ports ? { ports: [...shape.ports] } : {}),
    ...(shape?.comment !== undefined ? { comment: shape.comment } : {}),
  };
}

/** Owner transfer, delete-or-put, and "write only what differs". */
function finish(
  current: TailscaleService,
  analysis: Analysis,
  registry: ServiceRegistry,
  refs: OwnerRef[],
  self: Identity,
  now: number,
  heartbeatMs: number,
  shape: ServiceShape | undefined,
  removed: string[],
): Plan {
  const nowIso = new Date(now).toISOString();
  const consumerIds = Object.keys(registry.consumers).sort();
  const refIds = refs.map((r) => r.operatorId).filter((id): id is string => id !== undefined);
  // Ownership passes to a remaining consumer (the smallest id, so racing operators agree), else to
  // another owner reference, once the owner is neither.
  if (!consumerIds.includes(registry.ownerOperator) && !refIds.includes(registry.ownerOperator)) {
    registry.ownerOperator = consumerIds[0] ?? refIds[0] ?? '';
  }
  registry.ownerCluster = registry.consumers[registry.ownerOperator]?.clusterId ?? '';
  registry.vipAddresses = [...(current.addrs ?? [])];
  registry.serviceName = current.name;

  if (consumerIds.length === 0 && refs.length === 0) return { action: 'delete', removed };

  // Only the owner shapes the service, and only while no operator outside the registry (the official
  // one) shares it: two owners with different wishes would otherwise overwrite each other forever.
  const others = refIds.filter((id) => !consumerIds.includes(id));
  const enforce = shape !== undefined && registry.ownerOperator === self.operatorId && others.length === 0;
  const mismatches: ShapeMismatch[] = [];
  const next: Partial<TailscaleServiceSpec> = {};
  if (shape) {
    const compare = (fieldName: 'tags' | 'ports') => {
      const wanted = shape[fieldName];
      if (wanted === undefined || sameList(wanted, current[fieldName])) return;
      if (enforce) next[fieldName] = [...wanted];
      else
        mismatches.push({ field: fieldName, wanted: [...wanted], actual: [...(current[fieldName] ?? [])] });
    };
    compare('tags');
    compare('ports');
    if (shape.comment !== undefined && shape.comment !== (current.comment ?? '') && enforce) {
      next.comment = shape.comment;
    }
  }

  const keepRegistry = analysis.registry !== null || consumerIds.length > 0;
  const mine = registry.consumers[self.operatorId];
  const build = (): Record<string, string> => {
    const annotations: Record<string, string> = {};
    const ours = new Set(
      [
        REGISTRY_ANNOTATION,
        OWNER_OPERATOR_ANNOTATION,
        CONSUMER_COUNT_ANNOTATION,
        LAST_UPDATED_ANNOTATION,
        SCHEMA_VERSION_ANNOTATION,
        OWNER_REFERENCES_ANNOTATION,
      ].map((k) => k.toLowerCase()),
    );
    for (const [key, value] of Object.entries(current.annotations ?? {})) {
      if (!ours.has(key.toLowerCase())) annotations[key] = value;
    }
    if (keepRegistry) Object.assign(annotations, registryAnnotations(registry));
    const refsBefore = annotation(current.annotations, OWNER_REFERENCES_ANNOTATION);
    if (refs.length > 0) {
      const unchanged =
        refsBefore !== undefined &&
        analysis.refs !== null &&
        analysis.refs.length === refs.length &&
        analysis.refs.every((r, i) => r === refs[i]);
      annotations[OWNER_REFERENCES_ANNOTATION] = unchanged ? refsBefore : ownerRefsAnnotation(refs);
    }
    return annotations;
  };

  // First with the old timestamps: does anything besides time differ?
  const before = analysis.registry;
  if (before) registry.lastUpdated = before.lastUpdated;
  const candidate = build();
  const differs =
    Object.keys(next).length > 0 ||
    JSON.stringify(sorted(candidate)) !== JSON.stringify(sorted(current.annotations ?? {}));
  const heartbeatDue = mine !== undefined && olderThan(mine.lastSeen, now, heartbeatMs);
  if (!differs && !heartbeatDue) return { action: 'none', view: view(current, analysis), mismatches };

  if (mine && (heartbeatDue || differs)) mine.lastSeen = nowIso;
  registry.lastUpdated = nowIso;
  return {
    action: 'put',
    create: false,
    mismatches,
    removed,
    spec: {
      name: current.name,
      ...(current.addrs && current.addrs.length > 0 ? { addrs: [...current.addrs] } : {}),
      ...next,
      annotations: build(),
    },
  };
}

const sorted = (map: Record<string, string>) =>
  Object.fromEntries(Object.entries(map).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
