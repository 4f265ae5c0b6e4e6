/**
 * The informer of one of our kinds, typed: each object is checked against its schema once, when the
 * informer takes it in, and reconcilers and watches read the result ({@link Checked}: the typed value
 * plus the raw object writes go to) instead of validating again or casting the raw object by hand.
 *
 * Memoized per object: the informer's cache holds one object per resourceVersion and replaces it, never
 * mutates it, so an object seen once never needs checking again. The memo is a WeakMap, so a version
 * the cache dropped is forgotten with it.
 *
 * @module
 */

import type { KubernetesObject } from '@kubernetes/client-node';
import {
  type AnyResource,
  API_VERSION,
  type Checked,
  checkResource,
  KIND_DEFINITIONS,
  type Kind,
  type ResourceOf,
} from '../api/index.ts';
import { createInformer, type Informer, type InformerOptions } from './informer.ts';

export interface ResourceInformer<K extends Kind> extends Informer {
  readonly kind: K;
  /** The cached object, checked (once per resourceVersion); undefined when not cached. */
  checked(namespace: string | undefined, name: string): Checked<ResourceOf<K>> | undefined;
  /** An object this informer handed out (an event's), checked. */
  check(obj: KubernetesObject): Checked<ResourceOf<K>>;
  /**
   * Cached objects, of one namespace or all, that match the schema, typed. One that does not is its
   * own reconcile's to report (it logs it); a watch mapping events to keys has nothing to read in it.
   */
  valid(namespace?: string): ResourceOf<K>[];
}

/** An informer of any one of our kinds, as code fed by several of them reads it (the store). */
export interface CheckingInformer extends Informer {
  check(obj: KubernetesObject): Checked<AnyResource>;
}

/** The plural of one of our kinds, e.g. `tailscaleendpoints`. */
export function pluralOf(kind: Kind): string {
  const definition = KIND_DEFINITIONS.find((d) => d.kind === kind);
  if (!definition) throw new Error(`no kind definition for ${kind}`);
  return definition.plural;
}

/** The collection path of one of our kinds, e.g. `/apis/gateway.tailscale.com/v1alpha1/tailscaleendpoints`. */
export function resourcePathOf(kind: Kind): string {
  return `/apis/${API_VERSION}/${pluralOf(kind)}`;
}

/** An informer over every object of `kind`, in all namespaces, typed. */
export function createResourceInformer<K extends Kind>(
  kind: K,
  options: Omit<InformerOptions, 'path'>,
): ResourceInformer<K> {
  return typedInformer(kind, createInformer({ ...options, path: resourcePathOf(kind) }));
}

/**
 * The typed view of an informer over `kind` (one already typed is returned as it is, so its memo is
 * shared). Its objects are checked as they arrive, before any handler registered later sees them.
 */
export function typedInformer<K extends Kind>(kind: K, informer: Informer): ResourceInformer<K> {
  if (isTyped(informer, kind)) return informer;
  const memo = new WeakMap<KubernetesObject, Checked<ResourceOf<K>>>();
  const check = (obj: KubernetesObject): Checked<ResourceOf<K>> => {
    let checked = memo.get(obj);
    if (!checked) {
      checked = checkResource(kind, obj);
      memo.set(obj, checked);
    }
    return checked;
  };
  informer.on('add', check);
  informer.on('update', check);
  return {
    kind,
    get resource() {
      return informer.resource;
    },
    start: () => informer.start(),
    hasSynced: () => informer.hasSynced(),
    waitForSync: (signal) => informer.waitForSync(signal),
    get: (namespace, name) => informer.get(namespace, name),
    list: (namespace) => informer.list(namespace),
    keys: () => informer.keys(),
    on: (event, handler) => informer.on(event, handler),
    lastResourceVersion: () => informer.lastResourceVersion(),
    stop: () => informer.stop(),
    check,
    checked(namespace, name) {
      const raw = informer.get(namespace, name);
      return raw ? check(raw) : undefined;
    },
    valid(namespace) {
      const out: ResourceOf<K>[] = [];
      for (const raw of informer.list(namespace)) {
        const checked = check(raw);
        if (checked.ok) out.push(checked.value);
      }
      return out;
    },
  };
}

function isTyped<K extends Kind>(informer: Informer, kind: K): informer is ResourceInformer<K> {
  return (informer as Partial<ResourceInformer<K>>).kind === kind && 'checked' in informer;
}
