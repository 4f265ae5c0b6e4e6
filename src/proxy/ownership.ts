/**
 * Which cached objects are a proxy parent's children: the one place that decides what prune may delete
 * and what teardown waits for.
 *
 * Labels alone do not say it. Controllers copy labels: kube-controller-manager's EndpointSlice
 * controller puts a selector Service's labels (`tailscale.com/managed` and the parent labels) on the
 * slices it makes, and the StatefulSet controller puts the Pod template's on every Pod. When prune took
 * every labelled object no parent wants for its own, it deleted the controller's slices, the controller
 * made them again and the new slice woke the parent: a write loop for as long as a proxy ran (88b4dea
 * narrowed the EndpointSlice informer; this closes the mechanism for every kind).
 *
 * So an object is the parent's to delete only when the operator wrote it: besides the parent labels it
 * carries the applied-hash annotation, which every apply and create of the proxy engine has put on
 * every object since the engine's first version (so objects written before an upgrade are still
 * recognised and nothing is orphaned), and which no controller copies (they copy labels; the
 * EndpointSlice controller sets only its own trigger-time annotation). EndpointSlices must also name
 * the operator as their `endpointslice.kubernetes.io/managed-by`, as kube-proxy and the EndpointSlice
 * controller themselves decide whose a slice is. The operator never writes ownerReferences (its
 * children often live in another namespace than their parent), so a controller ownerReference means
 * another controller owns the object, whatever it carries.
 *
 * Pods are the StatefulSet's, never deleted by the operator, but they count as children while they
 * exist, so teardown waits for them: a Pod labelled for the parent is one unless a controller other
 * than its proxy's StatefulSet owns it.
 *
 * @module
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { parentKeyOf } from '../controller-runtime/index.ts';
import { MANAGED_BY, MANAGED_BY_LABEL } from './egress-services.ts';
import { APPLIED_ANNOTATION, MANAGED_LABEL, PROXY_LABEL } from './names.ts';

/**
 * `ours`: written by the operator for this parent, deleted when no longer wanted. `dependent`: made by
 * a Kubernetes controller from one of ours (a Pod), never deleted, waited for. `foreign`: not the
 * parent's child at all (another parent's, or someone else's object carrying copied labels): left alone
 * and not counted.
 */
export type Ownership = 'ours' | 'dependent' | 'foreign';

const controllerOf = (obj: KubernetesObject) =>
  obj.metadata?.ownerReferences?.find((ref) => ref.controller === true);

/** Whether the operator wrote `obj` (any parent's): its write marker, and no other controller. */
export function writtenByOperator(obj: KubernetesObject): boolean {
  const meta = obj.metadata;
  if (meta?.labels?.[MANAGED_LABEL] !== 'true') return false;
  if (meta.annotations?.[APPLIED_ANNOTATION] === undefined) return false;
  if (obj.kind === 'EndpointSlice' && meta.labels[MANAGED_BY_LABEL] !== MANAGED_BY) return false;
  return controllerOf(obj) === undefined;
}

/** How `obj` (with its `kind` set) relates to the parent `parentType` / `parentKey`. */
export function ownershipOf(obj: KubernetesObject, parentType: string, parentKey: string): Ownership {
  if (parentKeyOf(obj, parentType) !== parentKey) return 'foreign';
  if (obj.metadata?.labels?.[MANAGED_LABEL] !== 'true') return 'foreign';
  if (obj.kind === 'Pod') {
    const controller = controllerOf(obj);
    const proxy = obj.metadata?.labels?.[PROXY_LABEL];
    if (!controller) return 'dependent';
    return controller.kind === 'StatefulSet' && controller.name === proxy ? 'dependent' : 'foreign';
  }
  return writtenByOperator(obj) ? 'ours' : 'foreign';
}
