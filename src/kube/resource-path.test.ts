import { describe, expect, test } from 'bun:test';
import { OperatorError } from '../errors.ts';
import { findResource, groupVersionPath, parseApiVersion, resourcePath } from './resource-path.ts';

describe('parseApiVersion', () => {
  test('core and named groups', () => {
    expect(parseApiVersion('v1')).toEqual({ group: '', version: 'v1' });
    expect(parseApiVersion('apps/v1')).toEqual({ group: 'apps', version: 'v1' });
    expect(parseApiVersion('gateway.networking.k8s.io/v1beta1')).toEqual({
      group: 'gateway.networking.k8s.io',
      version: 'v1beta1',
    });
  });

  test('malformed values are Invalid', () => {
    for (const bad of ['', 'a/b/c', '/v1', 'apps/']) {
      expect(() => parseApiVersion(bad)).toThrow(OperatorError);
    }
  });
});

describe('resourcePath', () => {
  test('core group lives under /api', () => {
    expect(groupVersionPath({ group: '', version: 'v1' })).toBe('/api/v1');
    expect(
      resourcePath({
        group: '',
        version: 'v1',
        plural: 'configmaps',
        namespaced: true,
        namespace: 'ns',
        name: 'x',
      }),
    ).toBe('/api/v1/namespaces/ns/configmaps/x');
  });

  test('named group, cluster-scoped, collection and subresource', () => {
    expect(
      resourcePath({
        group: 'apiextensions.k8s.io',
        version: 'v1',
        plural: 'customresourcedefinitions',
        namespaced: false,
      }),
    ).toBe('/apis/apiextensions.k8s.io/v1/customresourcedefinitions');
    expect(
      resourcePath({
        group: 'apps',
        version: 'v1',
        plural: 'deployments',
        namespaced: true,
        namespace: 'default',
        name: 'web',
        subresource: 'status',
      }),
    ).toBe('/apis/apps/v1/namespaces/default/deployments/web/status');
  });

  test('names are escaped', () => {
    expect(
      resourcePath({ group: '', version: 'v1', plural: 'namespaces', namespaced: false, name: 'a/b' }),
    ).toBe('/api/v1/namespaces/a%2Fb');
  });

  test('scope mismatches are Invalid and name the field', () => {
    const missing = () =>
      resourcePath({ group: '', version: 'v1', plural: 'configmaps', namespaced: true, name: 'x' });
    expect(missing).toThrow(/namespaced/);
    try {
      missing();
    } catch (error) {
      expect((error as OperatorError).code).toBe('Invalid');
      expect((error as OperatorError).field).toBe('metadata.namespace');
    }
    expect(() =>
      resourcePath({
        group: '',
        version: 'v1',
        plural: 'namespaces',
        namespaced: false,
        namespace: 'x',
        name: 'y',
      }),
    ).toThrow(/cluster-scoped/);
    expect(() =>
      resourcePath({
        group: '',
        version: 'v1',
        plural: 'pods',
        namespaced: true,
        namespace: 'x',
        subresource: 'status',
      }),
    ).toThrow(/needs an object name/);
  });
});

describe('findResource', () => {
  test('skips subresources that share the kind', () => {
    const resources = [
      { name: 'pods/status', kind: 'Pod', namespaced: true },
      { name: 'pods', kind: 'Pod', namespaced: true },
    ];
    expect(findResource(resources, 'Pod')?.name).toBe('pods');
    expect(findResource(resources, 'Service')).toBeUndefined();
  });
});
