/**
 * Which TailscaleRoutePolicy applies where: targets, conflicts and precedence, after the Gateway API's
 * policy attachment rules (GEP-713). Pure, and shared by the hooks (which apply only winners) and the
 * status controller (which reports the losers), so the two can never disagree.
 *
 * - A target is one `targetRefs` entry resolved into the policy's namespace: Gateway (optionally one
 *   listener by `sectionName`), HTTPRoute (optionally one rule by name), or TailscaleGateway.
 * - Conflict: two policies naming the very same target (kind, namespace, name and sectionName). The
 *   oldest (`creationTimestamp`) wins, then the first by `namespace/name`; the others are not applied
 *   to that target and report `Conflicted` for it. Policies on different targets never conflict.
 * - Precedence, most specific first, for the requests of one xDS route: HTTPRoute rule (sectionName),
 *   HTTPRoute, TailscaleGateway (only on the routes it generates), Gateway listener (sectionName),
 *   Gateway. The more specific policy's `Deny`/`Redirect` decides a request before a less specific one
 *   is looked at; header modifiers of every level apply, a more specific `set` winning on the same
 *   header; the more specific timeouts win.
 *
 * @module
 */
import type { TailscaleGateway, TailscaleRoutePolicy } from '../api/index.ts';
import { createdMs, keyOf, namespaceOf } from '../kube/object-key.ts';
import type { GatewayIdentity } from './route-generation.ts';

export const TAILSCALE_GROUP = 'gateway.tailscale.com';
export const GATEWAY_API = 'gateway.networking.k8s.io';

export type TargetKind = 'Gateway' | 'HTTPRoute' | 'TailscaleGateway';

/** A targetRef resolved into the policy's namespace. */
export interface PolicyTarget {
  group: string;
  kind: TargetKind;
  namespace: string;
  name: string;
  sectionName?: string;
}

/** The attachment levels, most specific first; a lower number takes precedence. */
export const LEVEL = {
  'HTTPRoute#section': 0,
  HTTPRoute: 1,
  TailscaleGateway: 2,
  'Gateway#section': 3,
  Gateway: 4,
} as const;
export type Level = keyof typeof LEVEL;

export const levelOf = (target: PolicyTarget): Level =>
  target.kind === 'TailscaleGateway'
    ? 'TailscaleGateway'
    : target.sectionName === undefined
      ? target.kind
      : `${target.kind}#section`;

export const policyKey = (policy: TailscaleRoutePolicy): string =>
  keyOf(namespaceOf(policy), policy.metadata.name);

export const targetKey = (target: PolicyTarget): string =>
  `${target.kind}/${target.namespace}/${target.name}${target.sectionName === undefined ? '' : `#${target.sectionName}`}`;

const KINDS: Record<string, readonly string[]> = {
  [GATEWAY_API]: ['Gateway', 'HTTPRoute'],
  [TAILSCALE_GROUP]: ['TailscaleGateway'],
};

/** The policy's targets, each once, in spec order; refs to kinds it cannot attach to are left out. */
export function targetsOf(policy: TailscaleRoutePolicy): PolicyTarget[] {
  const namespace = namespaceOf(policy);
  const seen = new Set<string>();
  const out: PolicyTarget[] = [];
  for (const ref of policy.spec.targetRefs) {
    if (!KINDS[ref.group]?.includes(ref.kind)) continue;
    const target: PolicyTarget = {
      group: ref.group,
      kind: ref.kind as TargetKind,
      namespace,
      name: ref.name,
      ...(ref.sectionName === undefined ? {} : { sectionName: ref.sectionName }),
    };
    const key = targetKey(target);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(target);
  }
  return out;
}

/** `metadata.creationTimestamp` as milliseconds; a policy without one (a test, a file) counts as newest. */
export function createdAt(policy: TailscaleRoutePolicy): number {
  return createdMs(policy) ?? Number.POSITIVE_INFINITY;
}

/** GEP-713 order: oldest first, then alphabetical by `namespace/name`. */
export function comparePolicies(a: TailscaleRoutePolicy, b: TailscaleRoutePolicy): number {
  const byAge = createdAt(a) - createdAt(b);
  if (byAge !== 0 && !Number.isNaN(byAge)) return byAge < 0 ? -1 : 1;
  const ka = policyKey(a);
  const kb = policyKey(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** Every target's policies, winner first. Keys are `targetKey`s. */
export function attachments(policies: readonly TailscaleRoutePolicy[]): Map<string, TailscaleRoutePolicy[]> {
  const byTarget = new Map<string, TailscaleRoutePolicy[]>();
  const seen = new Set<string>();
  for (const policy of policies) {
    // One policy from two sources (the store and Envoy Gateway) counts once; the first copy is kept.
    if (seen.has(policyKey(policy))) continue;
    seen.add(policyKey(policy));
    for (const target of targetsOf(policy)) {
      const key = targetKey(target);
      const list = byTarget.get(key) ?? [];
      list.push(policy);
      byTarget.set(key, list);
    }
  }
  for (const list of byTarget.values()) list.sort(comparePolicies);
  return byTarget;
}

/** A policy that applies to some xDS route, at a level. */
export interface Applicable {
  policy: TailscaleRoutePolicy;
  level: Level;
  target: PolicyTarget;
}

/**
 * The winning policy of each candidate target that has one, most specific level first. `candidates`
 * are the targets a route belongs to (its HTTPRoute and rule, its Gateway and listener, …).
 */
export function applicableFor(
  byTarget: ReadonlyMap<string, readonly TailscaleRoutePolicy[]>,
  candidates: readonly PolicyTarget[],
): Applicable[] {
  const out: Applicable[] = [];
  const seen = new Set<string>();
  for (const target of candidates) {
    const key = targetKey(target);
    if (seen.has(key)) continue;
    seen.add(key);
    const winner = byTarget.get(key)?.[0];
    if (winner) out.push({ policy: winner, level: levelOf(target), target });
  }
  return out.sort((a, b) => LEVEL[a.level] - LEVEL[b.level]);
}

/**
 * The Gateway targets of a virtual host (or RouteConfiguration) serving these Gateway listeners: each
 * listener (when known) before the whole Gateway, the order of precedence.
 */
export function gatewayTargets(identities: readonly GatewayIdentity[]): PolicyTarget[] {
  const out: PolicyTarget[] = [];
  for (const id of identities) {
    const gateway = { group: GATEWAY_API, kind: 'Gateway' as const, namespace: id.namespace, name: id.name };
    if (id.listener !== undefined) out.push({ ...gateway, sectionName: id.listener });
    out.push(gateway);
  }
  return out;
}

/** The target a policy names to reach the routes a TailscaleGateway generates. */
export const tailscaleGatewayTarget = (gateway: TailscaleGateway): PolicyTarget => ({
  group: TAILSCALE_GROUP,
  kind: 'TailscaleGateway',
  namespace: namespaceOf(gateway),
  name: gateway.metadata.name,
});
