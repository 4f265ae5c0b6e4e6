/**
 * A TailscaleRoutePolicy match against an xDS route: does it accept every request of the route (the
 * rule can be applied to the route itself), none (nothing to do), or some (a copy of the route,
 * narrowed by extra header matchers, carries the rule)?
 *
 * Narrowing never touches the route's own path specifier: the policy's path becomes a matcher on the
 * `:path` pseudo-header (which Envoy normalizes before routing, as it does the path it routes on), its
 * method one on `:method`, and its caller one on `Tailscale-User-Login`. So the copy keeps the route's
 * rewrites exactly (a prefix rewrite replaces the route's matched prefix, as on the original), and any
 * route can be narrowed: prefix, exact, separated prefix or regular expression.
 *
 * @module
 */
import { create } from '@bufbuild/protobuf';
import {
  type HeaderMatcher,
  HeaderMatcherSchema,
  type RouteMatch,
} from '../../../gen/envoy/config/route/v3/route_components_pb.ts';
import type { TailscaleRoutePolicy } from '../../api/index.ts';

type Rule = TailscaleRoutePolicy['spec']['rules'][number];
export type RuleMatch = NonNullable<Rule['matches']>[number];
type PathMatch = NonNullable<RuleMatch['path']>;

/** The header `tailscale serve` puts the caller's login name in (only for user-owned devices). */
export const CALLER_LOGIN_HEADER = 'tailscale-user-login';

/** RE2 escaping of a literal. */
export const escapeRegex = (text: string): string => text.replace(/[\\.+*?()|[\]{}^$]/g, '\\$&');

/** A PathPrefix value without its trailing slash (`/` stays `/`), compared element by element. */
const prefixBase = (value: string): string =>
  value !== '/' && value.endsWith('/') ? value.slice(0, -1) : value;

/** Whether path `path` lies under the element-wise prefix `base`. */
const underPrefix = (path: string, base: string): boolean =>
  base === '/' || path === base || path.startsWith(`${base}/`);

/** A user regular expression without the anchors Envoy's full-match semantics make redundant. */
const unanchored = (regex: string): string => {
  let out = regex.startsWith('^') ? regex.slice(1) : regex;
  if (out.endsWith('$') && !out.endsWith('\\$')) out = out.slice(0, -1);
  return out;
};

/**
 * RE2 for the `:path` header (which includes the query string) accepting what `path` accepts on the
 * path alone. Envoy matches header regexes against the whole value.
 */
export function pathHeaderRegex(path: PathMatch): string {
  const query = '(?:[?#].*)?';
  switch (path.type) {
    case 'Exact':
      return `${escapeRegex(path.value)}${query}`;
    case 'PathPrefix': {
      const base = prefixBase(path.value);
      return base === '/' ? '/.*' : `${escapeRegex(base)}(?:[/?#].*)?`;
    }
    default:
      return `(?:${unanchored(path.value)})${query}`;
  }
}

export type Relation = 'covers' | 'overlaps' | 'disjoint';

/** How the policy's path relates to the route's path. Regular expressions are never provably disjoint. */
export function pathRelation(path: PathMatch | undefined, routeMatch: RouteMatch | undefined): Relation {
  if (path === undefined) return 'covers';
  const spec = routeMatch?.pathSpecifier;
  if (path.type === 'RegularExpression')
    return spec?.case === 'safeRegex' && spec.value.regex === path.value ? 'covers' : 'overlaps';
  if (path.type === 'PathPrefix') {
    const base = prefixBase(path.value);
    if (base === '/') return 'covers';
    switch (spec?.case) {
      case 'pathSeparatedPrefix':
        // Element-wise on both sides, as the Gateway API's PathPrefix.
        if (underPrefix(spec.value, base)) return 'covers';
        return underPrefix(base, prefixBase(spec.value)) ? 'overlaps' : 'disjoint';
      case 'prefix': {
        // Character-wise: `/api` also matches `/apix`, so only a prefix inside `<base>/` is covered.
        if (spec.value.startsWith(`${base}/`)) return 'covers';
        return base.startsWith(spec.value) || spec.value === base ? 'overlaps' : 'disjoint';
      }
      case 'path':
        return underPrefix(spec.value, base) ? 'covers' : 'disjoint';
      default:
        return 'overlaps';
    }
  }
  // Exact.
  switch (spec?.case) {
    case 'path':
      return spec.value === path.value ? 'covers' : 'disjoint';
    case 'prefix':
      return path.value.startsWith(spec.value) ? 'overlaps' : 'disjoint';
    case 'pathSeparatedPrefix':
      return underPrefix(path.value, prefixBase(spec.value)) ? 'overlaps' : 'disjoint';
    default:
      return 'overlaps';
  }
}

const stringMatcher = (name: string, exact: string | undefined, regex: string | undefined): HeaderMatcher =>
  create(HeaderMatcherSchema, {
    name: name.toLowerCase(),
    headerMatchSpecifier: {
      case: 'stringMatch',
      value: {
        matchPattern:
          exact !== undefined
            ? { case: 'exact', value: exact }
            : { case: 'safeRegex', value: { regex: regex! } },
      },
    },
  });

/** Whether the match has conditions besides its path. */
export const hasNonPathConditions = (match: RuleMatch): boolean =>
  (match.headers?.length ?? 0) > 0 || match.method !== undefined || match.caller !== undefined;

/**
 * Header matchers that narrow a route to the requests `match` accepts; the path is left out when the
 * policy's path covers the route's.
 */
export function narrowingMatchers(match: RuleMatch, relation: Relation): HeaderMatcher[] {
  const out: HeaderMatcher[] = [];
  if (match.path !== undefined && relation === 'overlaps')
    out.push(stringMatcher(':path', undefined, pathHeaderRegex(match.path)));
  if (match.method !== undefined) out.push(stringMatcher(':method', match.method, undefined));
  for (const header of match.headers ?? []) {
    out.push(
      header.type === 'RegularExpression'
        ? stringMatcher(header.name, undefined, unanchored(header.value))
        : stringMatcher(header.name, header.value, undefined),
    );
  }
  const users = match.caller?.users ?? [];
  if (users.length === 1) out.push(stringMatcher(CALLER_LOGIN_HEADER, users[0], undefined));
  else if (users.length > 1)
    out.push(stringMatcher(CALLER_LOGIN_HEADER, undefined, `(?:${users.map(escapeRegex).join('|')})`));
  return out;
}

/**
 * How a policy match relates to a whole route: `whole` when every request of the route matches (the
 * rule applies to the route itself), `none` when no request can, `some` otherwise.
 */
export function matchScope(match: RuleMatch, routeMatch: RouteMatch | undefined): 'whole' | 'some' | 'none' {
  const relation = pathRelation(match.path, routeMatch);
  if (relation === 'disjoint') return 'none';
  if (relation === 'covers' && !hasNonPathConditions(match)) return 'whole';
  return 'some';
}
