/**
 * TailscaleRoutePolicy rules on Envoy Gateway's routes (and ours).
 *
 * An xDS route cannot be split inside PostRouteModify (one route in, one out), so rules are applied in
 * two ways:
 * - **in place**: a rule without matches, or one whose match accepts every request of the route (a
 *   path-only match covering the route's path), changes the route itself. PostRouteModify does this for
 *   HTTPRoute policies; PostVirtualHostModify does it for every level, idempotently.
 * - **as a narrowed copy** (PostVirtualHostModify only, which sees the whole virtual host): for a
 *   match that accepts some of the route's requests (a narrower path, headers, a method, a caller),
 *   a copy of the route (after the in-place rules) gets extra header matchers (policy-match.ts) and the
 *   rule's actions, and is placed directly before the route. A request the match accepts takes the
 *   copy, which forwards exactly as the route would (same cluster, rewrites, filters), or answers for
 *   a Deny/Redirect; every other request falls through to the route. The copies of one route are
 *   ordered by precedence (policy-attachment.ts), then rule, then match, so when a request matches
 *   several, the most specific policy's first rule takes it — and only that rule's actions (plus the
 *   in-place ones) apply, since Envoy picks one route.
 *
 * Precedence inside one route: a Deny or Redirect of a more specific level decides before a less
 * specific one, the first in policy, rule, action order within one level; a header `set` of a more
 * specific level wins over a less specific one on the same name; timeouts likewise. A `Route` action
 * contributes its timeouts only: the route's backends are its own (`backendRefs` are reported as not
 * applied in the policy's status).
 *
 * @module
 */

import type { MessageInitShape } from '@bufbuild/protobuf';
import { clone, create, equals } from '@bufbuild/protobuf';
import { durationFromMs } from '@bufbuild/protobuf/wkt';
import {
  type HeaderValueOption,
  HeaderValueOption_HeaderAppendAction,
  HeaderValueOptionSchema,
} from '../../../gen/envoy/config/core/v3/base_pb.ts';
import {
  DirectResponseActionSchema,
  RedirectAction_RedirectResponseCode,
  RedirectActionSchema,
  RetryPolicySchema,
  type Route,
  type RouteMatch,
  RouteMatchSchema,
  RouteSchema,
} from '../../../gen/envoy/config/route/v3/route_components_pb.ts';
import { parseDuration, type TailscaleRoutePolicy } from '../../api/index.ts';
import { namespaceOf } from '../../kube/object-key.ts';
import { httpRouteRuleOfRouteName } from '../../model/envoy-gateway-names.ts';
import { NAME_PREFIX } from '../../model/names.ts';
import type { PolicyTarget } from '../../model/policy-attachment.ts';
import { DEFAULT_NAMESPACE } from '../../model/resource-store.ts';
import { GATEWAY_API_GROUP } from '../../model/route-generation.ts';
import { escapeRegex, matchScope, narrowingMatchers, pathRelation, type RuleMatch } from './policy-match.ts';

type Rule = TailscaleRoutePolicy['spec']['rules'][number];
type Action = Rule['actions'][number];
type HeaderModifier = NonNullable<Action['requestHeaderModifier']>;

/** The HTTPRoute (and rule) an xDS route was generated from. */
export interface RouteOrigin {
  namespace: string;
  name: string;
  ruleIndex: number | undefined;
  /** The rule's name, when it has one. */
  sectionName: string | undefined;
}

/**
 * Reads `httproute/<ns>/<name>/rule/<i>/match/<j>/<host>` and EG's route metadata (which alone knows
 * the rule's name). Undefined for routes of other kinds.
 */
export function routeOrigin(route: Route): RouteOrigin | undefined {
  const byName = httpRouteRuleOfRouteName(route.name);
  let origin: RouteOrigin | undefined = byName && {
    namespace: byName.namespace,
    name: byName.name,
    ruleIndex: byName.rule,
    sectionName: undefined,
  };
  const resources = (route.metadata?.filterMetadata['envoy-gateway'] as { resources?: unknown } | undefined)
    ?.resources;
  if (Array.isArray(resources)) {
    for (const resource of resources as unknown[]) {
      if (typeof resource !== 'object' || resource === null) continue;
      const { kind, name, namespace, sectionName } = resource as Record<string, unknown>;
      if (kind !== 'HTTPRoute' || typeof name !== 'string') continue;
      const ns = typeof namespace === 'string' ? namespace : DEFAULT_NAMESPACE;
      if (origin !== undefined && (origin.name !== name || origin.namespace !== ns)) continue;
      origin = {
        namespace: ns,
        name,
        ruleIndex: origin?.ruleIndex,
        sectionName: typeof sectionName === 'string' ? sectionName : undefined,
      };
      break;
    }
  }
  return origin;
}

/** The HTTPRoute targets a route of EG's belongs to: its rule (when named) and the whole HTTPRoute. */
export function routeTargets(origin: RouteOrigin): PolicyTarget[] {
  const route = {
    group: GATEWAY_API_GROUP,
    kind: 'HTTPRoute' as const,
    namespace: origin.namespace,
    name: origin.name,
  };
  return origin.sectionName === undefined ? [route] : [{ ...route, sectionName: origin.sectionName }, route];
}

/** Whether a rule applies to every request of the route (no matches, or one whose scope is the whole route). */
export function ruleApplies(rule: Rule, routeMatch: RouteMatch | undefined): boolean {
  if (rule.matches === undefined || rule.matches.length === 0) return true;
  return rule.matches.some((m) => matchScope(m, routeMatch) === 'whole');
}

const option = (key: string, value: string, appendAction: HeaderValueOption_HeaderAppendAction) =>
  create(HeaderValueOptionSchema, { header: { key, value }, appendAction });

/** What has been decided on one route, and by which level (lower = more specific), for precedence. */
export interface ApplyState {
  decided: number | undefined;
  requestSets: Map<string, number>;
  responseSets: Map<string, number>;
  timeout: number | undefined;
  perTry: number | undefined;
}

export const freshState = (): ApplyState => ({
  decided: undefined,
  requestSets: new Map(),
  responseSets: new Map(),
  timeout: undefined,
  perTry: undefined,
});

const copyState = (state: ApplyState): ApplyState => ({
  ...state,
  requestSets: new Map(state.requestSets),
  responseSets: new Map(state.responseSets),
});

const OVERWRITE = HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD;

/**
 * Adds without repeating what is already there, so applying a policy twice changes nothing. A `set`
 * of a name a more specific level (or an earlier rule of the same one) has set is skipped; a less
 * specific one's is replaced.
 */
function addOptions(
  list: HeaderValueOption[],
  modifier: HeaderModifier,
  sets: Map<string, number>,
  rank: number,
): void {
  for (const h of modifier.set ?? []) {
    const name = h.name.toLowerCase();
    const holder = sets.get(name);
    if (holder !== undefined && holder <= rank) continue;
    const want = option(h.name, h.value, OVERWRITE);
    if (holder !== undefined) {
      // Drop the less specific level's value for this name.
      for (let i = list.length - 1; i >= 0; i--) {
        const have = list[i]!;
        if (
          have.appendAction === OVERWRITE &&
          have.header?.key.toLowerCase() === name &&
          !equals(HeaderValueOptionSchema, have, want)
        )
          list.splice(i, 1);
      }
    }
    sets.set(name, rank);
    if (!list.some((have) => equals(HeaderValueOptionSchema, have, want))) list.push(want);
  }
  for (const h of modifier.add ?? []) {
    const want = option(h.name, h.value, HeaderValueOption_HeaderAppendAction.APPEND_IF_EXISTS_OR_ADD);
    if (!list.some((have) => equals(HeaderValueOptionSchema, have, want))) list.push(want);
  }
}

function removeHeaders(list: string[], modifier: HeaderModifier): void {
  for (const name of modifier.remove ?? []) {
    if (!list.some((have) => have.toLowerCase() === name.toLowerCase())) list.push(name);
  }
}

const prefixBase = (value: string) => (value !== '/' && value.endsWith('/') ? value.slice(0, -1) : value);

function redirectOf(
  redirect: NonNullable<Action['redirect']>,
  match: RuleMatch | undefined,
): MessageInitShape<typeof RedirectActionSchema> {
  const path = redirect.path;
  let pathRewriteSpecifier: MessageInitShape<typeof RedirectActionSchema>['pathRewriteSpecifier'] = {
    case: undefined,
  };
  if (path?.type === 'ReplaceFullPath') pathRewriteSpecifier = { case: 'pathRedirect', value: path.value };
  else if (path?.type === 'ReplacePrefixMatch') {
    const matched = match?.path?.type === 'PathPrefix' ? prefixBase(match.path.value) : undefined;
    // The Gateway API replaces the prefix the *policy* matched. Envoy's prefix_rewrite replaces the
    // route's; a regex on the policy's prefix says what is meant whichever route carries the rule.
    if (matched === undefined || matched === '/')
      pathRewriteSpecifier = { case: 'prefixRewrite', value: path.value };
    else {
      const to = prefixBase(path.value);
      pathRewriteSpecifier = {
        case: 'regexRewrite',
        value:
          to === '/'
            ? { pattern: { regex: `^${escapeRegex(matched)}/?` }, substitution: '/' }
            : { pattern: { regex: `^${escapeRegex(matched)}` }, substitution: to },
      };
    }
  }
  return {
    schemeRewriteSpecifier:
      redirect.scheme === undefined
        ? { case: undefined }
        : { case: 'schemeRedirect', value: redirect.scheme },
    hostRedirect: redirect.hostname ?? '',
    portRedirect: redirect.port ?? 0,
    pathRewriteSpecifier,
    responseCode:
      redirect.statusCode === 301
        ? RedirectAction_RedirectResponseCode.MOVED_PERMANENTLY
        : RedirectAction_RedirectResponseCode.FOUND,
  };
}

/** Applies one rule's actions to `route` at precedence `rank`; returns how many took effect. */
function applyRule(
  route: Route,
  rule: Rule,
  rank: number,
  state: ApplyState,
  match: RuleMatch | undefined,
): number {
  let applied = 0;
  for (const action of rule.actions) {
    switch (action.type) {
      case 'RequestHeaderModifier':
        addOptions(route.requestHeadersToAdd, action.requestHeaderModifier!, state.requestSets, rank);
        removeHeaders(route.requestHeadersToRemove, action.requestHeaderModifier!);
        applied++;
        break;
      case 'ResponseHeaderModifier':
        addOptions(route.responseHeadersToAdd, action.responseHeaderModifier!, state.responseSets, rank);
        removeHeaders(route.responseHeadersToRemove, action.responseHeaderModifier!);
        applied++;
        break;
      case 'Deny':
        if (state.decided !== undefined && state.decided <= rank) break;
        route.action = { case: 'directResponse', value: create(DirectResponseActionSchema, { status: 403 }) };
        state.decided = rank;
        applied++;
        break;
      case 'Redirect':
        if (state.decided !== undefined && state.decided <= rank) break;
        route.action = {
          case: 'redirect',
          value: create(RedirectActionSchema, redirectOf(action.redirect!, match)),
        };
        state.decided = rank;
        applied++;
        break;
      case 'Route': {
        const timeouts = action.route?.timeouts;
        if (route.action.case !== 'route' || timeouts === undefined) break;
        const forward = route.action.value;
        let changed = false;
        if (timeouts.request !== undefined && (state.timeout === undefined || state.timeout > rank)) {
          forward.timeout = durationFromMs(parseDuration(timeouts.request));
          state.timeout = rank;
          changed = true;
        }
        if (timeouts.backendRequest !== undefined && (state.perTry === undefined || state.perTry > rank)) {
          forward.retryPolicy ??= create(RetryPolicySchema);
          forward.retryPolicy.perTryTimeout = durationFromMs(parseDuration(timeouts.backendRequest));
          state.perTry = rank;
          changed = true;
        }
        if (changed) applied++;
        break;
      }
    }
  }
  return applied;
}

/** A policy with the precedence rank it applies at (LEVEL; lower is more specific). */
export interface RankedPolicy {
  policy: TailscaleRoutePolicy;
  rank: number;
}

const ranked = (policies: readonly (TailscaleRoutePolicy | RankedPolicy)[]): RankedPolicy[] =>
  policies.map((p) => ('rank' in p ? p : { policy: p, rank: 0 }));

/**
 * Applies the whole-route rules of `policies` (most specific first) to `route` in place (the caller
 * passes a copy). Returns how many actions took effect, and the state for narrowed copies.
 */
export function applyPolicies(
  route: Route,
  policies: readonly (TailscaleRoutePolicy | RankedPolicy)[],
  state: ApplyState = freshState(),
): number {
  let applied = 0;
  for (const { policy, rank } of ranked(policies)) {
    for (const rule of policy.spec.rules) {
      if (!ruleApplies(rule, route.match)) continue;
      const covering = rule.matches?.find((m) => matchScope(m, route.match) === 'whole');
      applied += applyRule(route, rule, rank, state, covering);
    }
  }
  return applied;
}

/** Name of a narrowed copy: ours (so a later run replaces it), and saying where it came from. */
export const copyName = (policy: TailscaleRoutePolicy, rule: number, match: number, route: Route): string =>
  `${NAME_PREFIX}policy/${namespaceOf(policy)}/${policy.metadata.name}/rule/${rule}/match/${match}/${route.name}`;

/**
 * `route` with its policies applied: the route itself (in place, whole-route rules) preceded by the
 * narrowed copies of the other rules. `route` must be a copy the caller owns.
 */
export function withPolicies(
  route: Route,
  policies: readonly RankedPolicy[],
): { routes: Route[]; applied: number } {
  const state = freshState();
  let applied = applyPolicies(route, policies, state);
  const copies: Route[] = [];
  for (const { policy, rank } of policies) {
    policy.spec.rules.forEach((rule, ruleIndex) => {
      if (ruleApplies(rule, route.match)) return;
      (rule.matches ?? []).forEach((match, matchIndex) => {
        if (matchScope(match, route.match) !== 'some') return;
        const copy = clone(RouteSchema, route);
        copy.name = copyName(policy, ruleIndex, matchIndex, route);
        copy.match ??= create(RouteMatchSchema);
        copy.match.headers.push(...narrowingMatchers(match, pathRelation(match.path, route.match)));
        const took = applyRule(copy, rule, rank, copyState(state), match);
        if (took === 0) return;
        applied += took;
        copies.push(copy);
      });
    });
  }
  return { routes: [...copies, route], applied };
}

/** Actions of a rule the hooks do not carry out (as said in the module notes), for the status. */
export function unsupportedActions(policy: TailscaleRoutePolicy): string[] {
  const out: string[] = [];
  policy.spec.rules.forEach((rule, ruleIndex) => {
    const label = rule.name === undefined ? `rule ${ruleIndex}` : `rule ${rule.name}`;
    rule.actions.forEach((action, actionIndex) => {
      if (action.type === 'Route' && (action.route?.backendRefs.length ?? 0) > 0)
        out.push(
          `${label} action ${actionIndex} (Route): backendRefs are not applied, the route keeps its own backends` +
            (action.route?.timeouts === undefined ? '' : '; its timeouts are'),
        );
    });
  });
  return out;
}
