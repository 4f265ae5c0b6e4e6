/**
 * Status writes by server-side apply on the `/status` subresource.
 *
 * Why apply rather than update: the body names only the fields we send, and the API server records our
 * field manager as their owner. Fields other controllers own (Envoy Gateway writes parts of a Gateway's
 * status, for example) are left alone, and a field we stop sending is removed because we owned it.
 * That only holds if the body is built from scratch with exactly our fields, never from the live object,
 * which is why this helper takes the status separately and sends nothing else of the object but its
 * identity.
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
  signal?: AbortSignal;
}

/**
 * Applies `status` to `obj`'s status subresource and returns the object as stored.
 *
 * @throws OperatorError `Invalid` when `obj` lacks apiVersion, kind or name; API errors as the client
 *   reports them (`NotFound` when the object is gone, `Conflict` on a field-manager conflict).
 */
export async function applyStatus<T extends KubernetesObject>(
  client: Pick<KubeClient, 'applyObject'>,
  obj: Pick<KubernetesObject, 'apiVersion' | 'kind' | 'metadata'>,
  status: object,
  options: ApplyStatusOptions = {},
): Promise<T> {
  const name = obj.metadata?.name;
  if (!obj.apiVersion || !obj.kind || !name) {
    throw new OperatorError('Invalid', 'applyStatus needs apiVersion, kind and metadata.name');
  }
  const namespace = obj.metadata?.namespace;
  const body = {
    apiVersion: obj.apiVersion,
    kind: obj.kind,
    metadata: { name, ...(namespace ? { namespace } : {}) },
    status,
  };
  return await client.applyObject<T>(body as unknown as T, {
    subresource: 'status',
    fieldManager: options.fieldManager ?? DEFAULT_FIELD_MANAGER,
    ...(options.force ? { force: true } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
}
