/**
 * The operator's identity on the tailnet: an operator id (this installation) and a cluster id (the
 * cluster it runs in). The ServiceCoordinator keys our consumer entry and owner reference on shared
 * Tailscale Services by the operator id, so it must survive restarts, upgrades, leader changes and
 * reschedules, and must never depend on which object happens to be reconciled first (the Go
 * prototype's bug: reference prior-art-review.md §5).
 *
 * Decision: `--operator-id` and `--cluster-id` win when given. Otherwise both come from the ConfigMap
 * `tailscale-gateway-identity` in the operator's namespace, created once:
 *
 * - operator id: `tsgw-` + 16 random hex digits. Random rather than derived from the cluster, because
 *   two installations in one cluster (two releases, two namespaces) are two operators and must not
 *   share a consumer entry; persisted, because it must not change on restart. The create is atomic in
 *   the API server, so replicas starting together agree (the loser of the create reads the winner's).
 * - cluster id: the UID of the `kube-system` namespace at the time the ConfigMap is created (the
 *   default KEP-2149 "ClusterId" suggests: it lives as long as the cluster and every installation in
 *   the cluster sees the same one), or a random `cluster-…` id when that namespace cannot be read.
 *   Persisted too, so it does not change if RBAC does.
 *
 * Deleting the ConfigMap gives the operator a new identity on its next start; services it attached to
 * keep the old consumer entry until the stale sweep of another operator (or this one) removes it.
 *
 * @module
 */

import type { Clock } from '../../controller-runtime/index.ts';
import { OperatorError } from '../../errors.ts';
import type { KubeClient } from '../../kube/index.ts';
import type { Logger } from '../../observability/logger.ts';
import { createBackoff } from '../../time/backoff.ts';
import { sleep, systemClock } from '../../time/clock.ts';

/** Name of the ConfigMap holding the persisted identity, in the operator's namespace. */
export const IDENTITY_CONFIGMAP = 'tailscale-gateway-identity';
const OPERATOR_KEY = 'operatorId';
const CLUSTER_KEY = 'clusterId';

export type IdentitySource = 'flag' | 'configmap';

export interface OperatorIdentity {
  operatorId: string;
  clusterId: string;
  /** Where each value came from. */
  source: { operatorId: IdentitySource; clusterId: IdentitySource };
}

export interface ResolveIdentityOptions {
  kube: Pick<KubeClient, 'request'>;
  /** The operator's namespace (where the ConfigMap lives). */
  namespace: string;
  /** `--operator-id`, when set. */
  operatorId?: string | undefined;
  /** `--cluster-id`, when set. */
  clusterId?: string | undefined;
  log: Pick<Logger, 'info' | 'warn' | 'debug'>;
  signal?: AbortSignal;
  /** Random hex for new ids; tests pin it. */
  randomHex?: (digits: number) => string;
}

interface ConfigMap {
  metadata?: { resourceVersion?: string };
  data?: Record<string, string>;
}

const defaultHex = (digits: number) =>
  Array.from(crypto.getRandomValues(new Uint8Array(Math.ceil(digits / 2))), (b) =>
    b.toString(16).padStart(2, '0'),
  )
    .join('')
    .slice(0, digits);

const codeOf = (error: unknown) => OperatorError.from(error).code;

/**
 * Resolves the identity once. Reads (and on first start creates) the ConfigMap unless both flags are
 * set. Throws on API errors; {@link startIdentityResolution} retries.
 */
export async function resolveOperatorIdentity(options: ResolveIdentityOptions): Promise<OperatorIdentity> {
  const { kube, namespace, log, signal } = options;
  const hex = options.randomHex ?? defaultHex;
  const fromFlags = (stored: { operatorId: string; clusterId: string }): OperatorIdentity => ({
    operatorId: options.operatorId || stored.operatorId,
    clusterId: options.clusterId || stored.clusterId,
    source: {
      operatorId: options.operatorId ? 'flag' : 'configmap',
      clusterId: options.clusterId ? 'flag' : 'configmap',
    },
  });
  if (options.operatorId && options.clusterId) return fromFlags({ operatorId: '', clusterId: '' });

  const path = `/api/v1/namespaces/${namespace}/configmaps`;
  const init = (extra: Parameters<KubeClient['request']>[1] = {}) => ({
    ...extra,
    ...(signal ? { signal } : {}),
  });
  const newClusterId = async () => {
    try {
      const ns = await kube.request<{ metadata?: { uid?: string } }>(
        '/api/v1/namespaces/kube-system',
        init(),
      );
      if (ns.metadata?.uid) return ns.metadata.uid;
    } catch (error) {
      log.warn(
        { err: { code: codeOf(error), message: OperatorError.from(error).message } },
        'cannot read the kube-system namespace for a cluster id; using a random one (set --cluster-id to choose)',
      );
    }
    return `cluster-${hex(16)}`;
  };

  for (let attempt = 0; attempt < 5; attempt++) {
    let existing: ConfigMap | undefined;
    try {
      existing = await kube.request<ConfigMap>(`${path}/${IDENTITY_CONFIGMAP}`, init());
    } catch (error) {
      if (codeOf(error) !== 'NotFound') throw error;
    }
    const operatorId = existing?.data?.[OPERATOR_KEY];
    const clusterId = existing?.data?.[CLUSTER_KEY];
    if (operatorId && clusterId) return fromFlags({ operatorId, clusterId });

    const data = {
      ...(existing?.data ?? {}),
      [OPERATOR_KEY]: operatorId || `tsgw-${hex(16)}`,
      [CLUSTER_KEY]: clusterId || (await newClusterId()),
    };
    const body = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: IDENTITY_CONFIGMAP,
        namespace,
        labels: { 'app.kubernetes.io/name': 'tailscale-gateway', 'app.kubernetes.io/component': 'identity' },
        annotations: {
          'gateway.tailscale.com/description':
            "This operator's identity on shared Tailscale Services. Deleting it gives the operator a new identity on its next start; the old one is swept from shared services after the stale-consumer threshold.",
        },
        ...(existing?.metadata?.resourceVersion
          ? { resourceVersion: existing.metadata.resourceVersion }
          : {}),
      },
      data,
    };
    try {
      if (existing) await kube.request(`${path}/${IDENTITY_CONFIGMAP}`, init({ method: 'PUT', body }));
      else await kube.request(path, init({ method: 'POST', body }));
      log.info(
        {
          configMap: `${namespace}/${IDENTITY_CONFIGMAP}`,
          operatorId: data[OPERATOR_KEY],
          clusterId: data[CLUSTER_KEY],
        },
        existing ? 'completed the persisted operator identity' : 'created the persisted operator identity',
      );
      return fromFlags({ operatorId: data[OPERATOR_KEY], clusterId: data[CLUSTER_KEY] });
    } catch (error) {
      // Another replica created or changed it first: read theirs.
      const code = codeOf(error);
      if (code !== 'AlreadyExists' && code !== 'Conflict') throw error;
      log.debug({ code }, 'identity ConfigMap written concurrently; reading it again');
    }
  }
  throw new OperatorError(
    'Conflict',
    `${namespace}/${IDENTITY_CONFIGMAP} kept changing; cannot settle an identity`,
  );
}

export interface IdentityResolution {
  /** The identity once resolved. */
  current(): OperatorIdentity | undefined;
  /** Resolves with the identity; rejects only when `signal` aborts first. */
  ready: Promise<OperatorIdentity>;
}

/**
 * Resolves the identity in the background, retrying with capped backoff while the API server is
 * unreachable, and logs it once: what `run` uses, so start-up never blocks on it.
 */
export function startIdentityResolution(
  options: ResolveIdentityOptions & { clock?: Clock; minDelayMs?: number; maxDelayMs?: number },
): IdentityResolution {
  const clock = options.clock ?? systemClock;
  let resolved: OperatorIdentity | undefined;
  const ready = (async () => {
    const retries = createBackoff(
      { baseMs: options.minDelayMs ?? 1_000, capMs: options.maxDelayMs ?? 30_000 },
      { clock },
    );
    for (;;) {
      if (options.signal?.aborted) throw new OperatorError('Canceled', 'identity resolution stopped');
      try {
        resolved = await resolveOperatorIdentity(options);
        options.log.info(
          { operatorId: resolved.operatorId, clusterId: resolved.clusterId, source: resolved.source },
          'operator identity',
        );
        return resolved;
      } catch (error) {
        if (options.signal?.aborted) throw new OperatorError('Canceled', 'identity resolution stopped');
        const failure = OperatorError.from(error);
        const retryInMs = retries.next();
        options.log.warn(
          { err: { code: failure.code, message: failure.message }, retryInMs },
          'cannot resolve the operator identity yet',
        );
        await sleep(clock, retryInMs, options.signal);
      }
    }
  })();
  ready.catch(() => undefined);
  return { current: () => resolved, ready };
}
