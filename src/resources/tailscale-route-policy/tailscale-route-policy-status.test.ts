/**
 * TailscaleRoutePolicy status, pure: every reason per target and at the top, conflicts decided as the
 * hooks decide them, other controllers' ancestor entries carried through untouched, and the
 * reconciler writing nothing when our part of the status is unchanged.
 */
import { describe, expect, test } from 'bun:test';
import type { KubernetesObject } from '@kubernetes/client-node';
import {
  checkResource,
  POLICY_CONTROLLER_NAME,
  type TailscaleRoutePolicy,
  type TailscaleRoutePolicyStatus,
} from '../../api/index.ts';
import { createLogger } from '../../observability/logger.ts';
import { applyPolicyStatus, createRoutePolicyReconciler, observePolicy } from './tailscale-route-policy.ts';
import { desiredPolicyStatus, MAX_ANCESTORS, policyStatusEqual } from './tailscale-route-policy-status.ts';

const NOW = new Date('2026-03-01T00:00:00Z');
const log = createLogger({ level: 'silent', format: 'json' });
const ctx = { signal: new AbortController().signal, log };
const GW = 'gateway.networking.k8s.io';
const EG = 'gateway.envoyproxy.io/gatewayclass-controller';

const policy = (
  name: string,
  targetRefs: Record<string, unknown>[],
  extra: { created?: string; rules?: unknown[]; status?: TailscaleRoutePolicyStatus } = {},
): KubernetesObject =>
  ({
    apiVersion: 'gateway.tailscale.com/v1alpha1',
    kind: 'TailscaleRoutePolicy',
    metadata: {
      name,
      namespace: 'apps',
      generation: 2,
      resourceVersion: '7',
      creationTimestamp: extra.created ?? '2026-01-01T00:00:00Z',
    },
    spec: { targetRefs, rules: extra.rules ?? [{ actions: [{ type: 'Deny' }] }] },
    ...(extra.status ? { status: extra.status } : {}),
  }) as unknown as KubernetesObject;

const route = (rules: string[] = ['main']) =>
  ({
    apiVersion: `${GW}/v1`,
    kind: 'HTTPRoute',
    metadata: { name: 'app', namespace: 'apps' },
    spec: { rules: rules.map((name) => ({ name })) },
  }) as KubernetesObject;
const gateway = {
  apiVersion: `${GW}/v1`,
  kind: 'Gateway',
  metadata: { name: 'eg', namespace: 'apps' },
  spec: { listeners: [{ name: 'http' }, { name: 'https' }] },
} as KubernetesObject;

/** A policy as its typed informer hands it out. */
const checked = (p: KubernetesObject) => checkResource('TailscaleRoutePolicy', p);
/** The valid ones, as the informer's `valid` lists them. */
const valid = (policies: KubernetesObject[]): TailscaleRoutePolicy[] =>
  policies.map(checked).flatMap((c) => (c.ok ? [c.value] : []));

function world(policies: KubernetesObject[], targets: Record<string, KubernetesObject | 'not-served'> = {}) {
  const all = { 'HTTPRoute/app': route(), 'Gateway/eg': gateway, ...targets };
  return {
    getPolicy: (_: string, name: string) => {
      const p = policies.find((p) => p.metadata?.name === name);
      return p ? checked(p) : undefined;
    },
    listPolicies: () => valid(policies),
    getTarget: (kind: string, _: string, name: string) =>
      (all as Record<string, KubernetesObject | 'not-served'>)[`${kind}/${name}`],
  };
}

const verdictOf = (p: KubernetesObject, w = world([p])) => {
  const { policy: parsed, observed } = observePolicy(checked(p), w);
  if (observed === 'unknown') throw new Error('targets unknown');
  return desiredPolicyStatus(
    {
      metadata: p.metadata as never,
      ...(parsed ? { spec: parsed.spec } : {}),
      status: (p as { status?: TailscaleRoutePolicyStatus }).status,
    },
    observed,
    NOW,
  );
};
const summary = (status: TailscaleRoutePolicyStatus) =>
  Object.fromEntries((status.conditions ?? []).map((c) => [c.type, [c.status, c.reason]]));
const accepted = (status: TailscaleRoutePolicyStatus) =>
  (status.ancestors ?? [])
    .filter((a) => a.controllerName === POLICY_CONTROLLER_NAME)
    .map((a) => {
      const c = a.conditions?.find((x) => x.type === 'Accepted');
      return `${a.ancestorRef.kind}/${a.ancestorRef.name}${a.ancestorRef.sectionName ? `#${a.ancestorRef.sectionName}` : ''}=${c?.reason}`;
    });

describe('desiredPolicyStatus', () => {
  test('accepted on every target: one entry per target, Ready', () => {
    const p = policy('a', [
      { group: GW, kind: 'HTTPRoute', name: 'app', sectionName: 'main' },
      { group: GW, kind: 'Gateway', name: 'eg', sectionName: 'https' },
      { group: 'gateway.tailscale.com', kind: 'TailscaleGateway', name: 'tsgw' },
    ]);
    const { status, ready } = verdictOf(p, world([p], { 'TailscaleGateway/tsgw': gateway }));
    expect(ready).toBe(true);
    expect(accepted(status)).toEqual([
      'HTTPRoute/app#main=Accepted',
      'Gateway/eg#https=Accepted',
      'TailscaleGateway/tsgw=Accepted',
    ]);
    expect(summary(status)).toEqual({
      Ready: ['True', 'Ready'],
      Accepted: ['True', 'Accepted'],
      RulesSupported: ['True', 'Supported'],
    });
    const entry = status.ancestors![0]!;
    expect(entry.ancestorRef).toEqual({
      group: GW,
      kind: 'HTTPRoute',
      namespace: 'apps',
      name: 'app',
      sectionName: 'main',
    });
    expect(entry.conditions?.[0]?.observedGeneration).toBe(2);
  });

  test('TargetNotFound: missing object, missing rule or listener, kind not served', () => {
    const p = policy('a', [
      { group: GW, kind: 'HTTPRoute', name: 'ghost' },
      { group: GW, kind: 'HTTPRoute', name: 'app', sectionName: 'nope' },
      { group: GW, kind: 'Gateway', name: 'eg', sectionName: 'tcp' },
      { group: GW, kind: 'Gateway', name: 'other' },
    ]);
    const { status, ready } = verdictOf(p, world([p], { 'Gateway/other': 'not-served' }));
    expect(ready).toBe(false);
    expect(accepted(status)).toEqual([
      'HTTPRoute/ghost=TargetNotFound',
      'HTTPRoute/app#nope=TargetNotFound',
      'Gateway/eg#tcp=TargetNotFound',
      'Gateway/other=TargetNotFound',
    ]);
    const messages = status.ancestors!.map((a) => a.conditions?.[0]?.message);
    expect(messages[1]).toBe('HTTPRoute apps/app has no rule named nope (it has main)');
    expect(messages[2]).toBe('Gateway apps/eg has no listener named tcp (it has http, https)');
    expect(messages[3]).toContain('does not serve Gateway');
    expect(summary(status)).toMatchObject({
      Ready: ['False', 'TargetNotFound'],
      Accepted: ['False', 'TargetNotFound'],
    });
  });

  test('Conflicted: the older policy on the same target wins; the loser names it', () => {
    const older = policy('zeta', [{ group: GW, kind: 'HTTPRoute', name: 'app' }], {
      created: '2026-01-01T00:00:00Z',
    });
    const newer = policy(
      'alpha',
      [
        { group: GW, kind: 'HTTPRoute', name: 'app' },
        { group: GW, kind: 'Gateway', name: 'eg' },
      ],
      {
        created: '2026-02-01T00:00:00Z',
      },
    );
    const w = world([older, newer]);
    expect(accepted(verdictOf(older, w).status)).toEqual(['HTTPRoute/app=Accepted']);
    const loser = verdictOf(newer, w).status;
    expect(accepted(loser)).toEqual(['HTTPRoute/app=Conflicted', 'Gateway/eg=Accepted']);
    expect(loser.ancestors![0]!.conditions![0]!.message).toContain('TailscaleRoutePolicy apps/zeta');
    // Accepted somewhere: Accepted True, but not Ready.
    expect(summary(loser)).toMatchObject({ Accepted: ['True', 'Accepted'], Ready: ['False', 'Conflicted'] });
    // Same age: namespace/name decides.
    const a = policy('a', [{ group: GW, kind: 'HTTPRoute', name: 'app' }]);
    const b = policy('b', [{ group: GW, kind: 'HTTPRoute', name: 'app' }]);
    expect(accepted(verdictOf(b, world([a, b])).status)).toEqual(['HTTPRoute/app=Conflicted']);
  });

  test('Invalid: every target named leniently, nothing accepted', () => {
    const p = policy('bad', [{ group: GW, kind: 'HTTPRoute', name: 'app' }], { rules: [{ actions: [] }] });
    const { status } = verdictOf(p);
    expect(accepted(status)).toEqual(['HTTPRoute/app=Invalid']);
    expect(summary(status)).toMatchObject({ Accepted: ['False', 'Invalid'], Ready: ['False', 'Invalid'] });
  });

  test('UnsupportedActions: Route backendRefs are not carried out', () => {
    const p = policy('fwd', [{ group: GW, kind: 'HTTPRoute', name: 'app' }], {
      rules: [
        {
          name: 'r',
          actions: [{ type: 'Route', route: { backendRefs: [{ kind: 'Service', name: 's', port: 80 }] } }],
        },
      ],
    });
    const { status } = verdictOf(p);
    expect(summary(status)).toEqual({
      Ready: ['False', 'UnsupportedActions'],
      Accepted: ['True', 'Accepted'],
      RulesSupported: ['False', 'UnsupportedActions'],
    });
  });

  test("Envoy Gateway's entries are kept as they are, first; ours fill the room left of 16", () => {
    const foreign = (name: string) => ({
      ancestorRef: { group: GW, kind: 'Gateway', namespace: 'apps', name },
      controllerName: EG,
      conditions: [
        {
          type: 'Accepted',
          status: 'True' as const,
          reason: 'Accepted',
          message: 'Policy has been accepted.',
          lastTransitionTime: '2025-01-01T00:00:00Z',
          observedGeneration: 1,
        },
      ],
    });
    const p = policy(
      'a',
      [
        { group: GW, kind: 'HTTPRoute', name: 'app' },
        { group: GW, kind: 'Gateway', name: 'eg' },
      ],
      {
        status: { ancestors: Array.from({ length: MAX_ANCESTORS - 1 }, (_, i) => foreign(`g${i}`)) },
      },
    );
    const { status } = verdictOf(p);
    expect(status.ancestors!.slice(0, MAX_ANCESTORS - 1)).toEqual(
      Array.from({ length: MAX_ANCESTORS - 1 }, (_, i) => foreign(`g${i}`)),
    );
    expect(status.ancestors).toHaveLength(MAX_ANCESTORS);
    expect(status.conditions?.find((c) => c.type === 'Ready')?.message).toContain('1 target(s) not listed');
  });

  test('equality ignores other controllers; a second verdict keeps transition times', () => {
    const p = policy('a', [{ group: GW, kind: 'HTTPRoute', name: 'app' }]);
    const first = verdictOf(p).status;
    const again = verdictOf(
      policy('a', [{ group: GW, kind: 'HTTPRoute', name: 'app' }], { status: first }),
      world([p]),
    ).status;
    expect(policyStatusEqual(first, again)).toBe(true);
    const withForeign = {
      ...first,
      ancestors: [...first.ancestors!, { ancestorRef: { name: 'eg' }, controllerName: EG, conditions: [] }],
    };
    expect(policyStatusEqual(first, withForeign as TailscaleRoutePolicyStatus)).toBe(true);
    expect(policyStatusEqual(first, { ...first, ancestors: [] })).toBe(false);
  });
});

describe('the reconciler', () => {
  test('a target kind not listed yet: no status written (no TargetNotFound for the unseen), tried again', async () => {
    const p = policy('a', [{ group: GW, kind: 'HTTPRoute', name: 'app' }]);
    let writes = 0;
    const reconcile = createRoutePolicyReconciler({
      ...world([p]),
      getTarget: () => 'unknown',
      writeStatus: async () => {
        writes++;
      },
      clock: { now: () => NOW.getTime() },
    });
    expect(await reconcile('apps/a', ctx)).toEqual({ requeueAfter: 2000 });
    expect(writes).toBe(0);
  });

  test('a stored status the schema refuses: the policy is judged by its spec, as in the hooks, and the status rewritten', async () => {
    // An ancestorRef with a field this schema does not know, as an older schema could have stored it.
    const stale = [{ ancestorRef: { name: 'eg', port: 80 }, controllerName: EG, conditions: [] }];
    const p = policy('a', [{ group: GW, kind: 'HTTPRoute', name: 'app' }], {
      status: { ancestors: stale } as never,
    });
    expect(checked(p).ok).toBe(true);
    const written: TailscaleRoutePolicyStatus[] = [];
    const reconcile = createRoutePolicyReconciler({
      ...world([p]),
      writeStatus: async (_obj, status) => {
        written.push(status);
      },
      clock: { now: () => NOW.getTime() },
    });
    await reconcile('apps/a', ctx);
    expect(written).toHaveLength(1);
    expect(summary(written[0]!)).toMatchObject({ Ready: ['True', 'Ready'], Accepted: ['True', 'Accepted'] });
    expect(accepted(written[0]!)).toEqual(['HTTPRoute/app=Accepted']);
  });

  test('writes once, then nothing while the outcome is the same; the body carries the resourceVersion', async () => {
    let stored = policy('a', [{ group: GW, kind: 'HTTPRoute', name: 'app' }]);
    const writes: KubernetesObject[] = [];
    const applyOptions: unknown[] = [];
    const kube = {
      applyObject: async <T extends KubernetesObject>(body: T, options?: unknown): Promise<T> => {
        writes.push(body);
        applyOptions.push(options);
        return body;
      },
    };
    const w = world([]);
    const reconcile = createRoutePolicyReconciler({
      ...w,
      getPolicy: () => checked(stored),
      listPolicies: () => valid([stored]),
      writeStatus: async (obj, status, signal) => {
        await applyPolicyStatus(kube, obj, status, signal);
        stored = { ...stored, status } as KubernetesObject;
      },
      clock: { now: () => NOW.getTime() },
    });
    await reconcile('apps/a', ctx);
    await reconcile('apps/a', ctx);
    expect(writes).toHaveLength(1);
    expect(writes[0]!.metadata).toEqual({ name: 'a', namespace: 'apps', resourceVersion: '7' });
    expect(Object.keys(writes[0]!).sort()).toEqual(['apiVersion', 'kind', 'metadata', 'status']);
    expect(applyOptions[0]).toEqual({
      subresource: 'status',
      fieldManager: 'tailscale-gateway-route-policy',
      force: true,
      signal: ctx.signal,
    });
    // Envoy Gateway replaces the whole status with its own entries: ours are written again, its kept.
    const egOnly = {
      ancestors: [
        {
          ancestorRef: { group: GW, kind: 'Gateway', namespace: 'apps', name: 'eg' },
          controllerName: EG,
          conditions: [],
        },
      ],
    };
    stored = { ...stored, status: egOnly } as KubernetesObject;
    await reconcile('apps/a', ctx);
    expect(writes).toHaveLength(2);
    const written = (writes[1] as { status: TailscaleRoutePolicyStatus }).status;
    expect(written.ancestors?.map((a) => a.controllerName)).toEqual([EG, POLICY_CONTROLLER_NAME]);
    await reconcile('apps/a', ctx);
    expect(writes).toHaveLength(2);
  });
});
