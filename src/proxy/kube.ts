/**
 * The Kubernetes writes the proxy reconcilers make, behind a small interface so tests can count them
 * and the reconcilers stay free of transport details. Reads come from informer caches, never from here.
 *
 * @module
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { OperatorError } from '../errors.ts';
import type { KubeClient } from '../kube/index.ts';
import { STATUS_FIELD_MANAGER } from './names.ts';

export interface ProxyKube {
  /** Server-side apply (force: the operator owns these objects outright). */
  apply(obj: KubernetesObject, signal: AbortSignal): Promise<void>;
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
      const id = identity(obj);
      await kube.applyObject(
        {
          apiVersion: id.apiVersion,
          kind: id.kind,
          metadata: { name: id.name, ...(id.namespace ? { namespace: id.namespace } : {}) },
          status,
        } as KubernetesObject,
        { subresource: 'status', fieldManager: STATUS_FIELD_MANAGER, force: true, signal },
      );
    },
  };
}
