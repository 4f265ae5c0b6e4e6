/**
 * The key of a cached object, in one place: the informer's cache, every controller's work queue and
 * the reference index all spell it `namespace/name` (just `name` for cluster-scoped kinds), so code
 * that builds or reads a key uses these instead of a template string or a `split('/')` of its own; a
 * map holding several kinds keys by {@link kindKeyOf} and keeps the parts beside it rather than
 * splitting the key again.
 *
 * @module
 */

import type { KubernetesObject } from '@kubernetes/client-node';

/** The parts of a key; `namespace` is absent for a cluster-scoped object. */
export interface KeyParts {
  namespace?: string;
  name: string;
}

/** The namespace the API server puts a namespaced object in when it names none. */
export const DEFAULT_NAMESPACE = 'default';

/** The namespace of an object of a namespaced kind: its own, else {@link DEFAULT_NAMESPACE}. */
export function namespaceOf(obj: { metadata?: { namespace?: string | undefined } | undefined }): string {
  return obj.metadata?.namespace ?? DEFAULT_NAMESPACE;
}

/** `namespace/name`, or `name` when there is no namespace (cluster-scoped). */
export function keyOf(namespace: string | undefined, name: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

/** An object's key ({@link keyOf} of its metadata). */
export function objectKey(obj: KubernetesObject): string {
  const { namespace, name = '' } = obj.metadata ?? {};
  return keyOf(namespace, name);
}

/**
 * `kind/namespace/name` (namespace empty for a cluster-scoped object): one key for objects of several
 * kinds in one map, as the resource index and the feed that fills it keep them.
 */
export function kindKeyOf(obj: KubernetesObject): string {
  return `${obj.kind}/${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}

/**
 * Splits a key at its first slash (a name has none, a namespace neither). A key without a slash is a
 * cluster-scoped name. Namespaced callers read `namespace ?? ''`.
 */
export function splitKey(key: string): KeyParts {
  const slash = key.indexOf('/');
  return slash < 0 ? { name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/**
 * An object's `metadata.creationTimestamp` in ms (an RFC 3339 string from the API server, a Date from
 * some clients); undefined when absent or unparseable, so each caller decides where such an object
 * sorts.
 */
export function createdMs(obj: { metadata?: object } | undefined): number | undefined {
  // Our validated kinds do not declare the field (the API server sets it), so it is read untyped.
  const value = (obj?.metadata as { creationTimestamp?: unknown } | undefined)?.creationTimestamp;
  const time = value instanceof Date ? value.getTime() : typeof value === 'string' ? Date.parse(value) : NaN;
  return Number.isNaN(time) ? undefined : time;
}
