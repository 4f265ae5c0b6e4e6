import { describe, expect, test } from 'bun:test';
import { cachedWithManagedFields as cached } from '../testing/managed-fields.ts';
import { withoutManagedFields } from './trim.ts';

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
