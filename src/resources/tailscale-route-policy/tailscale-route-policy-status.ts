/**
 * TailscaleRoutePolicy's desired status, pure: one Gateway API `PolicyAncestorStatus` per target
 * (`ancestorRef` = the target itself, with its sectionName; `controllerName`
 * gateway.tailscale.com/tailscale-gateway) and summary conditions. The hooks apply exactly the
 * winners this reports (both use xds/policy-attachment.ts).
 *
 * Per target, condition `Accepted`:
 * - `Accepted` (True): the target exists and this policy is its winner;
 * - `TargetNotFound`: no such object, no such listener or rule (sectionName), or the cluster does
 *   not serve the kind;
 * - `Conflicted`: another policy on the very same target wins (older, or as old and first by
 *   namespace/name); the message names it. This policy is not applied there;
 * - `Invalid`: the policy does not match its schema; nothing of it is applied.
 *
 * Top level: `Accepted` (True when any target accepted it, else the first target's reason),
 * `RulesSupported` (`Supported`, or `UnsupportedActions` naming the actions the hooks do not carry
 * out) and `Ready` (every target accepted and every action supported; else the first reason).
 *
 * Other controllers' entries (Envoy Gateway writes one per Gateway it attaches the policy to) are
 * carried through untouched and never compared: only ours decide whether anything is written.
 *
 * @module
 */
import {
  POLICY_CONTROLLER_NAME,
  type TailscaleRoutePolicy,
  type TailscaleRoutePolicyStatus,
} from '../../api/index.ts';
import { canonical } from '../../canonical-json.ts';
import {
  type Condition,
  type ConditionVerdict,
  conditionsEqual,
  setCondition,
} from '../../controller-runtime/index.ts';
import { unsupportedActions } from '../../extension/xds/route-policies.ts';
import { type PolicyTarget, policyKey } from '../../model/policy-attachment.ts';

export const CONDITION_READY = 'Ready';
export const CONDITION_ACCEPTED = 'Accepted';
export const CONDITION_RULES_SUPPORTED = 'RulesSupported';
/** The Gateway API caps `ancestors` at 16, shared by every controller. */
export const MAX_ANCESTORS = 16;

export type Ancestor = NonNullable<TailscaleRoutePolicyStatus['ancestors']>[number];

export type TargetState =
  | { state: 'found' }
  | { state: 'not-served' }
  | { state: 'missing' }
  | { state: 'no-section'; sections: readonly string[] };

export interface TargetObservation {
  target: PolicyTarget;
  found: TargetState;
  /** `namespace/name` of the policy that wins this target. */
  winner: string;
}

export type PolicyObservation =
  | { valid: true; targets: readonly TargetObservation[] }
  | { valid: false; issues: string; targets: readonly PolicyTarget[] };

const describe = (t: PolicyTarget) =>
  `${t.kind} ${t.namespace}/${t.name}${t.sectionName === undefined ? '' : ` (sectionName ${t.sectionName})`}`;

const sectionWord = (t: PolicyTarget) =>
  t.kind === 'Gateway' ? 'listener' : t.kind === 'HTTPRoute' ? 'rule' : 'section';

function targetVerdict(self: string, seen: TargetObservation): ConditionVerdict {
  const { target, found } = seen;
  switch (found.state) {
    case 'not-served':
      return {
        status: 'False',
        reason: 'TargetNotFound',
        message: `the cluster does not serve ${target.kind}; install its CRD`,
      };
    case 'missing':
      return { status: 'False', reason: 'TargetNotFound', message: `${describe(target)} not found` };
    case 'no-section':
      return {
        status: 'False',
        reason: 'TargetNotFound',
        message:
          target.kind === 'TailscaleGateway'
            ? `${target.kind} ${target.namespace}/${target.name} has no sections; remove sectionName`
            : `${target.kind} ${target.namespace}/${target.name} has no ${sectionWord(target)} named ${target.sectionName}` +
              (found.sections.length > 0 ? ` (it has ${found.sections.join(', ')})` : ''),
      };
    default:
      if (seen.winner !== self)
        return {
          status: 'False',
          reason: 'Conflicted',
          message: `TailscaleRoutePolicy ${seen.winner} also targets ${describe(target)} and takes precedence (older, or as old and first by namespace/name); this policy is not applied there`,
        };
      return { status: 'True', reason: 'Accepted', message: `applied to ${describe(target)}` };
  }
}

export const ancestorRefOf = (t: PolicyTarget): Ancestor['ancestorRef'] => ({
  group: t.group,
  kind: t.kind,
  namespace: t.namespace,
  name: t.name,
  ...(t.sectionName === undefined ? {} : { sectionName: t.sectionName }),
});

/** The identity of an ancestor entry: ancestorRef and controllerName, as the Gateway API keys it. */
export const ancestorKey = (a: Pick<Ancestor, 'ancestorRef' | 'controllerName'>): string =>
  canonical({
    group: a.ancestorRef.group ?? 'gateway.networking.k8s.io',
    kind: a.ancestorRef.kind ?? 'Gateway',
    namespace: a.ancestorRef.namespace ?? '',
    name: a.ancestorRef.name,
    sectionName: a.ancestorRef.sectionName ?? '',
    controller: a.controllerName,
  });

export const isOurs = (a: Pick<Ancestor, 'controllerName'>): boolean =>
  a.controllerName === POLICY_CONTROLLER_NAME;

export interface PolicyVerdict {
  status: TailscaleRoutePolicyStatus;
  ready: boolean;
}

export function desiredPolicyStatus(
  policy: Pick<TailscaleRoutePolicy, 'metadata' | 'status'> & Partial<Pick<TailscaleRoutePolicy, 'spec'>>,
  observed: PolicyObservation,
  now: Date,
): PolicyVerdict {
  const generation = policy.metadata.generation;
  const withGeneration = (v: ConditionVerdict) => ({
    ...v,
    message: v.message.slice(0, 32768),
    ...(generation === undefined ? {} : { observedGeneration: generation }),
  });
  const previous = policy.status?.ancestors ?? [];
  const foreign = previous.filter((a) => !isOurs(a));
  const previousOurs = new Map(previous.filter(isOurs).map((a) => [ancestorKey(a), a]));

  const self = policyKey(policy as TailscaleRoutePolicy);
  const perTarget: { target: PolicyTarget; verdict: ConditionVerdict }[] = observed.valid
    ? observed.targets.map((seen) => ({ target: seen.target, verdict: targetVerdict(self, seen) }))
    : observed.targets.map((target) => ({
        target,
        verdict: { status: 'False', reason: 'Invalid', message: `the policy is invalid: ${observed.issues}` },
      }));

  const room = Math.max(0, MAX_ANCESTORS - foreign.length);
  const listed = perTarget.slice(0, room);
  const ours: Ancestor[] = listed.map(({ target, verdict }) => {
    const entry = { ancestorRef: ancestorRefOf(target), controllerName: POLICY_CONTROLLER_NAME };
    const before = previousOurs.get(ancestorKey(entry))?.conditions;
    return {
      ...entry,
      conditions: setCondition(
        (before ?? []).filter((c) => c.type === CONDITION_ACCEPTED),
        { type: CONDITION_ACCEPTED, ...withGeneration(verdict) },
        now,
      ),
    };
  });

  const accepted = perTarget.filter((t) => t.verdict.status === 'True');
  const firstRejected = perTarget.find((t) => t.verdict.status === 'False');
  let summary: ConditionVerdict;
  if (!observed.valid)
    summary = { status: 'False', reason: 'Invalid', message: `the policy is invalid: ${observed.issues}` };
  else if (perTarget.length === 0)
    summary = {
      status: 'False',
      reason: 'TargetNotFound',
      message: 'no targetRefs name a kind a policy attaches to',
    };
  else if (accepted.length > 0)
    summary = {
      status: 'True',
      reason: 'Accepted',
      message: `applied to ${accepted.map((t) => describe(t.target)).join(', ')}`,
    };
  else summary = { ...firstRejected!.verdict };

  const unsupported = observed.valid && policy.spec ? unsupportedActions(policy as TailscaleRoutePolicy) : [];
  const rules: ConditionVerdict =
    unsupported.length === 0
      ? { status: 'True', reason: 'Supported', message: 'every action is carried out' }
      : { status: 'False', reason: 'UnsupportedActions', message: unsupported.join('; ') };

  const notListed = perTarget.length - listed.length;
  let ready: ConditionVerdict;
  if (firstRejected)
    ready = {
      ...firstRejected.verdict,
      message: `${describe(firstRejected.target)}: ${firstRejected.verdict.message}`,
    };
  else if (rules.status === 'False') ready = { ...rules };
  else
    ready = {
      status: 'True',
      reason: 'Ready',
      message: `applied to ${perTarget.length} target(s)`,
    };
  if (notListed > 0)
    ready.message += `; ${notListed} target(s) not listed in status.ancestors (the list holds ${MAX_ANCESTORS} entries across controllers)`;

  let conditions: Condition[] = policy.status?.conditions ? [...policy.status.conditions] : [];
  for (const [type, verdict] of [
    [CONDITION_READY, ready],
    [CONDITION_ACCEPTED, summary],
    [CONDITION_RULES_SUPPORTED, rules],
  ] as const)
    conditions = setCondition(conditions, { type, ...withGeneration(verdict) }, now);

  return {
    status: { conditions, ancestors: [...foreign, ...ours] },
    ready: ready.status === 'True',
  };
}

/** Whether our part of two statuses (our ancestor entries, the conditions) says the same. */
export function policyStatusEqual(
  a: TailscaleRoutePolicyStatus | undefined,
  b: TailscaleRoutePolicyStatus | undefined,
): boolean {
  if (!conditionsEqual(a?.conditions, b?.conditions)) return false;
  const ours = (s: TailscaleRoutePolicyStatus | undefined) =>
    canonical(
      (s?.ancestors ?? [])
        .filter(isOurs)
        .map((x) => ({ key: ancestorKey(x), conditions: x.conditions ?? [] }))
        .sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0)),
    );
  return ours(a) === ours(b);
}
