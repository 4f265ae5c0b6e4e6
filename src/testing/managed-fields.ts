/**
 * A cached TailscaleEndpoints as the API server returns it, with the managedFields of a kubectl apply
 * and of the discovery's two appliers (main resource and status): the informer trim and the discovery's
 * ownership read both start from the same object.
 *
 * @module
 */
import type { KubernetesObject } from '@kubernetes/client-node';

export const cachedWithManagedFields = (): KubernetesObject => ({
  apiVersion: 'gateway.tailscale.com/v1alpha1',
  kind: 'TailscaleEndpoints',
  metadata: {
    name: 'web',
    namespace: 'apps',
    uid: 'u1',
    resourceVersion: '7',
    managedFields: [
      {
        manager: 'kubectl',
        operation: 'Apply',
        fieldsType: 'FieldsV1',
        fieldsV1: { 'f:spec': { 'f:endpoints': { 'k:{"name":"a"}': {} } } },
      },
      {
        manager: 'tailscale-gateway-discovery',
        operation: 'Apply',
        fieldsType: 'FieldsV1',
        fieldsV1: { 'f:spec': { 'f:endpoints': { 'k:{"name":"found"}': {} } } },
      },
      {
        manager: 'tailscale-gateway-discovery',
        operation: 'Apply',
        subresource: 'status',
        fieldsType: 'FieldsV1',
        fieldsV1: { 'f:status': {} },
      },
    ],
  },
});
