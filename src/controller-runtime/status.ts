/**
 * Status writes by server-side apply on the `/status` subresource — the one place every controller and
 * the proxy engine write status through.
 *
 * Why apply rather than update: the body names only the fields we send, and the API server records our
 * field manager as their owner. Fields other controllers own (Envoy Gateway writes parts of a Gateway's
 * status, for example) are left alone, and a field we stop sending is removed because we owned it.
 * That only holds if the body is built from scratch with exactly our fields, never from the live object,
 * which is why this helper takes the status separately and sends nothing else of the object but its
 * identity (and, when asked, the resourceVersion read, as a precondition).
 *
 * @module
 */

import type { KubernetesObject } from '@kubernetes/client-node';
import { OperatorError } from '../errors.ts';
import { DEFAULT_FIELD_MANAGER, type KubeClient } from '../kube/client.ts';

export interface ApplyStatusOptions {
  /** Default `tailscale-gateway`. */
  fieldManager?: string;
  /**
   * Take fields another manager owns; default false. A conflict (OperatorError `Conflict`) means
   * someone else writes the same status field: report it, do not silently fight over it.
   */
  force?: boolean;
  /**
   * Sent as `metadata.resourceVersion`, making the apply a compare-and-swap: the API server refuses it
   * (`Conflict`) when the object changed since it was read. For a status field that is a list shared
   * with another controller's entries, written whole, so an entry written since our read is never lost.
   */
  resourceVersion?: string;
  signal?: AbortSignal;
}

type Identity = Pick<KubernetesObject, 'apiVersion' | 'kind' | 'metadata'>;

/**
 * The apply body: `obj`'s identity, `status`, and the resourceVersion precondition when given.
 *
 * @throws OperatorError `Invalid` when `obj` lacks apiVersion, kind or name.
 */
export function statusApplyBody(
  obj: Identity,
  status: object,
  options: Pick<ApplyStatusOptions, 'resourceVersion'> = {},
): KubernetesObject & { status: object } {
  const name = obj.metadata?.name;
  if (!obj.apiVersion || !obj.kind || !name) {
    throw new OperatorError('Invalid', 'applyStatus needs apiVersion, kind and metadata.name');
  }
  const namespace = obj.metadata?.namespace;
  return {
    apiVersion: obj.apiVersion,
    kind: obj.kind,
    metadata: {
      name,
      ...(namespace ? { namespace } : {}),
      ...(options.resourceVersion ? { resourceVersion: options.resourceVersion } : {}),
    },
    status,
  };
}

/**
 * Applies `status` to `obj`'s status subresource and returns the object as stored.
 *
 * @throws OperatorError `Invalid` when `obj` lacks apiVersion, kind or name; API errors as the client
 *   reports them (`NotFound` when the object is gone, `Conflict` on a field-manager conflict or a
 *   stale `resourceVersion`).
 */
export async function applyStatus<T extends KubernetesObject>(
  client: Pick<KubeClient, 'applyObject'>,
  obj: Identity,
  status: object,
  options: ApplyStatusOptions = {},
): Promise<T> {
  const body = statusApplyBody(obj, status, options);
  return await client.applyObject<T>(body as KubernetesObject as T, {
    subresource: 'status',
    fieldManager: options.fieldManager ?? DEFAULT_FIELD_MANAGER,
    ...(options.force ? { force: true } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
}
