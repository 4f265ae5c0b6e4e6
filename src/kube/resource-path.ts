/**
 * REST paths for Kubernetes objects, built from apiVersion, resource plural and scope.
 *
 * Kept free of I/O so the easy-to-get-wrong parts (core group under `/api`, cluster-scoped kinds, URL
 * escaping, subresources) are unit-tested without an API server.
 *
 * @module
 */

import { OperatorError } from '../errors.ts';

export interface GroupVersion {
  /** Empty for the core group. */
  group: string;
  version: string;
}

export function parseApiVersion(apiVersion: string): GroupVersion {
  const parts = apiVersion.split('/');
  if (parts.length === 1 && parts[0]) return { group: '', version: parts[0] };
  if (parts.length === 2 && parts[0] && parts[1]) return { group: parts[0], version: parts[1] };
  throw new OperatorError('Invalid', `malformed apiVersion "${apiVersion}"`, { field: 'apiVersion' });
}

/** `/api/v1` for the core group, `/apis/<group>/<version>` otherwise. */
export function groupVersionPath({ group, version }: GroupVersion): string {
  return group === '' ? `/api/${version}` : `/apis/${group}/${version}`;
}

export interface ResourcePathParts extends GroupVersion {
  plural: string;
  namespaced: boolean;
  namespace?: string;
  name?: string;
  subresource?: string;
}

/** The collection path without a name, the object path with one. */
export function resourcePath(parts: ResourcePathParts): string {
  if (parts.namespaced && !parts.namespace) {
    throw new OperatorError('Invalid', `${parts.plural} is namespaced, but no namespace was given`, {
      field: 'metadata.namespace',
    });
  }
  if (!parts.namespaced && parts.namespace) {
    throw new OperatorError(
      'Invalid',
      `${parts.plural} is cluster-scoped, but namespace "${parts.namespace}" was given`,
      {
        field: 'metadata.namespace',
      },
    );
  }
  if (parts.subresource && !parts.name) {
    throw new OperatorError('Invalid', `subresource ${parts.subresource} needs an object name`);
  }
  let path = groupVersionPath(parts);
  if (parts.namespaced) path += `/namespaces/${encodeURIComponent(parts.namespace!)}`;
  path += `/${parts.plural}`;
  if (parts.name) path += `/${encodeURIComponent(parts.name)}`;
  if (parts.subresource) path += `/${parts.subresource}`;
  return path;
}

/** One entry of an `APIResourceList`, as discovery returns it. */
export interface ApiResource {
  name: string;
  kind: string;
  namespaced: boolean;
}

/** The top-level resource for a kind; subresources (`pods/status`) share the kind and are skipped. */
export function findResource(resources: readonly ApiResource[], kind: string): ApiResource | undefined {
  return resources.find((resource) => resource.kind === kind && !resource.name.includes('/'));
}
