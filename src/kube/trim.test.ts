import { describe, expect, test } from 'bun:test';
import type { KubernetesObject } from '@kubernetes/client-node';
import { withoutManagedFields } from './trim.ts';

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

describe('withoutManagedFields', () => {
  test('drops managedFields and keeps the rest of the object, without touching the original', () => {
    const original = cached();
    const trimmed = withoutManagedFields()(original);
    expect(trimmed.metadata).toEqual({ name: 'web', namespace: 'apps', uid: 'u1', resourceVersion: '7' });
    expect(trimmed.kind).toBe('TailscaleEndpoints');
    expect(original.metadata?.managedFields).toHaveLength(3);
  });

  test('returns an object without managedFields as it is', () => {
    const obj = { kind: 'Service', metadata: { name: 's' } };
    expect(withoutManagedFields()(obj)).toBe(obj);
  });

  test('keeps the entries the filter accepts', () => {
    const trimmed = withoutManagedFields((e) => e.manager === 'kubectl')(cached());
    expect(trimmed.metadata?.managedFields?.map((e) => e.manager)).toEqual(['kubectl']);
  });
});
