/**
 * The Kubernetes writes the proxy reconcilers make, behind a small interface so tests can count them
 * and the reconcilers stay free of transport details. Reads come from informer caches, never from here.
 *
 * @module
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { applyStatus } from '../controller-runtime/index.ts';
import { OperatorError } from '../errors.ts';
import type { KubeClient } from '../kube/index.ts';
import { STATUS_FIELD_MANAGER } from './names.ts';

/** Field manager of what `create` sets: not the applies' manager, so they never own those fields. */
export const CREATE_FIELD_MANAGER = 'tailscale-gateway-create';

export interface ProxyKube {
  /** Server-side apply (force: the operator owns these objects outright). */
  apply(obj: KubernetesObject, signal: AbortSignal): Promise<void>;
  /**
   * Creates `obj` unless it exists; false when it did. For fields the operator sets once and others own
   * afterwards (a cert Secret's empty `tls.crt`): a create records them under an Update of another field
   * manager, so the operator's applies, which omit them, never remove or reset them.
   */
  create(obj: KubernetesObject, signal: AbortSignal): Promise<boolean>;
  /** Deletes; already gone is success. `foreground` waits for dependents (the StatefulSet's Pods). */
  delete(obj: KubernetesObject, options: { foreground?: boolean }, signal: AbortSignal): Promise<void>;
  /** Sets `metadata.finalizers`, guarded by the object's resourceVersion. */
  setFinalizers(obj: KubernetesObject, finalizers: string[], signal: AbortSignal): Promise<void>;
  /** Applies `status` on the status subresource under the proxies' own field manager. */
  applyStatus(obj: KubernetesObject, status: object, signal: AbortSignal): Promise<void>;
}

const identity = (obj: KubernetesObject) => ({
  apiVersion: obj.apiVersion!,
  kind: obj.kind!,
  name: obj.metadata!.name!,
  ...(obj.metadata?.namespace ? { namespace: obj.metadata.namespace } : {}),
});

export function createProxyKube(kube: KubeClient): ProxyKube {
  return {
    async apply(obj, signal) {
      await kube.applyObject(obj, { force: true, signal });
    },
    async create(obj, signal) {
      const { name: _, ...collection } = identity(obj);
      const path = await kube.pathFor(collection);
      try {
        await kube.request(path, {
          method: 'POST',
          body: obj,
          query: { fieldManager: CREATE_FIELD_MANAGER },
          signal,
        });
        return true;
      } catch (error) {
        if (OperatorError.from(error).code === 'AlreadyExists') return false;
        throw error;
      }
    },
    async delete(obj, options, signal) {
      const path = await kube.pathFor(identity(obj));
      try {
        await kube.request(path, {
          method: 'DELETE',
          body: {
            apiVersion: 'v1',
            kind: 'DeleteOptions',
            propagationPolicy: options.foreground ? 'Foreground' : 'Background',
          },
          signal,
        });
      } catch (error) {
        if (OperatorError.from(error).code !== 'NotFound') throw error;
      }
    },
    async setFinalizers(obj, finalizers, signal) {
      const path = await kube.pathFor(identity(obj));
      await kube.request(path, {
        method: 'PATCH',
        contentType: 'application/merge-patch+json',
        body: { metadata: { finalizers, resourceVersion: obj.metadata?.resourceVersion } },
        signal,
      });
    },
    async applyStatus(obj, status, signal) {
      await applyStatus(kube, obj, status, { fieldManager: STATUS_FIELD_MANAGER, force: true, signal });
    },
  };
}
