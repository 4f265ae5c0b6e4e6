import { describe, expect, test } from 'bun:test';
import type { KubernetesObject } from '@kubernetes/client-node';
import { endpointNamesOwnedBy, keepDiscoveryOwnership } from './ownership.ts';

const cached = (): KubernetesObject => ({
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

describe('keepDiscoveryOwnership', () => {
  test("keeps only the discovery's main-resource entry, so the endpoints it owns still read the same", () => {
    const original = cached();
    const trimmed = keepDiscoveryOwnership()(original);
    expect(trimmed.metadata?.managedFields).toHaveLength(1);
    expect([...endpointNamesOwnedBy(trimmed)]).toEqual(['found']);
    expect(endpointNamesOwnedBy(trimmed)).toEqual(endpointNamesOwnedBy(original));
  });
});
