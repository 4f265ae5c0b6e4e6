/**
 * Informers over the objects proxies consist of, all restricted to `tailscale.com/managed=true`; the
 * operator-namespace kinds (Secrets, StatefulSets, Pods, RBAC, PDBs) are also restricted to that
 * namespace. Services and EndpointSlices are watched cluster-wide because the egress Services live in
 * the TailscaleEndpoints' namespaces. None of them is cached with its `managedFields`.
 *
 * EndpointSlices are further restricted to the operator's own (`endpointslice.kubernetes.io/managed-by`):
 * kube-controller-manager's EndpointSlice controller makes slices for the proxies' selector Services and
 * copies the Service's labels onto them, `tailscale.com/managed` and the parent labels included. Nothing
 * reads those slices, so they are not cached at all. (They once looked like children no parent wants,
 * so every sync deleted them and the controller made them again, about twice a second; prune now
 * deletes only what the operator wrote, `ownershipOf` in ./ownership.ts, whatever the informers cache.)
 *
 * @module
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import {
  createInformer,
  type Informer,
  type InformerTransport,
  withoutManagedFields,
} from '../kube/index.ts';
import type { Logger } from '../observability/logger.ts';
import { MANAGED_BY, MANAGED_BY_LABEL } from './egress-services.ts';
import { MANAGED_LABEL } from './names.ts';
import type { ChildCache, ChildKind } from './sync.ts';

export interface ProxyInformers {
  informers: Record<ChildKind, Informer>;
  cache: ChildCache;
  all(): Informer[];
}

/** The label selector of a child kind's informer. */
export function proxyChildSelector(kind: ChildKind): string {
  const managed = `${MANAGED_LABEL}=true`;
  return kind === 'EndpointSlice' ? `${managed},${MANAGED_BY_LABEL}=${MANAGED_BY}` : managed;
}

export function createProxyInformers(options: {
  client: InformerTransport;
  operatorNamespace: string;
  log: Logger;
  registry?: Registry;
}): ProxyInformers {
  const ns = options.operatorNamespace;
  const paths: Record<ChildKind, string> = {
    Secret: `/api/v1/namespaces/${ns}/secrets`,
    StatefulSet: `/apis/apps/v1/namespaces/${ns}/statefulsets`,
    Pod: `/api/v1/namespaces/${ns}/pods`,
    Service: '/api/v1/services',
    EndpointSlice: '/apis/discovery.k8s.io/v1/endpointslices',
    ServiceAccount: `/api/v1/namespaces/${ns}/serviceaccounts`,
    Role: `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`,
    RoleBinding: `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`,
    PodDisruptionBudget: `/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets`,
  };
  const informers = Object.fromEntries(
    Object.entries(paths).map(([kind, path]) => [
      kind,
      createInformer({
        client: options.client,
        path,
        labelSelector: proxyChildSelector(kind as ChildKind),
        // Nothing reads who manages a child's fields: the operator applies them whole, by hash.
        transform: withoutManagedFields(),
        log: options.log,
        ...(options.registry ? { registry: options.registry } : {}),
      }),
    ]),
  ) as Record<ChildKind, Informer>;
  const cache: ChildCache = {
    get: (kind, namespace, name) => informers[kind].get(namespace, name) as KubernetesObject | undefined,
    list: (kind) => informers[kind].list(),
  };
  return { informers, cache, all: () => Object.values(informers) };
}
