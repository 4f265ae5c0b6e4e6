import { describe, expect, test } from 'bun:test';
import { type AnyResource, API_VERSION, parseResource } from '../api/index.ts';
import { buildSnapshot, createMemoryResourceStore, type ResourceSnapshot } from './resource-store.ts';

const endpoints = (name: string, namespace?: string) =>
  parseResource({
    apiVersion: API_VERSION,
    kind: 'TailscaleEndpoints',
    metadata: namespace === undefined ? { name } : { name, namespace },
    spec: { tailnet: 'corp', endpoints: [{ name: 'a', tailscaleIP: '100.64.0.1', port: 80 }] },
  });
const gateway = (name: string, namespace: string) =>
  parseResource({
    apiVersion: API_VERSION,
    kind: 'TailscaleGateway',
    metadata: { name, namespace },
    spec: { gatewayRef: { name: 'eg' }, tailnets: [{ name: 'corp', tailscaleTailnetRef: { name: 'corp' } }] },
  });
const policy = (name: string) =>
  parseResource({
    apiVersion: API_VERSION,
    kind: 'TailscaleRoutePolicy',
    metadata: { name, namespace: 'default' },
    spec: {
      targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'eg' }],
      rules: [{ actions: [{ type: 'Deny' }] }],
    },
  });
const tailnet = parseResource({
  apiVersion: API_VERSION,
  kind: 'TailscaleTailnet',
  metadata: { name: 'corp' },
  spec: { oauthSecretRef: { name: 'oauth', namespace: 'default' } },
});

const names = (list: readonly AnyResource[]) =>
  list.map((r) => `${r.metadata.namespace ?? ''}/${r.metadata.name}`);

describe('buildSnapshot', () => {
  test('sorts each kind by namespace, then name', () => {
    const snapshot = buildSnapshot(
      [
        endpoints('b', 'team'),
        endpoints('z', 'default'),
        endpoints('a', 'team'),
        gateway('g2', 'b'),
        gateway('g1', 'a'),
      ],
      7,
    );
    expect(names(snapshot.endpoints)).toEqual(['default/z', 'team/a', 'team/b']);
    expect(names(snapshot.gateways)).toEqual(['a/g1', 'b/g2']);
    expect(snapshot.version).toBe(7);
  });

  test('keeps only the kinds the hooks read', () => {
    const snapshot = buildSnapshot([tailnet, policy('p'), endpoints('e', 'default')], 1);
    expect(snapshot.endpoints).toHaveLength(1);
    expect(snapshot.gateways).toHaveLength(0);
    expect(names(snapshot.routePolicies)).toEqual(['default/p']);
  });

  test('getEndpoints finds by namespace and name; a missing namespace means default', () => {
    const snapshot = buildSnapshot([endpoints('web'), endpoints('web', 'team')], 1);
    expect(snapshot.getEndpoints('default', 'web')?.metadata.namespace).toBeUndefined();
    expect(snapshot.getEndpoints('team', 'web')?.metadata.namespace).toBe('team');
    expect(snapshot.getEndpoints('other', 'web')).toBeUndefined();
  });

  test('is immutable', () => {
    const snapshot = buildSnapshot([endpoints('web')], 1);
    expect(Object.isFrozen(snapshot)).toBe(true);
    expect(Object.isFrozen(snapshot.endpoints)).toBe(true);
    expect(() => (snapshot.endpoints as AnyResource[]).push(endpoints('x'))).toThrow();
  });
});

describe('createMemoryResourceStore', () => {
  test('starts empty and unsynced at version 0', () => {
    const store = createMemoryResourceStore();
    expect(store.hasSynced()).toBe(false);
    expect(store.snapshot().version).toBe(0);
    expect(store.snapshot().endpoints).toHaveLength(0);
  });

  test('replace swaps the whole content, bumps the version and marks synced', () => {
    const store = createMemoryResourceStore();
    store.replace([endpoints('a', 'default')]);
    const first = store.snapshot();
    store.replace([endpoints('b', 'default')]);
    expect(store.hasSynced()).toBe(true);
    expect(store.snapshot().version).toBe(2);
    expect(names(store.snapshot().endpoints)).toEqual(['default/b']);
    // An earlier snapshot is unaffected: a hook call sees one consistent state.
    expect(names(first.endpoints)).toEqual(['default/a']);
  });

  test('subscribe gets every new snapshot until unsubscribed', () => {
    const store = createMemoryResourceStore();
    const seen: ResourceSnapshot[] = [];
    const unsubscribe = store.subscribe((s) => seen.push(s));
    store.replace([]);
    store.replace([endpoints('a', 'default')]);
    unsubscribe();
    store.replace([]);
    expect(seen.map((s) => s.version)).toEqual([1, 2]);
    expect(names(seen[1]!.endpoints)).toEqual(['default/a']);
  });
});
