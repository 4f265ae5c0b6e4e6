import { describe, expect, test } from 'bun:test';
import { Registry } from 'prom-client';
import { kubeWriteObserver, resourceOfPath } from './write-metrics.ts';

describe('resourceOfPath', () => {
  test('core, group, cluster-scoped, namespaced, subresource and collection paths', () => {
    expect(resourceOfPath('/api/v1/namespaces/tsgw/secrets/web-0')).toEqual({
      resource: 'secrets',
      subresource: '',
    });
    expect(resourceOfPath('/api/v1/namespaces/tsgw/secrets')).toEqual({
      resource: 'secrets',
      subresource: '',
    });
    expect(resourceOfPath('/apis/apps/v1/namespaces/tsgw/statefulsets/web')).toEqual({
      resource: 'statefulsets.apps',
      subresource: '',
    });
    expect(
      resourceOfPath('/apis/gateway.tailscale.com/v1alpha1/namespaces/team/tailscaleendpoints/web/status'),
    ).toEqual({ resource: 'tailscaleendpoints.gateway.tailscale.com', subresource: 'status' });
    expect(resourceOfPath('/apis/gateway.tailscale.com/v1alpha1/tailscaletailnets/corp/status')).toEqual({
      resource: 'tailscaletailnets.gateway.tailscale.com',
      subresource: 'status',
    });
    expect(resourceOfPath('/api/v1/namespaces/team')).toEqual({ resource: 'namespaces', subresource: '' });
    expect(resourceOfPath('/api/v1/namespaces/team/finalize')).toEqual({
      resource: 'namespaces',
      subresource: 'finalize',
    });
  });
});

describe('kubeWriteObserver', () => {
  test('counts writes by method, resource, subresource and code; reads are not counted', async () => {
    const registry = new Registry();
    const observe = kubeWriteObserver(registry);
    const url = (path: string) => new URL(`https://10.0.0.1:6443${path}?fieldManager=x`);
    observe('PATCH', url('/api/v1/namespaces/tsgw/secrets/web-0'), 200);
    observe('PATCH', url('/api/v1/namespaces/tsgw/secrets/web-1'), 200);
    observe('DELETE', url('/apis/discovery.k8s.io/v1/namespaces/team/endpointslices/web'), 404);
    observe('POST', url('/api/v1/namespaces/tsgw/events'), undefined);
    observe('GET', url('/api/v1/namespaces/tsgw/secrets'), 200);
    // A second observer on the same registry shares the family (one transport per client, one registry).
    kubeWriteObserver(registry)('PUT', url('/apis/coordination.k8s.io/v1/namespaces/tsgw/leases/l'), 200);
    const text = await registry.metrics();
    expect(text).toContain(
      'tsgw_kube_api_writes_total{method="PATCH",resource="secrets",subresource="",code="200"} 2',
    );
    expect(text).toContain(
      'tsgw_kube_api_writes_total{method="DELETE",resource="endpointslices.discovery.k8s.io",subresource="",code="404"} 1',
    );
    expect(text).toContain(
      'tsgw_kube_api_writes_total{method="POST",resource="events",subresource="",code="error"} 1',
    );
    expect(text).toContain(
      'tsgw_kube_api_writes_total{method="PUT",resource="leases.coordination.k8s.io",subresource="",code="200"} 1',
    );
    expect(text).not.toContain('method="GET"');
  });
});
