import { describe, expect, test } from 'bun:test';
import type { KubernetesObject } from '@kubernetes/client-node';
import {
  gatewayOfEnvoyService,
  httpListenerOf,
  isEnvoyServiceOf,
  OWNING_GATEWAY_NAME_LABEL,
  OWNING_GATEWAY_NAMESPACE_LABEL,
  resolveUpstream,
} from './tailscale-gateway-upstream.ts';

const gateway = (listeners: object[]): KubernetesObject =>
  ({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'eg', namespace: 'apps' },
    spec: { gatewayClassName: 'eg', listeners },
  }) as KubernetesObject;
const HTTP = { name: 'http', protocol: 'HTTP', port: 80 };
const HTTPS = { name: 'https', protocol: 'HTTPS', port: 443 };
const ALT = { name: 'alt', protocol: 'HTTP', port: 8080 };

/** A Service as Envoy Gateway makes it for Gateway apps/eg (hashed name, EG's namespace). */
const envoyService = (
  ports: number[],
  name = 'envoy-apps-eg-1a2b3c4d',
  labels: Record<string, string> = {
    [OWNING_GATEWAY_NAMESPACE_LABEL]: 'apps',
    [OWNING_GATEWAY_NAME_LABEL]: 'eg',
  },
): KubernetesObject =>
  ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'envoy-gateway-system', labels },
    spec: {
      ports: ports.map((port) => ({ name: `http-${port}`, protocol: 'TCP', port, targetPort: port + 10000 })),
    },
  }) as KubernetesObject;

const resolve = (object: KubernetesObject | undefined, services: KubernetesObject[], sectionName?: string) =>
  resolveUpstream({
    gateway: { namespace: 'apps', name: 'eg', ...(sectionName ? { sectionName } : {}) },
    object,
    envoyServices: services,
    clusterDomain: 'cluster.local',
  });

describe('resolveUpstream', () => {
  test('the first HTTP listener, on the Envoy Service port equal to the listener port', () => {
    expect(resolve(gateway([HTTPS, HTTP, ALT]), [envoyService([443, 80, 8080])])).toEqual({
      ok: true,
      upstream: 'http://envoy-apps-eg-1a2b3c4d.envoy-gateway-system.svc.cluster.local:80',
      listener: 'http',
      port: 80,
      service: { namespace: 'envoy-gateway-system', name: 'envoy-apps-eg-1a2b3c4d' },
    });
  });

  test('sectionName picks the listener', () => {
    const resolved = resolve(gateway([HTTP, ALT]), [envoyService([80, 8080])], 'alt');
    expect(resolved.ok && resolved.upstream).toBe(
      'http://envoy-apps-eg-1a2b3c4d.envoy-gateway-system.svc.cluster.local:8080',
    );
  });

  test('GatewayNotFound without the Gateway', () => {
    expect(resolve(undefined, [envoyService([80])])).toMatchObject({ ok: false, reason: 'GatewayNotFound' });
  });

  test('NoHTTPListener: none of protocol HTTP, a sectionName naming an HTTPS or missing listener', () => {
    for (const [listeners, section] of [
      [[HTTPS], undefined],
      [[HTTP, HTTPS], 'https'],
      [[HTTP], 'nope'],
      [[], undefined],
    ] as const) {
      const resolved = resolve(gateway([...listeners]), [envoyService([80, 443])], section);
      expect(resolved).toMatchObject({ ok: false, reason: 'NoHTTPListener' });
    }
    const named = resolve(gateway([HTTP, HTTPS]), [], 'https');
    expect(!named.ok && named.message).toContain('protocol HTTPS');
  });

  test('EnvoyServiceNotFound: no Service for this Gateway, or none with the listener port yet', () => {
    const other = envoyService([80], 'envoy-other', {
      [OWNING_GATEWAY_NAMESPACE_LABEL]: 'apps',
      [OWNING_GATEWAY_NAME_LABEL]: 'other',
    });
    const none = resolve(gateway([HTTP]), [other]);
    expect(none).toMatchObject({ ok: false, reason: 'EnvoyServiceNotFound' });
    expect(!none.ok && none.message).toContain('mergeGateways');
    const portless = resolve(gateway([ALT]), [envoyService([80])]);
    expect(portless).toMatchObject({ ok: false, reason: 'EnvoyServiceNotFound' });
    expect(!portless.ok && portless.message).toContain('no TCP port 8080');
  });

  test('merged Gateways (labelled by GatewayClass only) are not taken', () => {
    const merged = envoyService([80], 'envoy-eg-merged', {
      'gateway.envoyproxy.io/owning-gatewayclass': 'eg',
    });
    expect(resolve(gateway([HTTP]), [merged])).toMatchObject({ ok: false, reason: 'EnvoyServiceNotFound' });
  });

  test('several candidates: the first by namespace and name that serves the port, whatever the order', () => {
    const a = envoyService([80], 'envoy-a');
    const b = envoyService([80], 'envoy-b');
    const c = envoyService([443], 'envoy-0');
    for (const order of [
      [a, b, c],
      [c, b, a],
    ]) {
      const resolved = resolve(gateway([HTTP]), order);
      expect(resolved.ok && resolved.service.name).toBe('envoy-a');
    }
    const deleting = { ...a, metadata: { ...a.metadata, deletionTimestamp: new Date() } } as KubernetesObject;
    const resolved = resolve(gateway([HTTP]), [deleting, b]);
    expect(resolved.ok && resolved.service.name).toBe('envoy-b');
  });

  test('the cluster domain is the configured one', () => {
    const resolved = resolveUpstream({
      gateway: { namespace: 'apps', name: 'eg' },
      object: gateway([HTTP]),
      envoyServices: [envoyService([80])],
      clusterDomain: 'corp.internal',
    });
    expect(resolved.ok && resolved.upstream).toBe(
      'http://envoy-apps-eg-1a2b3c4d.envoy-gateway-system.svc.corp.internal:80',
    );
  });
});

describe('labels', () => {
  test('an Envoy Service names its Gateway by both owning-gateway labels', () => {
    expect(gatewayOfEnvoyService(envoyService([80]))).toBe('apps/eg');
    expect(isEnvoyServiceOf(envoyService([80]), 'apps', 'eg')).toBe(true);
    expect(isEnvoyServiceOf(envoyService([80]), 'other', 'eg')).toBe(false);
    expect(
      gatewayOfEnvoyService(envoyService([80], 'x', { [OWNING_GATEWAY_NAME_LABEL]: 'eg' })),
    ).toBeUndefined();
  });

  test('httpListenerOf tolerates a Gateway without listeners', () => {
    expect(
      httpListenerOf({ kind: 'Gateway', metadata: { name: 'eg' } } as KubernetesObject, undefined),
    ).toEqual({
      problem:
        'Gateway default/eg has no listener of protocol HTTP; mode HTTP needs one (or name one with gatewayRef.sectionName)',
    });
  });
});
