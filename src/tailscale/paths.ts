/**
 * Path building for the Tailscale API.
 *
 * Tailscale's own clients escape each path element with Go's `url.PathEscape`, which leaves `:` (and a
 * few other sub-delimiters) alone, so a service name `svc:web` goes on the wire literally.
 * `encodeURIComponent` would send `svc%3Aweb`, which no official client ever sends and which the server
 * is not known to accept. `escapeSegment` matches Go's behaviour instead.
 *
 * @module
 */

import { OperatorError } from '../errors.ts';

const KEEP = /%(3A|40|24|26|2B|3D)/gi;

/** Escapes one path element the way Go's `url.PathEscape` does (`:`, `@`, `$`, `&`, `+`, `=` stay literal). */
export function escapeSegment(value: string): string {
  return encodeURIComponent(value).replace(KEEP, (match) => decodeURIComponent(match));
}

const SERVICE_NAME = /^svc:[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Rejects anything that is not `svc:` + a DNS label before it reaches a URL. Besides catching typos
 * early, this is what makes sending the name unescaped safe: nothing that could change the path
 * (`/`, `..`, `?`, `%`) survives.
 */
export function assertServiceName(name: string): void {
  if (!SERVICE_NAME.test(name)) {
    throw new OperatorError(
      'Invalid',
      `Tailscale Service name ${JSON.stringify(name)} must be "svc:" followed by a DNS label (lowercase letters, digits, hyphens; at most 63)`,
      { field: 'name' },
    );
  }
}

/** A request path plus its templated form, which is what metrics and logs see. */
export interface ApiPath {
  /** The concrete path sent on the wire, e.g. `/api/v2/device/n123CNTRL`. */
  path: string;
  /** Bounded label value, e.g. `/device/{id}`: never a concrete id, name or tailnet. */
  endpoint: string;
}

export function apiPaths(tailnet: string, servicesSegment: string) {
  const t = `/api/v2/tailnet/${escapeSegment(tailnet)}`;
  const seg = escapeSegment(servicesSegment);
  return {
    token: (): ApiPath => ({ path: '/api/v2/oauth/token', endpoint: '/oauth/token' }),
    keys: (): ApiPath => ({ path: `${t}/keys`, endpoint: '/tailnet/{tailnet}/keys' }),
    key: (id: string): ApiPath => ({
      path: `${t}/keys/${escapeSegment(id)}`,
      endpoint: '/tailnet/{tailnet}/keys/{id}',
    }),
    devices: (): ApiPath => ({ path: `${t}/devices`, endpoint: '/tailnet/{tailnet}/devices' }),
    device: (id: string): ApiPath => ({
      path: `/api/v2/device/${escapeSegment(id)}`,
      endpoint: '/device/{id}',
    }),
    services: (): ApiPath => ({ path: `${t}/${seg}`, endpoint: `/tailnet/{tailnet}/${seg}` }),
    service: (name: string): ApiPath => {
      assertServiceName(name);
      return { path: `${t}/${seg}/${name}`, endpoint: `/tailnet/{tailnet}/${seg}/{name}` };
    },
  };
}
