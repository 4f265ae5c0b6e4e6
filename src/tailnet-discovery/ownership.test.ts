import { describe, expect, test } from 'bun:test';
import { cachedWithManagedFields as cached } from '../testing/managed-fields.ts';
import { endpointNamesOwnedBy, keepDiscoveryOwnership } from './ownership.ts';

describe('keepDiscoveryOwnership', () => {
  test("keeps only the discovery's main-resource entry, so the endpoints it owns still read the same", () => {
    const original = cached();
    const trimmed = keepDiscoveryOwnership()(original);
    expect(trimmed.metadata?.managedFields).toHaveLength(1);
    expect([...endpointNamesOwnedBy(trimmed)]).toEqual(['found']);
    expect(endpointNamesOwnedBy(trimmed)).toEqual(endpointNamesOwnedBy(original));
  });
});
