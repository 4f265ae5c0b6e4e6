/**
 * Bringing a parent's proxies to their desired state, shared by the TailscaleEndpoints and
 * TailscaleProxyGroup reconcilers. Each step compares the desired objects with the informer caches and
 * writes only what differs, so an unchanged parent costs no write at all.
 *
 * One reconcile:
 * 1. auth keys: per replica, decide whether a key is needed (`planAuth`, pure) and mint only then;
 * 2. apply every desired object that is missing or differs (server-side apply, built from scratch); one
 *    the API server refuses as invalid becomes an `ApplyRejected` problem naming it;
 * 3. prune, in the official order: StatefulSets no longer wanted are deleted in the foreground and
 *    waited for; a replica's device is deleted through the API once its Pod is gone (404 is fine), then
 *    its state Secret, then its config Secret (and its unused auth key); RBAC and Services of a proxy
 *    go once its StatefulSet has gone. A shared certificate's Secret goes as soon as it is not wanted
 *    (the caller stops wanting it only once no config Secret serves its name), or after the StatefulSet
 *    on teardown.
 * Teardown is the same prune with nothing desired; the caller drops its finalizer once no child is left.
 *
 * A certificate's Secret is named after its DNS name, so two groups hosting one name compute the same
 * Secret: the older group keeps it (`claimOf`), the other leaves it as it is and its proxies share it
 * (their Role names it too), which is all they need from it.
 *
 * @module
 */
import type { KubernetesObject, V1Pod, V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import { PARENT_RESOURCE_TYPE_LABEL, parentKeyOf } from '../controller-runtime/index.ts';
import { OperatorError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { TailscaleApi } from '../tailscale/index.ts';
import { needsApply, withAppliedHash } from './compare.ts';
import { authKeyInConfig } from './config.ts';
import type { ProxyKube } from './kube.ts';
import {
  AUTH_KEY_ID_ANNOTATION,
  CERT_SECRET_TYPE,
  configSecretName,
  DEVICE_ID_ANNOTATION,
  PROXY_LABEL,
  REPLICA_LABEL,
  SECRET_TYPE_LABEL,
  stateSecretName,
  TAILNET_LABEL,
} from './names.ts';
import { buildProxySetObjects, EMPTY_CERT_DATA, type ProxySet, type ReplicaAuth } from './objects.ts';
import { ownershipOf } from './ownership.ts';
import { deviceIdOf, reissueRequestOf, secretTexts } from './state.ts';

/**
 * The kinds of object a proxy parent owns; informers over them (label `tailscale.com/managed`) feed the
 * cache, and `ownershipOf` decides which cached ones are the parent's.
 */
export const CHILD_KINDS = [
  'Secret',
  'StatefulSet',
  'Pod',
  'Service',
  'EndpointSlice',
  'ServiceAccount',
  'Role',
  'RoleBinding',
  'PodDisruptionBudget',
] as const;
export type ChildKind = (typeof CHILD_KINDS)[number];

export interface ChildCache {
  get(kind: ChildKind, namespace: string, name: string): KubernetesObject | undefined;
  list(kind: ChildKind): KubernetesObject[];
}

/** A problem to report in the parent's status. */
export interface SyncProblem {
  reason: string;
  message: string;
  /** Clears by itself (API down): retry with backoff. */
  transient: boolean;
}

export interface SyncState {
  /** Keys minted but not yet stored (the Secret write failed): reused, never minted twice. */
  pendingKeys: Map<string, ReplicaAuth>;
  /** When each replica last got a re-issued key, for rate limiting. */
  lastReissue: Map<string, number>;
  /** Devices already deleted, so a retried prune does not call the API again. */
  deletedDevices: Set<string>;
}

export const createSyncState = (): SyncState => ({
  pendingKeys: new Map(),
  lastReissue: new Map(),
  deletedDevices: new Set(),
});

export interface SyncInput {
  parentType: string;
  parentKey: string;
  sets: ProxySet[];
  /**
   * Other desired objects (egress Services and their EndpointSlices), applied after the sets. Their
   * names are computed, so another parent may compute the same one: see {@link claimOf}.
   */
  extra: KubernetesObject[];
  /**
   * The creationTimestamp (ms) of a parent, by parent type and queue key, undefined when it is not
   * cached; decides who keeps an egress Service two parents claim (oldest first, then by key).
   */
  createdOf?(parentType: string, parentKey: string): number | undefined;
  /** Tags of new auth keys, per set base. */
  tags: (set: ProxySet) => string[];
  /** Device ids the parent's status knows, by Pod (= state Secret) name: proof a device exists. */
  knownDevices: Map<string, string>;
  cache: ChildCache;
  kube: ProxyKube;
  tailscale(tailnet: string): TailscaleApi | undefined;
  /**
   * Why a tailnet must not be used for new auth keys now (its TailscaleTailnet is absent or not Ready),
   * asked before the API is: a client exists while the tailnet's OAuth exchange fails, and its calls
   * would only fail the same way. Undefined when the tailnet is Ready.
   */
  tailnetNotReady?(tailnet: string): string | undefined;
  state: SyncState;
  now: number;
  reissueIntervalMs: number;
  signal: AbortSignal;
  log: Logger;
}

export interface SyncResult {
  /** Writes made (applies and deletes), for logs and tests. */
  writes: number;
  /** Keys minted in this pass. */
  minted: number;
  /** Children still on their way out. */
  pruning: boolean;
  /** Children of the parent still present after this pass (0 = teardown finished). */
  remaining: number;
  problems: SyncProblem[];
  /** Extra objects (egress Services, `namespace/name`) left to the older parent that holds them. */
  heldByOthers: string[];
  /** Come back after this long (a rate-limited re-issue). */
  requeueAfterMs?: number;
}

export type AuthPlan =
  /** The device exists: no key in the config. */
  | { action: 'none'; deviceId: string }
  /** Keep the key the config already has. */
  | { action: 'keep'; auth: ReplicaAuth }
  | { action: 'mint' }
  /** The proxy asked for a new key: delete its stale device, then mint. */
  | { action: 'reissue'; staleDeviceId?: string }
  /** A re-issue was asked for too soon after the last one. */
  | { action: 'wait'; auth: ReplicaAuth; retryInMs: number };

/**
 * Whether a replica needs an auth key (pure). A key is minted only when the config has no usable one
 * and the device does not exist; it is dropped once the state Secret has `device_id`; a re-issue
 * request (`reissue_authkey` naming the key in the config, or `no-authkey`) is honoured at most once
 * per interval.
 */
export function planAuth(input: {
  state: V1Secret | undefined;
  config: V1Secret | undefined;
  knownDeviceId: string | undefined;
  pending: ReplicaAuth | undefined;
  lastReissue: number | undefined;
  now: number;
  reissueIntervalMs: number;
}): AuthPlan {
  const current = authKeyInConfig(secretTexts(input.config));
  const currentAuth: ReplicaAuth = current ? { key: current, ...idOf(input.config) } : {};
  const reissue = reissueRequestOf(input.state);
  const deviceId = deviceIdOf(input.state);
  if (reissue && (reissue === current || (reissue === 'no-authkey' && !current))) {
    const since = input.lastReissue === undefined ? Infinity : input.now - input.lastReissue;
    if (since < input.reissueIntervalMs)
      return { action: 'wait', auth: currentAuth, retryInMs: input.reissueIntervalMs - since };
    return { action: 'reissue', ...(deviceId ? { staleDeviceId: deviceId } : {}) };
  }
  // Answered, and the proxy has not restarted with the new key yet: its device_id is the deleted one.
  if (reissue && current) return { action: 'keep', auth: currentAuth };
  const known = deviceId ?? deviceIdAnnotationOf(input.config) ?? input.knownDeviceId;
  if (known) return { action: 'none', deviceId: known };
  if (current) return { action: 'keep', auth: currentAuth };
  if (input.pending?.key) return { action: 'keep', auth: input.pending };
  return { action: 'mint' };
}

/** The device id the operator recorded on a config Secret. */
export const deviceIdAnnotationOf = (config: KubernetesObject | undefined) =>
  config?.metadata?.annotations?.[DEVICE_ID_ANNOTATION];

function idOf(config: V1Secret | undefined): { id?: string } {
  const id = config?.metadata?.annotations?.[AUTH_KEY_ID_ANNOTATION];
  return id ? { id } : {};
}

const isCertSecret = (obj: KubernetesObject) =>
  obj.kind === 'Secret' && obj.metadata?.labels?.[SECRET_TYPE_LABEL] === CERT_SECRET_TYPE;

const keyOfObject = (obj: KubernetesObject) =>
  `${obj.kind}/${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;

/**
 * Every cached child of the parent: what the operator wrote for it, and the Pods of its StatefulSets
 * (see `ownershipOf`). Objects that only carry its labels are not among them, so prune never deletes
 * them and teardown does not wait for them.
 */
export function childrenOf(cache: ChildCache, parentType: string, parentKey: string): KubernetesObject[] {
  return CHILD_KINDS.flatMap((kind) =>
    cache
      .list(kind)
      .map((obj) => ({ ...obj, kind }))
      .filter((obj) => ownershipOf(obj, parentType, parentKey) !== 'foreign'),
  );
}

export async function syncProxies(input: SyncInput): Promise<SyncResult> {
  const { cache, kube, signal, log, state } = input;
  const result: SyncResult = {
    writes: 0,
    minted: 0,
    pruning: false,
    remaining: 0,
    problems: [],
    heldByOthers: [],
  };
  const problem = (reason: string, message: string, transient: boolean) =>
    result.problems.push({ reason, message, transient });

  // 1. Auth keys.
  const desired: KubernetesObject[] = [];
  /** Desired objects to leave as they are (a config Secret whose new key could not be minted). */
  const keep = new Set<string>();
  for (const set of input.sets) {
    const auth: ReplicaAuth[] = [];
    const skip = new Set<string>();
    for (let i = 0; i < set.replicas; i++) {
      const stateName = stateSecretName(set.base, i);
      const configName = configSecretName(set.base, i);
      const stateSecret = cache.get('Secret', set.namespace, stateName) as V1Secret | undefined;
      const config = cache.get('Secret', set.namespace, configName) as V1Secret | undefined;
      const plan = planAuth({
        state: stateSecret,
        config,
        knownDeviceId: input.knownDevices.get(stateName),
        pending: state.pendingKeys.get(configName),
        lastReissue: state.lastReissue.get(configName),
        now: input.now,
        reissueIntervalMs: input.reissueIntervalMs,
      });
      if (plan.action === 'none') auth.push({ deviceId: plan.deviceId });
      else if (plan.action === 'keep') auth.push(plan.auth);
      else if (plan.action === 'wait') {
        auth.push(plan.auth);
        result.requeueAfterMs = Math.min(result.requeueAfterMs ?? Infinity, plan.retryInMs);
      } else {
        const notReady = input.tailnetNotReady?.(set.tailnet);
        const client = notReady === undefined ? input.tailscale(set.tailnet) : undefined;
        if (!client) {
          problem(
            'TailnetNotReady',
            `${notReady ?? `TailscaleTailnet ${set.tailnet} is not Ready`}; no auth key for ${stateName}`,
            false,
          );
          auth.push({});
          skip.add(configName);
          continue;
        }
        try {
          if (plan.action === 'reissue') {
            state.lastReissue.set(configName, input.now);
            if (plan.staleDeviceId) {
              await client.devices.delete(plan.staleDeviceId, { signal });
              log.info(
                { replica: stateName, device: plan.staleDeviceId },
                'deleted the stale device of a re-issue',
              );
            }
          }
          const key = await client.keys.create(
            { tags: input.tags(set), preauthorized: true, reusable: false, ephemeral: false },
            { signal },
          );
          result.minted++;
          const minted = { key: key.key, id: key.id };
          state.pendingKeys.set(configName, minted);
          auth.push(minted);
          log.info(
            { replica: stateName, keyId: key.id, reissue: plan.action === 'reissue' },
            'minted an auth key',
          );
        } catch (error) {
          const e = OperatorError.from(error);
          problem(
            'AuthKeyFailed',
            `minting an auth key for ${stateName}: ${e.message}`,
            e.code === 'Transient' || e.code === 'RateLimited' || e.code === 'Canceled',
          );
          auth.push({});
          skip.add(configName);
        }
      }
    }
    for (const obj of buildProxySetObjects(set, auth)) {
      // A config Secret without the key it needs is not written; an existing one is left as it is.
      if (obj.kind === 'Secret' && skip.has(obj.metadata!.name!)) {
        if (cache.get('Secret', set.namespace, obj.metadata!.name!)) {
          keep.add(keyOfObject(obj));
          desired.push(obj);
        }
        continue;
      }
      desired.push(obj);
    }
  }
  desired.push(...input.extra);
  const extra = new Set(input.extra.map(keyOfObject));
  const conflicts = new Set<string>();

  // 2. Apply what differs.
  const wanted = new Set<string>();
  for (const obj of desired) {
    wanted.add(keyOfObject(obj));
    const observed = cache.get(obj.kind as ChildKind, obj.metadata!.namespace!, obj.metadata!.name!);
    if (keep.has(keyOfObject(obj))) continue;
    if (extra.has(keyOfObject(obj))) {
      const claim = claimOf(input, observed);
      if (claim.holder) {
        const service = `${obj.metadata!.namespace}/${obj.metadata!.name}`;
        if (!conflicts.has(service)) {
          conflicts.add(service);
          problem(
            'EgressServiceConflict',
            `egress Service ${service} is held by ${claim.holder}, the older claimant; this object's ` +
              'endpoint of that name is not served until the holder lets it go, yet the extension hooks ' +
              "still point at that Service name (so its traffic reaches the holder's target)",
            false,
          );
        }
        continue;
      }
    }
    const body = withAppliedHash(obj);
    if (isCertSecret(obj)) {
      if (observed && claimOf(input, observed).holder) continue; // shared with its older holder
      if (!observed) {
        if (await kube.create({ ...body, data: { ...EMPTY_CERT_DATA } } as KubernetesObject, signal))
          result.writes++;
        else
          log.info(
            { secret: obj.metadata!.name },
            'a Secret named after the certificate exists already; left as it is',
          );
        continue;
      }
    }
    if (!needsApply(body, observed)) continue;
    try {
      await kube.apply(body, signal);
    } catch (error) {
      // Refused as invalid (a pass-through field such as affinity that Pod validation rejects):
      // retrying the same object cannot help, so say which field and carry on with the rest. Not for
      // Secrets, whose refusal could quote what they hold.
      const e = OperatorError.from(error);
      if (e.code !== 'Invalid' || obj.kind === 'Secret') throw error;
      problem(
        'ApplyRejected',
        `the API server refused ${obj.kind} ${obj.metadata!.namespace}/${obj.metadata!.name}: ${e.message}`,
        false,
      );
      continue;
    }
    result.writes++;
    if (obj.kind === 'Secret' && obj.metadata?.labels?.[SECRET_TYPE_LABEL] === 'config')
      state.pendingKeys.delete(obj.metadata.name!);
  }

  // 3. Prune.
  const children = childrenOf(cache, input.parentType, input.parentKey);
  const unwanted = children.filter((obj) => !wanted.has(keyOfObject(obj)));
  const statefulSets = new Map(
    children
      .filter((obj) => obj.kind === 'StatefulSet')
      .map((obj) => [obj.metadata!.name!, obj as V1StatefulSet]),
  );
  const podExists = (namespace: string, name: string) => cache.get('Pod', namespace, name) !== undefined;
  const unwantedState = new Set(
    unwanted
      .filter((o) => o.kind === 'Secret' && o.metadata?.labels?.[SECRET_TYPE_LABEL] === 'state')
      .map((o) => o.metadata!.name!),
  );
  for (const obj of unwanted) {
    const name = obj.metadata!.name!;
    const namespace = obj.metadata!.namespace!;
    const base = obj.metadata?.labels?.[PROXY_LABEL];
    const sts = base ? statefulSets.get(base) : undefined;
    const stsWanted = base ? wanted.has(`StatefulSet/${namespace}/${base}`) : false;
    try {
      if (obj.kind === 'StatefulSet') {
        result.pruning = true;
        if (!obj.metadata?.deletionTimestamp) {
          await kube.delete(obj, { foreground: true }, signal);
          result.writes++;
          log.info({ statefulSet: name }, 'deleting a proxy StatefulSet (foreground)');
        }
        continue;
      }
      if (obj.kind === 'Pod') continue; // the StatefulSet's to remove
      if (isCertSecret(obj)) {
        if (sts && !stsWanted) {
          result.pruning = true;
          continue;
        }
        await kube.delete(obj, {}, signal);
        result.writes++;
        log.info({ secret: name }, 'deleted the Secret of a certificate no longer served');
        continue;
      }
      if (obj.kind === 'Secret') {
        const type = obj.metadata?.labels?.[SECRET_TYPE_LABEL];
        const replica = Number(obj.metadata?.labels?.[REPLICA_LABEL] ?? '-1');
        // The replica must be gone first: its StatefulSet deleted or scaled below it, and its Pod gone.
        const replicaRuns = sts !== undefined && (stsWanted ? (sts.spec?.replicas ?? 0) > replica : true);
        const pod = `${base}-${replica}`;
        if (replicaRuns || podExists(namespace, pod)) {
          result.pruning = true;
          continue;
        }
        if (type === 'config' && unwantedState.has(`${base}-${replica}`)) {
          result.pruning = true; // after its state Secret
          continue;
        }
        if (type === 'state' || type === 'config') {
          // The state Secret's device_id, else the one recorded on the config Secret.
          const deviceId = type === 'state' ? deviceIdOf(obj as V1Secret) : deviceIdAnnotationOf(obj);
          if (deviceId && !state.deletedDevices.has(deviceId)) {
            const tailnet = obj.metadata?.labels?.[TAILNET_LABEL] ?? '';
            const client = input.tailscale(tailnet);
            if (!client) {
              problem(
                'TailnetNotReady',
                `TailscaleTailnet ${tailnet} is not Ready; cannot delete device ${deviceId}`,
                false,
              );
              result.pruning = true;
              continue;
            }
            await client.devices.delete(deviceId, { signal });
            state.deletedDevices.add(deviceId);
            log.info({ replica: name, device: deviceId }, 'deleted the device of a removed replica');
          }
        }
        if (type === 'config') {
          await deleteUnusedKey(obj as V1Secret, input);
          state.pendingKeys.delete(name);
          state.lastReissue.delete(name);
        }
        await kube.delete(obj, {}, signal);
        result.writes++;
        continue;
      }
      // RBAC, Services and the PDB of a proxy stay while its StatefulSet does.
      if (sts && !stsWanted) {
        result.pruning = true;
        continue;
      }
      await kube.delete(obj, {}, signal);
      result.writes++;
    } catch (error) {
      const e = OperatorError.from(error);
      problem(
        'CleanupFailed',
        `removing ${obj.kind} ${namespace}/${name}: ${e.message}`,
        e.code !== 'Invalid',
      );
      result.pruning = true;
    }
  }
  result.remaining = children.length;
  result.heldByOthers = [...conflicts].sort();
  return result;
}

const KIND_OF_TYPE: Record<string, string> = {
  'tailscaleendpoints.gateway.tailscale.com': 'TailscaleEndpoints',
  'tailscaleproxygroup.gateway.tailscale.com': 'TailscaleProxyGroup',
};

/**
 * Whether the parent may write `observed` (an egress Service or EndpointSlice under a computed name):
 * yes when it is absent or already the parent's; when another parent's labels are on it, the older
 * of the two (creationTimestamp, then type and key, as Gateway API resolves conflicts) keeps it. A
 * holder that is not cached keeps it too: its teardown deletes the object, and that delete event
 * enqueues the other claimants. `holder` describes the other owner when the parent must leave it be.
 */
export function claimOf(
  input: Pick<SyncInput, 'parentType' | 'parentKey' | 'createdOf'>,
  observed: KubernetesObject | undefined,
): { holder?: string } {
  if (!observed) return {};
  const labels = observed.metadata?.labels ?? {};
  const type = labels[PARENT_RESOURCE_TYPE_LABEL] ?? '';
  const key = parentKeyOf(observed, type) ?? '';
  if (type === input.parentType && key === input.parentKey) return {};
  const holder = `${KIND_OF_TYPE[type] ?? (type || 'an unknown owner')} ${key}`.trim();
  const theirs = input.createdOf?.(type, key);
  const ours = input.createdOf?.(input.parentType, input.parentKey);
  if (theirs === undefined || ours === undefined) return { holder };
  const order = ours - theirs || `${input.parentType}/${input.parentKey}`.localeCompare(`${type}/${key}`);
  return order < 0 ? {} : { holder };
}

/** A config Secret whose key was never used: delete the key too (best effort; keys also expire). */
async function deleteUnusedKey(config: V1Secret, input: SyncInput): Promise<void> {
  const id = config.metadata?.annotations?.[AUTH_KEY_ID_ANNOTATION];
  if (!id || !authKeyInConfig(secretTexts(config))) return;
  const client = input.tailscale(config.metadata?.labels?.[TAILNET_LABEL] ?? '');
  await client?.keys.delete(id, { signal: input.signal }).catch((error: unknown) => {
    input.log.warn({ err: error, keyId: id }, 'could not delete an unused auth key; it expires by itself');
  });
}

/** Pods of a proxy set, from the cache. */
export function podsOf(cache: ChildCache, set: Pick<ProxySet, 'base' | 'namespace'>): V1Pod[] {
  return (cache.list('Pod') as V1Pod[]).filter(
    (pod) => pod.metadata?.namespace === set.namespace && pod.metadata?.labels?.[PROXY_LABEL] === set.base,
  );
}
