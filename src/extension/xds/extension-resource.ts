/**
 * Envoy Gateway's `ExtensionResource`: a whole Kubernetes object as JSON. Lists that carry them mix
 * kinds (a backend list also holds ExtensionRef filter objects), so readers filter by apiVersion and
 * kind before validating anything.
 *
 * @module
 */

import type { ExtensionResource } from '../../../gen/envoygateway/extension/context_pb.ts';
import {
  API_VERSION,
  type TailscaleEndpoints,
  type TailscaleRoutePolicy,
  validateResource,
} from '../../api/index.ts';
import { OperatorError } from '../../errors.ts';

/** The JSON object of an ExtensionResource; `Invalid` when Envoy Gateway sent something else. */
export function parseExtensionResource(resource: ExtensionResource, where: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(resource.unstructuredBytes));
  } catch (error) {
    throw new OperatorError('Invalid', `${where}: unstructured_bytes is not JSON`, {
      cause: error,
      field: where,
    });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new OperatorError('Invalid', `${where}: unstructured_bytes is not a JSON object`, { field: where });
  }
  return parsed as Record<string, unknown>;
}

const isOurs = (object: Record<string, unknown>, kind: string) =>
  object['apiVersion'] === API_VERSION && object['kind'] === kind;

/**
 * The objects of one of our kinds in an ExtensionResource list, validated (defaults applied). Objects
 * of other kinds are skipped; one of ours that fails validation is `Invalid`, with the field named.
 */
function ofKind<T>(resources: readonly ExtensionResource[], kind: string, where: string): T[] {
  const out: T[] = [];
  resources.forEach((resource, index) => {
    const at = `${where}[${index}]`;
    const object = parseExtensionResource(resource, at);
    if (!isOurs(object, kind)) return;
    // Hooks read the spec only. Envoy Gateway sends policies with the status it computed in memory
    // (conditions with `lastTransitionTime: null`, say), which is neither ours to judge nor used here.
    const { status: _ignored, ...withoutStatus } = object;
    const result = validateResource(withoutStatus);
    if (!result.ok) {
      const [first] = result.issues;
      const detail = result.issues.map((issue) => `${issue.path || '<root>'}: ${issue.message}`).join('; ');
      throw new OperatorError('Invalid', `${at}: invalid ${kind}: ${detail}`, { field: first?.path });
    }
    out.push(result.resource as T);
  });
  return out;
}

export const tailscaleEndpointsIn = (resources: readonly ExtensionResource[], where: string) =>
  ofKind<TailscaleEndpoints>(resources, 'TailscaleEndpoints', where);

export const routePoliciesIn = (resources: readonly ExtensionResource[], where: string) =>
  ofKind<TailscaleRoutePolicy>(resources, 'TailscaleRoutePolicy', where);
