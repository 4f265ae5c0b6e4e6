/**
 * Event filters so a controller's own status writes do not wake it: an update of the primary object
 * counts only when its generation (spec), deletion, finalizers or labels changed. The same filter keeps
 * a TailscaleEndpoints' status writes from waking its TailscaleProxyGroup.
 *
 * @module
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Informer, InformerHandlers } from '../kube/index.ts';

export function specChanged(obj: KubernetesObject, old: KubernetesObject): boolean {
  const a = obj.metadata ?? {};
  const b = old.metadata ?? {};
  return (
    a.generation !== b.generation ||
    a.deletionTimestamp !== b.deletionTimestamp ||
    JSON.stringify(a.finalizers ?? []) !== JSON.stringify(b.finalizers ?? []) ||
    JSON.stringify(a.labels ?? {}) !== JSON.stringify(b.labels ?? {})
  );
}

type UpdateHandler<T extends KubernetesObject> = InformerHandlers<T>['update'];

/** `informer` whose update handlers are reached only through `relay`; other events pass unchanged. */
function relayUpdates<T extends KubernetesObject>(
  informer: Informer<T>,
  relay: (update: UpdateHandler<T>, obj: T, old: T) => void,
): Informer<T> {
  return new Proxy(informer, {
    get(target, property, receiver) {
      if (property !== 'on') return Reflect.get(target, property, receiver);
      return <E extends keyof InformerHandlers<T>>(event: E, handler: InformerHandlers<T>[E]) => {
        if (event !== 'update') return target.on(event, handler);
        const update = handler as UpdateHandler<T>;
        return target.on('update', ((obj: T, old: T) => relay(update, obj, old)) as InformerHandlers<T>[E]);
      };
    },
  });
}

/** `informer`, with update handlers called only when `predicate(obj, old)` holds. */
export function filterUpdates<T extends KubernetesObject>(
  informer: Informer<T>,
  predicate: (obj: T, old: T) => boolean = specChanged,
): Informer<T> {
  return relayUpdates(informer, (update, obj, old) => {
    if (predicate(obj, old)) update(obj, old);
  });
}

/**
 * `informer` for a mapping that must also reach what an object referred to before an update: update
 * handlers run only when `predicate(obj, old)` holds, once with the new object and once with the old
 * one (a TailscaleEndpoints moved from one TailscaleProxyGroup to another re-enqueues both groups).
 */
export function withPreviousOnUpdate<T extends KubernetesObject>(
  informer: Informer<T>,
  predicate: (obj: T, old: T) => boolean = specChanged,
): Informer<T> {
  return relayUpdates(informer, (update, obj, old) => {
    if (!predicate(obj, old)) return;
    update(obj, old);
    update(old, old);
  });
}
