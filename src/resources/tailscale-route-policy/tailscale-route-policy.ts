/**
 * The TailscaleRoutePolicy status controller (leader only): the pure verdict of
 * tailscale-route-policy-status.ts over what the caches say (the policy, the other policies of its
 * namespace, its targets), written only when our part of the status changed.
 *
 * Writing beside Envoy Gateway. EG lists TailscaleRoutePolicy as a `policyResources` kind and writes
 * `status.ancestors` itself, with an update of the whole status (EG 1.9
 * internal/provider/kubernetes/status.go), so every EG write drops our entries and conditions; our
 * informer sees that and this controller writes them again (once per EG status write: EG writes on
 * its translations, which our status writes never trigger, as it watches the policy's generation).
 * Our write is a server-side apply on /status (field manager `tailscale-gateway-route-policy`) of our
 * conditions and the whole `ancestors` list — the other controllers' entries as read, then ours —
 * because the list is atomic (see the schema); `metadata.resourceVersion` in the body makes it a
 * compare-and-swap, so an entry EG wrote since our read is never overwritten (the conflict is retried
 * with the fresh object).
 *
 * Watches: its own kind; and, since targets are always in the policy's namespace, every policy of a
 * namespace when a Gateway, HTTPRoute or TailscaleGateway there changes, or another policy there does
 * (conflicts are decided among them).
 *
 * @module
 */

import type { KubernetesObject } from '@kubernetes/client-node';
import {
  API_VERSION,
  type Checked,
  type TailscaleRoutePolicy,
  type TailscaleRoutePolicyStatus,
} from '../../api/index.ts';
import type { Clock, Controller, ReconcileResult, Reconciler } from '../../controller-runtime/index.ts';
import { applyStatus, recordReadyTransition } from '../../controller-runtime/index.ts';
import { type KubeClient, keyOf, namespaceOf, splitKey } from '../../kube/index.ts';
import type { Informer } from '../../kube/informer.ts';
import { fieldsOf, listOf, specOf } from '../../kube/object-fields.ts';
import {
  attachments,
  type PolicyTarget,
  policyKey,
  type TargetKind,
  targetKey,
  targetsOf,
} from '../../model/policy-attachment.ts';
import {
  desiredPolicyStatus,
  type PolicyObservation,
  policyStatusEqual,
  type TargetState,
} from './tailscale-route-policy-status.ts';

/** How soon a policy whose targets cannot be looked up yet is tried again. */
const UNKNOWN_RETRY_MS = 2_000;

/** The field manager of our status writes. */
export const POLICY_FIELD_MANAGER = 'tailscale-gateway-route-policy';

export interface RoutePolicyReconcilerOptions {
  /**
   * The policy as its typed informer checked it: by its spec, its stored status never judged
   * (api/validate.ts), so this controller and the hooks' store agree on which policies are valid.
   */
  getPolicy(namespace: string, name: string): Checked<TailscaleRoutePolicy> | undefined;
  /** The valid policies of a namespace, as cached and checked. */
  listPolicies(namespace: string): TailscaleRoutePolicy[];
  /**
   * The target object; `not-served` when the cluster does not serve its kind; `unknown` while that
   * cannot be told yet (discovery has not answered, or the kind's informer has not listed), so no
   * TargetNotFound is ever written for an object merely not seen yet.
   */
  getTarget(
    kind: TargetKind,
    namespace: string,
    name: string,
  ): KubernetesObject | undefined | 'not-served' | 'unknown';
  writeStatus(obj: KubernetesObject, status: TailscaleRoutePolicyStatus, signal: AbortSignal): Promise<void>;
  events?: {
    event(
      obj: KubernetesObject,
      type: 'Normal' | 'Warning',
      reason: string,
      message: string,
      action: string,
    ): unknown;
  };
  clock: Pick<Clock, 'now'>;
}

/** The rule names of an HTTPRoute or listener names of a Gateway: what a sectionName can name. */
function sectionsOf(kind: TargetKind, obj: KubernetesObject): string[] {
  const spec = specOf(obj);
  const list = kind === 'Gateway' ? spec.listeners : kind === 'HTTPRoute' ? spec.rules : undefined;
  return listOf(list)
    .map((item) => fieldsOf(item).name)
    .filter((name): name is string => typeof name === 'string');
}

/** Targets named by an invalid policy, read leniently so its status can still say which. */
function lenientTargets(raw: KubernetesObject): PolicyTarget[] {
  const refs = specOf(raw).targetRefs;
  const namespace = namespaceOf(raw);
  const out: PolicyTarget[] = [];
  for (const item of listOf(refs)) {
    const ref = fieldsOf(item);
    if (typeof ref.name !== 'string' || typeof ref.kind !== 'string') continue;
    if (!['Gateway', 'HTTPRoute', 'TailscaleGateway'].includes(ref.kind)) continue;
    out.push({
      group: typeof ref.group === 'string' ? ref.group : '',
      kind: ref.kind as TargetKind,
      namespace,
      name: ref.name,
      ...(typeof ref.sectionName === 'string' ? { sectionName: ref.sectionName } : {}),
    });
  }
  return out.slice(0, 16);
}

export function observePolicy(
  checked: Checked<TailscaleRoutePolicy>,
  options: Pick<RoutePolicyReconcilerOptions, 'listPolicies' | 'getTarget'>,
): { policy: TailscaleRoutePolicy | undefined; observed: PolicyObservation | 'unknown' } {
  if (!checked.ok) {
    const issues = checked.issues.map((i) => `${i.path || '<root>'}: ${i.message}`).join('; ');
    return { policy: undefined, observed: { valid: false, issues, targets: lenientTargets(checked.raw) } };
  }
  const policy = checked.value;
  const namespace = namespaceOf(policy);
  const peers = options.listPolicies(namespace);
  const byTarget = attachments([policy, ...peers.filter((p) => policyKey(p) !== policyKey(policy))]);
  const seen = targetsOf(policy).map((target) => ({
    target,
    obj: options.getTarget(target.kind, target.namespace, target.name),
  }));
  if (seen.some((s) => s.obj === 'unknown')) return { policy, observed: 'unknown' };
  const targets = seen.map(({ target, obj }) => {
    let found: TargetState;
    if (obj === 'unknown' || obj === 'not-served') found = { state: 'not-served' };
    else if (obj === undefined) found = { state: 'missing' };
    else if (target.sectionName !== undefined && !sectionsOf(target.kind, obj).includes(target.sectionName))
      found = { state: 'no-section', sections: sectionsOf(target.kind, obj) };
    else found = { state: 'found' };
    const winner = byTarget.get(targetKey(target))?.[0];
    return { target, found, winner: winner ? policyKey(winner) : policyKey(policy) };
  });
  return { policy, observed: { valid: true, targets } };
}

export function createRoutePolicyReconciler(options: RoutePolicyReconcilerOptions): Reconciler {
  return async (key, { signal, log }): Promise<ReconcileResult | undefined> => {
    const { namespace = '', name } = splitKey(key);
    const checked = options.getPolicy(namespace, name);
    if (!checked) return undefined;
    const raw = checked.raw;
    const { policy, observed } = observePolicy(checked, options);
    // A target's kind not listed yet: its informer's add events enqueue this policy again; the retry
    // is only a safety net.
    if (observed === 'unknown') return { requeueAfter: UNKNOWN_RETRY_MS };
    // The status as stored, cast at the wire edge: the check never judges it (api/validate.ts), so a
    // status this controller wrote is compared and replaced whatever shape an older writer left.
    const current = (raw as { status?: TailscaleRoutePolicyStatus }).status;
    const subject = {
      metadata: { ...(raw.metadata ?? {}), name, namespace } as TailscaleRoutePolicy['metadata'],
      ...(current === undefined ? {} : { status: current }),
      ...(policy ? { spec: policy.spec } : {}),
    };
    const verdict = desiredPolicyStatus(subject, observed, new Date(options.clock.now()));
    if (policyStatusEqual(current, verdict.status)) return undefined;
    await options.writeStatus(raw, verdict.status, signal);
    recordReadyTransition(options.events, raw, current?.conditions, verdict, 'Reconcile');
    log.info({ ready: verdict.ready, reason: verdict.status.conditions?.[0]?.reason }, 'status updated');
    return undefined;
  };
}

/**
 * Writes a policy's status: our conditions and the whole ancestors list, with the resourceVersion read
 * as precondition (see the module notes).
 */
export async function applyPolicyStatus(
  kube: Pick<KubeClient, 'applyObject'>,
  obj: KubernetesObject,
  status: TailscaleRoutePolicyStatus,
  signal: AbortSignal,
): Promise<void> {
  await applyStatus(
    kube,
    { apiVersion: obj.apiVersion ?? API_VERSION, kind: 'TailscaleRoutePolicy', metadata: obj.metadata },
    status,
    {
      fieldManager: POLICY_FIELD_MANAGER,
      force: true,
      ...(obj.metadata?.resourceVersion ? { resourceVersion: obj.metadata.resourceVersion } : {}),
      signal,
    },
  );
}

export interface RoutePolicyControllerWiring {
  policies: Informer;
  tailscaleGateways: Informer;
  /** Gateway API informers as discovery starts them (`gatewayApi.onInformer`). */
  onGatewayApiInformer(listener: (kind: string, informer: Informer) => void): () => void;
}

/**
 * Enqueues every policy of a namespace on `controller` when a policy, TailscaleGateway, Gateway or
 * HTTPRoute of that namespace changes. Subscribes to the informers directly rather than through
 * `controller.watch`, so a Gateway API informer that cannot list never holds the controller's start.
 * Returns the function that unsubscribes everything.
 */
export function watchForRoutePolicies(
  controller: Pick<Controller, 'enqueue'>,
  wiring: RoutePolicyControllerWiring,
): () => void {
  const enqueueNamespace = (obj: KubernetesObject) => {
    for (const p of wiring.policies.list(namespaceOf(obj)))
      controller.enqueue(keyOf(namespaceOf(p), p.metadata?.name ?? ''));
  };
  const offs: (() => void)[] = [];
  const follow = (informer: Informer) =>
    offs.push(
      informer.on('add', enqueueNamespace),
      informer.on('update', enqueueNamespace),
      informer.on('delete', enqueueNamespace),
    );
  follow(wiring.policies);
  follow(wiring.tailscaleGateways);
  offs.push(
    wiring.onGatewayApiInformer((kind, informer) => {
      if (kind === 'Gateway' || kind === 'HTTPRoute') follow(informer);
    }),
  );
  return () => {
    for (const off of offs.splice(0)) off();
  };
}
