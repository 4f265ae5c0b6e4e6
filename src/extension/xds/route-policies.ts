/**
 * TailscaleRoutePolicy on Envoy Gateway's HTTPRoute routes.
 *
 * Limits, because an xDS route cannot be split from inside a hook:
 * - A rule applies when it has no matches, or when one of its matches accepts every request the route
 *   accepts: a path-only match whose path contains the route's (`PathPrefix /api` covers a route on
 *   `/api/v1`; `Exact` and `RegularExpression` must equal the route's). Matches with headers or a
 *   method are never applied, since applying them would widen them to all of the route's requests.
 * - Policies that target a Gateway or TailscaleGateway are not applied here (a route does not say
 *   which Gateway it serves). Route actions contribute only their timeouts; the backends of an
 *   HTTPRoute come from the HTTPRoute.
 * - The first Deny or Redirect (in policy, rule, action order) decides the route; later ones are
 *   ignored, as a request can only be answered once.
 *
 * @module
 */

import type { MessageInitShape } from '@bufbuild/protobuf';
import { create, equals } from '@bufbuild/protobuf';
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
} from '../../../gen/envoy/config/route/v3/route_components_pb.ts';
import { parseDuration, type TailscaleRoutePolicy } from '../../api/index.ts';
import { DEFAULT_NAMESPACE } from '../../store/resource-store.ts';
import { GATEWAY_API_GROUP } from './route-generation.ts';

type Rule = TailscaleRoutePolicy['spec']['rules'][number];
type RuleMatch = NonNullable<Rule['matches']>[number];
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
  let origin: RouteOrigin | undefined;
  const parts = route.name.split('/');
  if (parts[0] === 'httproute' && parts.length >= 5 && parts[3] === 'rule') {
    const index = Number(parts[4]);
    origin = {
      namespace: parts[1]!,
      name: parts[2]!,
      ruleIndex: Number.isInteger(index) ? index : undefined,
      sectionName: undefined,
    };
  }
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

/** A policy in the route's namespace that names the HTTPRoute (and this rule, if it names one). */
export function policyTargets(policy: TailscaleRoutePolicy, origin: RouteOrigin): boolean {
  if ((policy.metadata.namespace ?? DEFAULT_NAMESPACE) !== origin.namespace) return false;
  return policy.spec.targetRefs.some(
    (ref) =>
      ref.group === GATEWAY_API_GROUP &&
      ref.kind === 'HTTPRoute' &&
      ref.name === origin.name &&
      (ref.sectionName === undefined || ref.sectionName === origin.sectionName),
  );
}

function pathCovers(ruleMatch: RuleMatch, routeMatch: RouteMatch | undefined): boolean {
  const path = ruleMatch.path;
  if (path === undefined) return true;
  const route = routeMatch?.pathSpecifier;
  if (path.type === 'PathPrefix') {
    if (path.value === '/') return true;
    if (route?.case !== 'prefix' && route?.case !== 'pathSeparatedPrefix' && route?.case !== 'path')
      return false;
    const base = path.value.endsWith('/') ? path.value.slice(0, -1) : path.value;
    return route.value === base || route.value === `${base}/` || route.value.startsWith(`${base}/`);
  }
  if (path.type === 'Exact') return route?.case === 'path' && route.value === path.value;
  return route?.case === 'safeRegex' && route.value.regex === path.value;
}

/** Whether a rule's actions apply to every request of the route (see the module notes). */
export function ruleApplies(rule: Rule, routeMatch: RouteMatch | undefined): boolean {
  if (rule.matches === undefined || rule.matches.length === 0) return true;
  return rule.matches.some(
    (m) =>
      (m.headers === undefined || m.headers.length === 0) &&
      m.method === undefined &&
      pathCovers(m, routeMatch),
  );
}

const option = (key: string, value: string, appendAction: HeaderValueOption_HeaderAppendAction) =>
  create(HeaderValueOptionSchema, { header: { key, value }, appendAction });

/** Adds without repeating what is already there, so applying a policy twice changes nothing. */
function addOptions(list: HeaderValueOption[], modifier: HeaderModifier): void {
  const wanted = [
    ...(modifier.set ?? []).map((h) =>
      option(h.name, h.value, HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD),
    ),
    ...(modifier.add ?? []).map((h) =>
      option(h.name, h.value, HeaderValueOption_HeaderAppendAction.APPEND_IF_EXISTS_OR_ADD),
    ),
  ];
  for (const want of wanted) {
    if (!list.some((have) => equals(HeaderValueOptionSchema, have, want))) list.push(want);
  }
}

function removeHeaders(list: string[], modifier: HeaderModifier): void {
  for (const name of modifier.remove ?? []) {
    if (!list.some((have) => have.toLowerCase() === name.toLowerCase())) list.push(name);
  }
}

function redirectOf(
  redirect: NonNullable<Action['redirect']>,
): MessageInitShape<typeof RedirectActionSchema> {
  const path = redirect.path;
  return {
    schemeRewriteSpecifier:
      redirect.scheme === undefined
        ? { case: undefined }
        : { case: 'schemeRedirect', value: redirect.scheme },
    hostRedirect: redirect.hostname ?? '',
    portRedirect: redirect.port ?? 0,
    pathRewriteSpecifier:
      path === undefined
        ? { case: undefined }
        : path.type === 'ReplaceFullPath'
          ? { case: 'pathRedirect', value: path.value }
          : { case: 'prefixRewrite', value: path.value },
    responseCode:
      redirect.statusCode === 301
        ? RedirectAction_RedirectResponseCode.MOVED_PERMANENTLY
        : RedirectAction_RedirectResponseCode.FOUND,
  };
}

/**
 * Applies the policies' applicable rules to `route` in place (the caller passes a copy). Returns how
 * many actions took effect.
 */
export function applyPolicies(route: Route, policies: readonly TailscaleRoutePolicy[]): number {
  let applied = 0;
  let decided = false;
  for (const policy of policies) {
    for (const rule of policy.spec.rules) {
      if (!ruleApplies(rule, route.match)) continue;
      for (const action of rule.actions) {
        switch (action.type) {
          case 'RequestHeaderModifier':
            addOptions(route.requestHeadersToAdd, action.requestHeaderModifier!);
            removeHeaders(route.requestHeadersToRemove, action.requestHeaderModifier!);
            applied++;
            break;
          case 'ResponseHeaderModifier':
            addOptions(route.responseHeadersToAdd, action.responseHeaderModifier!);
            removeHeaders(route.responseHeadersToRemove, action.responseHeaderModifier!);
            applied++;
            break;
          case 'Deny':
            if (decided) break;
            route.action = {
              case: 'directResponse',
              value: create(DirectResponseActionSchema, { status: 403 }),
            };
            decided = true;
            applied++;
            break;
          case 'Redirect':
            if (decided) break;
            route.action = {
              case: 'redirect',
              value: create(RedirectActionSchema, redirectOf(action.redirect!)),
            };
            decided = true;
            applied++;
            break;
          case 'Route': {
            const timeouts = action.route?.timeouts;
            if (decided || route.action.case !== 'route' || timeouts === undefined) break;
            const forward = route.action.value;
            if (timeouts.request !== undefined)
              forward.timeout = durationFromMs(parseDuration(timeouts.request));
            if (timeouts.backendRequest !== undefined) {
              forward.retryPolicy ??= create(RetryPolicySchema);
              forward.retryPolicy.perTryTimeout = durationFromMs(parseDuration(timeouts.backendRequest));
            }
            applied++;
            break;
          }
        }
      }
    }
  }
  return applied;
}
