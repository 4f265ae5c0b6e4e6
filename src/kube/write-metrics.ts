/**
 * `tsgw_kube_api_writes_total`: every write the operator sends to the Kubernetes API server, by method,
 * resource, subresource and status code. An operator at rest makes none besides its leader Lease
 * renewals; a count that keeps rising while nothing changes is a write loop (a controller undoing what
 * another does), which reconcile counts alone do not show, since most reconciles write nothing.
 *
 * Reads and watches are not counted: they are the informers' business and have their own families.
 * Labels are bounded: four methods, the resources the operator writes, status codes.
 *
 * @module
 */
import type { Registry } from 'prom-client';
import { Counter, family } from '../observability/metric-families.ts';

/** Called by the transport for every finished request; `status` is undefined when none came back. */
export type RequestObserver = (method: string, url: URL, status: number | undefined) => void;

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);

/**
 * The resource and subresource a request path names: `secrets` for core paths, `statefulsets.apps`
 * and `tailscaleendpoints.gateway.tailscale.com` for group paths (as `tsgw_informer_*` name them),
 * `status` for `/.../<name>/status`.
 */
export function resourceOfPath(path: string): { resource: string; subresource: string } {
  const parts = path.split('/').filter(Boolean);
  // /api/v1/... or /apis/<group>/<version>/...
  const group = parts[0] === 'apis' ? parts[1] : undefined;
  let rest = parts.slice(parts[0] === 'apis' ? 3 : 2);
  // namespaces/<ns>/<resource>/...; a namespace itself (and its own status or finalize) is not.
  const namespaceItself = rest.length <= 2 || (rest.length === 3 && NAMESPACE_SUBRESOURCES.has(rest[2]!));
  if (rest[0] === 'namespaces' && !namespaceItself) rest = rest.slice(2);
  const plural = rest[0] ?? '';
  return { resource: group ? `${plural}.${group}` : plural, subresource: rest[2] ?? '' };
}

export function kubeWriteObserver(registry: Registry): RequestObserver {
  const writes = family(registry, Counter, {
    name: 'tsgw_kube_api_writes_total',
    help: 'Writes the operator sent to the Kubernetes API server (POST, PUT, PATCH, DELETE), by method, resource, subresource and status code (`error` when no answer came back). Rises at rest only by the leader Lease renewals.',
    labelNames: ['method', 'resource', 'subresource', 'code'],
  }) as Counter<'method' | 'resource' | 'subresource' | 'code'>;
  return (method, url, status) => {
    if (!WRITES.has(method)) return;
    writes.inc({
      method,
      ...resourceOfPath(url.pathname),
      code: status === undefined ? 'error' : String(status),
    });
  };
}
