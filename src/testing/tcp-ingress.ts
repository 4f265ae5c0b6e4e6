/**
 * One TailscaleGateway publishing one mode-TCP service (`web`, through the `ingress` proxy group of
 * tailnet `corp`, for the TailscaleEndpoints `web`), with the status the services controller writes
 * for it: the objects the pure tests of service hosting, remote members and the TailscaleServices
 * condition share. Objects go through the API's own validation, so defaults are applied as in the store.
 *
 * @module
 */
import {
  API_VERSION,
  parseResource,
  type TailscaleEndpoints,
  type TailscaleGateway,
  type TailscaleProxyGroup,
} from '../api/index.ts';

/** The TailscaleGateway in namespace `ns` for Gateway `eg`, with `status` if given. */
export const tcpGateway = (status?: object): TailscaleGateway =>
  parseResource({
    apiVersion: API_VERSION,
    kind: 'TailscaleGateway',
    metadata: { name: 'tsgw', namespace: 'ns', creationTimestamp: '2026-01-01T00:00:00Z' },
    spec: {
      gatewayRef: { name: 'eg' },
      tailnets: [
        {
          name: 'corp',
          tailscaleTailnetRef: { name: 'corp' },
          ingress: {
            proxyGroup: 'ingress',
            services: [{ name: 'web', target: { name: 'envoy' }, tailscaleEndpoints: 'web' }],
          },
        },
      ],
    },
    ...(status ? { status } : {}),
  }) as TailscaleGateway;

/** A status whose one services entry (`svc:web`) is in `state`, with its two addresses and `extra`. */
export const servicesStatus = (state: string, extra: object = {}) => ({
  conditions: [],
  services: [
    {
      tailnet: 'corp',
      name: 'web',
      service: 'svc:web',
      tailscaleTailnet: 'corp',
      state,
      addresses: ['100.100.0.2', 'fd7a:115c:a1e0:ab12::1'],
      ...extra,
    },
  ],
});

/** The TailscaleEndpoints the service names: one local endpoint, ingress. */
export const webEndpoints = parseResource({
  apiVersion: API_VERSION,
  kind: 'TailscaleEndpoints',
  metadata: { name: 'web', namespace: 'ns' },
  spec: {
    tailnet: 'corp',
    endpoints: [{ name: 'local', externalTarget: 'web.app.svc.cluster.local:80', port: 80 }],
    proxy: { connectionType: 'ingress' },
  },
}) as TailscaleEndpoints;

/** The ingress proxy group that hosts the service. */
export const ingressGroup = parseResource({
  apiVersion: API_VERSION,
  kind: 'TailscaleProxyGroup',
  metadata: { name: 'ingress', namespace: 'ns' },
  spec: { type: 'ingress', tailnet: 'corp' },
}) as TailscaleProxyGroup;
