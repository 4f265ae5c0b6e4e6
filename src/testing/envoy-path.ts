/**
 * What Envoy does with a request path on one route, as its RouteMatch and RouteAction docs describe
 * it: whether the path specifier matches, and the path the upstream sees after `prefix_rewrite` or
 * `regex_rewrite` (both act on the path without the query string, which is kept). Lets the hook tests
 * state the behaviour a user sees (`/tailscale/web` and `/tailscale/web/x` reach the service as `/`
 * and `/x`, `/tailscale/webx` does not match) rather than the xDS fields that produce it. Only the
 * specifiers and rewrites the hooks generate are modelled.
 *
 * @module
 */
import type { Route } from '../../gen/envoy/config/route/v3/route_components_pb.ts';

/** Whether `route`'s path specifier accepts `path` (a path with an optional query string). */
export function matchesPath(route: Route, path: string): boolean {
  const bare = path.split('?')[0]!;
  const specifier = route.match?.pathSpecifier;
  switch (specifier?.case) {
    case 'prefix':
      return bare.startsWith(specifier.value);
    case 'path':
      return bare === specifier.value;
    case 'pathSeparatedPrefix':
      return bare === specifier.value || bare.startsWith(`${specifier.value}/`);
    default:
      throw new Error(`path specifier ${specifier?.case} is not modelled`);
  }
}

/** The path (with its query string) the upstream receives through `route`, or undefined if it does not match. */
export function forwardedPath(route: Route, path: string): string | undefined {
  if (!matchesPath(route, path)) return undefined;
  if (route.action.case !== 'route') throw new Error('not a forwarding route');
  const action = route.action.value;
  const [bare, ...rest] = path.split('?');
  const query = rest.length > 0 ? `?${rest.join('?')}` : '';
  let rewritten = bare!;
  if (action.regexRewrite !== undefined) {
    // RE2 and JavaScript agree on the escaped literals and quantifiers the hooks use.
    const pattern = new RegExp(action.regexRewrite.pattern!.regex);
    rewritten = rewritten.replace(pattern, action.regexRewrite.substitution);
  } else if (action.prefixRewrite !== '') {
    const specifier = route.match!.pathSpecifier;
    const matched = String(specifier.value);
    rewritten = action.prefixRewrite + rewritten.slice(matched.length);
  }
  return rewritten + query;
}
