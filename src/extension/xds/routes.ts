/**
 * Routes for generated services and their placement in a virtual host.
 *
 * Envoy picks the first route that matches, so placement is the whole game: generated routes go
 * directly before the first catch-all (a user's `/` route would otherwise swallow them) and after
 * every route before it (a user's more specific route keeps precedence, which is what they wrote it
 * for).
 *
 * @module
 */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import {
  type HeaderValueOption,
  HeaderValueOption_HeaderAppendAction,
  HeaderValueOptionSchema,
} from '../../../gen/envoy/config/core/v3/base_pb.ts';
import {
  type Route,
  type RouteActionSchema,
  type RouteMatchSchema,
  RouteSchema,
} from '../../../gen/envoy/config/route/v3/route_components_pb.ts';
import { isGeneratedName } from '../../model/names.ts';
import type { GeneratedService } from '../../model/route-generation.ts';
import { escapeRegex } from './policy-match.ts';

/** Request headers that tell the service (and logs) which generated route a request came through. */
export const HEADER_SERVICE = 'X-Tailscale-Service';
export const HEADER_TAILNET = 'X-Tailscale-Tailnet';
export const HEADER_ENDPOINTS = 'X-Tailscale-Endpoints';

/** Overwrite, so a client cannot pass its own value through to the service. */
const header = (key: string, value: string): HeaderValueOption =>
  create(HeaderValueOptionSchema, {
    header: { key, value },
    appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
  });

/** The path the service sees in place of the generated prefix. */
export const BACKEND_PATH = '/';

/**
 * The match and rewrite of a generated prefix such as `/tailscale/web/`: the prefix element by element
 * (`path_separated_prefix /tailscale/web` takes `/tailscale/web` itself and everything below it, never
 * `/tailscale/webhooks`), replaced by `/` with every slash after it (`/tailscale/web` and
 * `/tailscale/web/` reach the service as `/`, `/tailscale/web/a` as `/a`; the query string is kept).
 * A `prefix_rewrite` cannot say that: it would turn `/tailscale/web/a` into `//a`. Envoy Gateway
 * rewrites a Gateway API `ReplacePrefixMatch: /` the same way. `/` itself matches everything and is
 * forwarded unchanged.
 */
export function prefixMatchAndRewrite(pathPrefix: string): {
  match: MessageInitShape<typeof RouteMatchSchema>['pathSpecifier'];
  rewrite: Pick<MessageInitShape<typeof RouteActionSchema>, 'prefixRewrite' | 'regexRewrite'>;
} {
  const base = pathPrefix.replace(/\/+$/, '');
  if (base === '') return { match: { case: 'prefix', value: BACKEND_PATH }, rewrite: {} };
  return {
    match: { case: 'pathSeparatedPrefix', value: base },
    rewrite: { regexRewrite: { pattern: { regex: `^${escapeRegex(base)}/*` }, substitution: BACKEND_PATH } },
  };
}

export function buildServiceRoute(service: GeneratedService): Route {
  const { match, rewrite } = prefixMatchAndRewrite(service.pathPrefix);
  return create(RouteSchema, {
    name: service.name,
    match: { pathSpecifier: match },
    action: {
      case: 'route',
      value: {
        clusterSpecifier: { case: 'cluster', value: service.name },
        ...rewrite,
        // The cluster's endpoints carry the service's own name as hostname (see clusters.ts).
        hostRewriteSpecifier: { case: 'autoHostRewrite', value: { value: true } },
      },
    },
    requestHeadersToAdd: [
      header(HEADER_SERVICE, service.service),
      header(HEADER_TAILNET, service.tailnet),
      header(HEADER_ENDPOINTS, `${service.namespace}/${service.endpoints.metadata.name}`),
    ],
  });
}

const CATCH_ALL_REGEX = new Set(['.*', '/.*', '^/.*', '^.*', '.*$', '^.*$', '^/.*$', '/.*$']);

/** A route whose path match accepts every path. Header or query matchers do not make it narrower for us. */
export function isCatchAll(route: Route): boolean {
  const path = route.match?.pathSpecifier;
  if (path === undefined) return false;
  switch (path.case) {
    case 'prefix':
      return path.value === '' || path.value === '/';
    case 'pathSeparatedPrefix':
      return path.value === '/';
    case 'safeRegex':
      return CATCH_ALL_REGEX.has(path.value.regex);
    default:
      return false;
  }
}

/**
 * The virtual host's routes with `generated` in place: earlier generated routes (ours, by name) are
 * removed first, so running on its own output changes nothing.
 */
export function placeRoutes(routes: readonly Route[], generated: readonly Route[]): Route[] {
  const user = routes.filter((route) => !isGeneratedName(route.name));
  const at = user.findIndex(isCatchAll);
  if (at === -1) return [...user, ...generated];
  return [...user.slice(0, at), ...generated, ...user.slice(at)];
}
