import { describe, expect, test } from 'bun:test';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { OperatorError } from '../errors.ts';
import { endpoints, INVALID_CASES, proxyGroup, routePolicy, tailnet } from '../testing/invalid-cases.ts';
import { API_VERSION } from './meta.ts';
import { checkResource, parseResource, validateResource } from './validate.ts';

const examplesDir = join(import.meta.dir, '..', '..', 'examples');

/** Every document of every YAML file under examples/, with its file for messages. */
function exampleDocuments(): { file: string; object: Record<string, unknown> }[] {
  const out: { file: string; object: Record<string, unknown> }[] = [];
  for (const entry of readdirSync(examplesDir, { recursive: true, encoding: 'utf8' })) {
    if (!entry.endsWith('.yaml')) continue;
    const text = readFileSync(join(examplesDir, entry), 'utf8');
    for (const doc of parseAllDocuments(text)) out.push({ file: entry, object: doc.toJS() });
  }
  return out;
}

describe('validateResource', () => {
  test('applies the CRD defaults', () => {
    const result = validateResource(endpoints());
    if (!result.ok) throw new Error(JSON.stringify(result.issues));
    expect(result.resource.kind).toBe('TailscaleEndpoints');
    if (result.resource.kind !== 'TailscaleEndpoints') return;
    expect(result.resource.spec.endpoints[0]).toMatchObject({ protocol: 'HTTP', weight: 1, priority: 0 });
    expect(result.resource.spec.proxy).toEqual({ connectionType: 'bidirectional' });

    const tn = validateResource(tailnet());
    expect(tn.ok && tn.resource.kind === 'TailscaleTailnet' && tn.resource.spec).toEqual({
      tailnet: '-',
      tags: ['tag:k8s'],
      oauthSecretRef: { name: 'tailscale-oauth', namespace: 'tailscale-gateway' },
    });
  });

  test('fills nested defaults of a present object, like the API server', () => {
    const object = endpoints();
    (object['spec'] as { endpoints: Record<string, unknown>[] }).endpoints[0]!['healthCheck'] = {};
    const result = validateResource(object);
    expect(
      result.ok &&
        result.resource.kind === 'TailscaleEndpoints' &&
        result.resource.spec.endpoints[0]?.healthCheck,
    ).toEqual({
      enabled: true,
      path: '/health',
      interval: '10s',
      timeout: '3s',
      healthyThreshold: 2,
      unhealthyThreshold: 3,
    });
    const pg = validateResource(proxyGroup());
    expect(pg.ok && pg.resource.kind === 'TailscaleProxyGroup' && pg.resource.spec.replicas).toBe(2);
    const rp = validateResource(routePolicy());
    expect(
      rp.ok &&
        rp.resource.kind === 'TailscaleRoutePolicy' &&
        rp.resource.spec.rules[0]?.actions[0]?.route?.backendRefs[0],
    ).toEqual({
      group: '',
      kind: 'Service',
      name: 'api',
      port: 80,
      weight: 1,
    });
  });

  test('rejects unknown kinds and foreign apiVersions by name', () => {
    expect(
      validateResource({ apiVersion: API_VERSION, kind: 'TailscaleWidget', metadata: { name: 'x' } }),
    ).toEqual({
      ok: false,
      issues: [
        {
          path: 'kind',
          message:
            'unknown kind "TailscaleWidget" in gateway.tailscale.com/v1alpha1; expected one of TailscaleTailnet, ' +
            'TailscaleEndpoints, TailscaleGateway, TailscaleRoutePolicy, TailscaleProxyGroup',
        },
      ],
    });
    const foreign = validateResource({ apiVersion: 'v1', kind: 'Secret' });
    expect(foreign.ok ? [] : foreign.issues.map((i) => i.path)).toEqual(['apiVersion']);
    expect(validateResource('nope').ok).toBe(false);
  });

  test('rejects unknown fields, like kubectl apply with strict field validation', () => {
    const object = endpoints();
    (object['spec'] as Record<string, unknown>)['endpoint'] = [];
    expect(validateResource(object)).toEqual({
      ok: false,
      issues: [{ path: 'spec.endpoint', message: 'unknown field "endpoint"' }],
    });
  });

  test('parseResource throws an Invalid OperatorError naming the field', () => {
    const object = endpoints();
    (object['spec'] as { endpoints: Record<string, unknown>[] }).endpoints[0]!['port'] = 0;
    try {
      parseResource(object);
      throw new Error('expected a throw');
    } catch (error) {
      expect(error).toBeInstanceOf(OperatorError);
      expect((error as OperatorError).code).toBe('Invalid');
      expect((error as OperatorError).field).toBe('spec.endpoints[0].port');
      expect((error as OperatorError).message).toStartWith(
        'TailscaleEndpoints default/web: spec.endpoints[0].port:',
      );
    }
  });

  test('every example validates', () => {
    const documents = exampleDocuments().filter(({ object }) => object['apiVersion'] === API_VERSION);
    expect(documents.length).toBeGreaterThanOrEqual(9);
    const kinds = new Set<string>();
    for (const { file, object } of documents) {
      const result = validateResource(object);
      expect({ file, issues: result.ok ? [] : result.issues }).toEqual({ file, issues: [] });
      kinds.add(String(object['kind']));
    }
    expect(kinds.size).toBe(5);
  });
});

describe('invalid objects are rejected naming the field', () => {
  const cases = INVALID_CASES.filter((c) => !c.serverOnly);
  test('there is at least one case per rule (>= 25)', () => {
    expect(cases.length).toBeGreaterThanOrEqual(25);
  });
  for (const invalid of cases) {
    test(invalid.name, () => {
      const result = validateResource(invalid.object);
      expect(result.ok).toBe(false);
      const paths = result.ok ? [] : result.issues.map((issue) => issue.path);
      expect(paths).toContain(invalid.field);
    });
  }
});

describe('checkResource', () => {
  /** A status an older schema or another writer could have stored: an ancestorRef with a `port`. */
  const staleStatus = {
    ancestors: [
      {
        ancestorRef: { name: 'eg', port: 80 },
        controllerName: 'gateway.envoyproxy.io/gatewayclass-controller',
        conditions: [],
      },
    ],
  };
  const goodStatus = { conditions: [] };
  const asObject = (json: Record<string, unknown>) => json as never;

  test('a TailscaleRoutePolicy is judged without its status, which the value keeps only when valid', () => {
    const stale = checkResource('TailscaleRoutePolicy', asObject({ ...routePolicy(), status: staleStatus }));
    expect(stale.ok).toBe(true);
    expect(stale.ok && stale.value.status).toBeUndefined();
    expect(stale.ok && stale.value.spec.targetRefs.length).toBeGreaterThan(0);
    expect((stale.raw as { status?: unknown }).status).toEqual(staleStatus);
    const good = checkResource('TailscaleRoutePolicy', asObject({ ...routePolicy(), status: goodStatus }));
    expect(good.ok && good.value.status).toEqual(goodStatus);
  });

  test('a bad spec is still invalid, named by its field, whatever the status', () => {
    const bad = {
      ...routePolicy(),
      spec: { ...(routePolicy().spec as object), rules: [] },
      status: staleStatus,
    };
    const checked = checkResource('TailscaleRoutePolicy', asObject(bad));
    expect(checked.ok).toBe(false);
    expect(!checked.ok && checked.issues.map((i) => i.path)).toEqual(['spec.rules']);
    expect(checked.raw).toBe(bad as never);
  });

  test('other kinds are judged whole, their status included', () => {
    const checked = checkResource('TailscaleEndpoints', asObject({ ...endpoints(), status: { unknown: 1 } }));
    expect(checked.ok).toBe(false);
  });
});
