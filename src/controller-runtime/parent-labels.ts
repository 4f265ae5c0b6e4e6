/**
 * Labels that tie a child object to the object it was made for, Tailscale-operator style.
 *
 * Why labels and not only ownerReferences: an ownerReference must point into the child's own namespace
 * (or be cluster-scoped), but our children often live elsewhere (a proxy Secret in the operator's
 * namespace for a Gateway in an app namespace). Labels work across namespaces, are selectable (one list
 * call finds every child of a parent during cleanup), and map a child event back to its parent's queue
 * key without a lookup. Garbage collection is then ours to do, through finalizers.
 *
 * @module
 */

import type { KubernetesObject } from '@kubernetes/client-node';
import { OperatorError } from '../errors.ts';
import { keyOf } from '../kube/object-key.ts';

const PREFIX = 'tailscale-gateway.tailscale.com';
/** The parent's kind and group, from {@link parentResourceType}. */
export const PARENT_RESOURCE_TYPE_LABEL = `${PREFIX}/parent-resource-type`;
export const PARENT_NAME_LABEL = `${PREFIX}/parent-name`;
/** Absent for cluster-scoped parents. */
export const PARENT_NAMESPACE_LABEL = `${PREFIX}/parent-namespace`;

/** Label values are at most 63 characters; longer names cannot be recorded this way. */
const MAX_LABEL_VALUE = 63;

/**
 * `gateway.gateway.networking.k8s.io`, `service` for core kinds: the lower-cased kind plus the group,
 * so two kinds of the same name in different groups never collide.
 */
export function parentResourceType(parent: Pick<KubernetesObject, 'apiVersion' | 'kind'>): string {
  const kind = (parent.kind ?? '').toLowerCase();
  const apiVersion = parent.apiVersion ?? '';
  const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '';
  return group ? `${kind}.${group}` : kind;
}

/**
 * The labels to stamp on every child of `parent`.
 *
 * @throws OperatorError `Invalid` when the parent lacks kind or name, or a value exceeds a label's
 *   63 characters; such a parent needs ownerReferences (same namespace) instead.
 */
/** What {@link parentLabels} reads: a raw object or one of our typed resources alike. */
export interface ParentObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string };
}

export function parentLabels(parent: ParentObject): Record<string, string> {
  const type = parentResourceType(parent);
  const name = parent.metadata?.name;
  const namespace = parent.metadata?.namespace;
  if (!parent.kind || !name)
    throw new OperatorError('Invalid', 'parentLabels: the parent needs kind and name');
  for (const value of [type, name, namespace ?? '']) {
    if (value.length > MAX_LABEL_VALUE) {
      throw new OperatorError('Invalid', `parentLabels: "${value}" is longer than a label value may be`);
    }
  }
  return {
    [PARENT_RESOURCE_TYPE_LABEL]: type,
    [PARENT_NAME_LABEL]: name,
    ...(namespace ? { [PARENT_NAMESPACE_LABEL]: namespace } : {}),
  };
}

/** A label selector matching every child of `parent`, for cleanup lists. */
export function parentSelector(parent: KubernetesObject): string {
  return Object.entries(parentLabels(parent))
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
}

/** The parent's queue key (`namespace/name` or `name`) if `child` carries labels for `parentType`. */
export function parentKeyOf(child: KubernetesObject, parentType: string): string | undefined {
  const labels = child.metadata?.labels ?? {};
  if (labels[PARENT_RESOURCE_TYPE_LABEL] !== parentType) return undefined;
  const name = labels[PARENT_NAME_LABEL];
  if (!name) return undefined;
  const namespace = labels[PARENT_NAMESPACE_LABEL];
  return keyOf(namespace, name);
}

/** A `mapToKeys` for `controller.watch`: children labelled for `parentType` enqueue their parent. */
export function enqueueForParent(parentType: string): (child: KubernetesObject) => string[] {
  return (child) => {
    const key = parentKeyOf(child, parentType);
    return key ? [key] : [];
  };
}

/**
 * A `mapToKeys` for `controller.watch`: children enqueue the owners of `kind` (and of `group`, when
 * given) named in their ownerReferences. Owners share the child's namespace, as ownerReferences require.
 * `controllerOnly` restricts to the reference marked `controller: true`, as controller-runtime's
 * `EnqueueRequestForOwner` with `OnlyControllerOwner` does.
 */
export function enqueueOwner(owner: {
  kind: string;
  group?: string;
  controllerOnly?: boolean;
}): (child: KubernetesObject) => string[] {
  return (child) => {
    const namespace = child.metadata?.namespace;
    const keys: string[] = [];
    for (const ref of child.metadata?.ownerReferences ?? []) {
      if (ref.kind !== owner.kind) continue;
      if (owner.controllerOnly && !ref.controller) continue;
      if (owner.group !== undefined) {
        const group = ref.apiVersion.includes('/')
          ? ref.apiVersion.slice(0, ref.apiVersion.indexOf('/'))
          : '';
        if (group !== owner.group) continue;
      }
      keys.push(keyOf(namespace, ref.name));
    }
    return keys;
  };
}
