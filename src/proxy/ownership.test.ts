/**
 * What prune may delete: the objects the operator wrote for a parent (as this version builds them, and
 * as earlier versions marked them), never an object of any child kind that only carries the parent's
 * labels; and syncProxies' teardown acting on exactly that.
 */
import { describe, expect, test } from 'bun:test';
import type { KubernetesObject } from '@kubernetes/client-node';
import { parentLabels } from '../controller-runtime/index.ts';
import { createLogger } from '../observability/logger.ts';
import { withAppliedHash } from './compare.ts';
import { buildEgressEndpointSlice, buildEgressService } from './egress-services.ts';
import type { ProxyKube } from './kube.ts';
import { APPLIED_ANNOTATION, MANAGED_LABEL, PROXY_LABEL } from './names.ts';
import { buildProxySetObjects, type ProxySet } from './objects.ts';
import { ownershipOf, writtenByOperator } from './ownership.ts';
import {
  CHILD_KINDS,
  type ChildCache,
  type ChildKind,
  childrenOf,
  createSyncState,
  syncProxies,
} from './sync.ts';

const TYPE = 'tailscaleendpoints.gateway.tailscale.com';
const KEY = 'team/web';
const labels = parentLabels({
  apiVersion: 'gateway.tailscale.com/v1alpha1',
  kind: 'TailscaleEndpoints',
  metadata: { name: 'web', namespace: 'team' },
});
const otherLabels = parentLabels({
  apiVersion: 'gateway.tailscale.com/v1alpha1',
  kind: 'TailscaleEndpoints',
  metadata: { name: 'api', namespace: 'team' },
});

const SET: ProxySet = {
  base: 'web-0a1b2c-egress',
  namespace: 'tailscale',
  type: 'egress',
  mode: 'kernel',
  replicas: 1,
  hostnames: ['team-web-egress-0'],
  tailnet: 'corp',
  image: 'tailscale/tailscale:v1.102.2',
  app: 'k8s-operator-egress-proxy',
  serverUrl: 'https://controlplane.tailscale.com',
  labels,
  highAvailability: true,
  egressRoutes: [
    {
      endpoint: 'db',
      serviceName: 'web-db-egress',
      port: 5432,
      matchPort: 10000,
      protocol: 'TCP',
      tailnetTarget: { ip: '100.64.0.9' },
    },
  ],
};
const route = SET.egressRoutes![0]!;

/** Every object this version writes for the parent, as applied (with the hash annotation). */
function written(): KubernetesObject[] {
  return [
    ...buildProxySetObjects(SET, [{ deviceId: 'nDEV' }]),
    buildEgressService(route, 'team', labels),
    buildEgressEndpointSlice(route, 'team', labels, [], 'tailscale'),
  ].map((obj) => withAppliedHash(obj));
}

/** `obj` as a controller that copies labels (and nothing else) would make it. */
function labelledCopy(kind: ChildKind, name: string, extra: Record<string, string> = {}): KubernetesObject {
  return {
    apiVersion: 'v1',
    kind,
    metadata: {
      name,
      namespace: kind === 'Service' || kind === 'EndpointSlice' ? 'team' : 'tailscale',
      labels: { ...labels, [MANAGED_LABEL]: 'true', [PROXY_LABEL]: SET.base, ...extra },
    },
  };
}

describe('ownershipOf', () => {
  test('everything this version writes for a parent is ours, and not another parent’s', () => {
    const objects = written();
    // Every child kind the operator writes is covered (Pods are the StatefulSet's).
    expect(new Set(objects.map((o) => o.kind))).toEqual(
      new Set(CHILD_KINDS.filter((kind) => kind !== 'Pod')),
    );
    for (const obj of objects) {
      expect({ kind: obj.kind, name: obj.metadata?.name, is: ownershipOf(obj, TYPE, KEY) }).toEqual({
        kind: obj.kind,
        name: obj.metadata?.name,
        is: 'ours',
      });
      expect(ownershipOf(obj, TYPE, 'team/api')).toBe('foreign');
    }
  });

  test('an object of any child kind carrying only the parent’s labels is foreign', () => {
    for (const kind of CHILD_KINDS.filter((k) => k !== 'Pod')) {
      const copy = labelledCopy(kind, `copy-${kind.toLowerCase()}`);
      expect({ kind, is: ownershipOf(copy, TYPE, KEY) }).toEqual({ kind, is: 'foreign' });
    }
  });

  test("kube-controller-manager's EndpointSlice of a proxy Service (its labels copied) is foreign", () => {
    const slice = labelledCopy('EndpointSlice', `${SET.base}-svc-x7k2p`, {
      'kubernetes.io/service-name': `${SET.base}-svc`,
      'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
    });
    slice.metadata!.namespace = 'tailscale';
    slice.metadata!.ownerReferences = [
      { apiVersion: 'v1', kind: 'Service', name: `${SET.base}-svc`, uid: 'u1', controller: true },
    ];
    expect(ownershipOf(slice, TYPE, KEY)).toBe('foreign');
    // Even with the hash annotation somehow on it: another manager, another controller.
    slice.metadata!.annotations = { [APPLIED_ANNOTATION]: 'abc' };
    expect(ownershipOf(slice, TYPE, KEY)).toBe('foreign');
    delete slice.metadata!.ownerReferences;
    expect(ownershipOf(slice, TYPE, KEY)).toBe('foreign');
  });

  test('another controller owning an object makes it foreign, whatever it carries', () => {
    const secret = written().find((o) => o.kind === 'Secret')!;
    secret.metadata!.ownerReferences = [
      { apiVersion: 'example.com/v1', kind: 'Backup', name: 'b', uid: 'u2', controller: true },
    ];
    expect(ownershipOf(secret, TYPE, KEY)).toBe('foreign');
    // A non-controller reference (a user's GC link) does not take it away.
    secret.metadata!.ownerReferences[0]!.controller = false;
    expect(ownershipOf(secret, TYPE, KEY)).toBe('ours');
  });

  test('upgrade: an object as the first engine version marked it (labels and applied-hash only) is ours', () => {
    // The applied-hash annotation has been on every proxy apply and create since the engine began
    // (0187529); nothing else of today's objects is needed to recognise it.
    const old: KubernetesObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: `${SET.base}-0-config`,
        namespace: 'tailscale',
        labels: { ...labels, [MANAGED_LABEL]: 'true' },
        annotations: { [APPLIED_ANNOTATION]: '0123456789abcdef' },
      },
    };
    expect(writtenByOperator(old)).toBe(true);
    expect(ownershipOf(old, TYPE, KEY)).toBe('ours');
  });

  test('Pods: the StatefulSet’s are dependents (waited for, never ours to delete); another controller’s are foreign', () => {
    const pod = labelledCopy('Pod', `${SET.base}-0`);
    expect(ownershipOf(pod, TYPE, KEY)).toBe('dependent');
    pod.metadata!.ownerReferences = [
      { apiVersion: 'apps/v1', kind: 'StatefulSet', name: SET.base, uid: 'u3', controller: true },
    ];
    expect(ownershipOf(pod, TYPE, KEY)).toBe('dependent');
    pod.metadata!.ownerReferences = [
      { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'copycat-5d9f', uid: 'u4', controller: true },
    ];
    expect(ownershipOf(pod, TYPE, KEY)).toBe('foreign');
  });

  test('without tailscale.com/managed nothing is a child', () => {
    const obj = written()[0]!;
    delete obj.metadata!.labels![MANAGED_LABEL];
    expect(ownershipOf(obj, TYPE, KEY)).toBe('foreign');
  });
});

/** An in-memory child cache over `objects`. */
function cacheOf(objects: KubernetesObject[]): ChildCache {
  return {
    get: (kind, namespace, name) =>
      objects.find(
        (o) => o.kind === kind && o.metadata?.namespace === namespace && o.metadata?.name === name,
      ),
    list: (kind) => objects.filter((o) => o.kind === kind),
  };
}

describe('syncProxies prune', () => {
  test('teardown deletes what the operator wrote and leaves every labelled foreign object alone', async () => {
    const ours = written().filter((o) => o.kind !== 'StatefulSet'); // StatefulSet already gone
    const foreign = [
      ...CHILD_KINDS.filter((k) => k !== 'Pod').map((kind) =>
        labelledCopy(kind, `copy-${kind.toLowerCase()}`),
      ),
      labelledCopy('EndpointSlice', `${SET.base}-svc-x7k2p`, {
        'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
      }),
    ];
    const otherParent = written().map((o) => ({
      ...o,
      metadata: {
        ...o.metadata,
        name: `other-${o.metadata?.name}`,
        labels: { ...o.metadata?.labels, ...otherLabels },
      },
    }));
    const cache = cacheOf([...ours, ...foreign, ...otherParent]);
    expect(childrenOf(cache, TYPE, KEY).length).toBe(ours.length);
    const deleted: string[] = [];
    const kube: ProxyKube = {
      apply: async () => {
        throw new Error('no apply expected');
      },
      create: async () => {
        throw new Error('no create expected');
      },
      delete: async (obj) => {
        deleted.push(`${obj.kind}/${obj.metadata?.name}`);
      },
      setFinalizers: async () => {},
      applyStatus: async () => {},
    };
    const result = await syncProxies({
      parentType: TYPE,
      parentKey: KEY,
      sets: [],
      extra: [],
      tags: () => [],
      knownDevices: new Map(),
      cache,
      kube,
      tailscale: () => undefined,
      state: createSyncState(),
      now: 0,
      reissueIntervalMs: 60_000,
      signal: new AbortController().signal,
      log: createLogger({ level: 'silent', format: 'json' }),
    });
    // All of it in the official order: the config Secret goes in the pass after its state Secret.
    const config = `Secret/${SET.base}-0-config`;
    const all = ours.map((o) => `${o.kind}/${o.metadata?.name}`);
    expect(deleted.sort()).toEqual(all.filter((name) => name !== config).sort());
    expect(result.writes).toBe(ours.length - 1);
    expect(result.pruning).toBe(true);
    expect(result.remaining).toBe(ours.length);
    expect(result.problems).toEqual([]);
  });

  test("foreign labelled objects do not hold teardown up; a labelled Pod (the StatefulSet's) does", () => {
    const copies = CHILD_KINDS.filter((k) => k !== 'Pod').map((kind) =>
      labelledCopy(kind, `copy-${kind.toLowerCase()}`),
    );
    expect(childrenOf(cacheOf(copies), TYPE, KEY)).toEqual([]);
    const pod = labelledCopy('Pod', `${SET.base}-0`);
    expect(childrenOf(cacheOf([...copies, pod]), TYPE, KEY).map((o) => o.kind)).toEqual(['Pod']);
  });
});
