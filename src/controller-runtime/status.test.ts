/** The status apply body and options, as the three writers (controllers, proxy engine, route policy) send them. */
import { describe, expect, test } from 'bun:test';
import type { KubernetesObject } from '@kubernetes/client-node';
import { applyStatus, statusApplyBody } from './status.ts';

const recording = () => {
  const calls: { body: KubernetesObject; options: unknown }[] = [];
  return {
    calls,
    applyObject: async <T extends KubernetesObject>(body: T, options?: unknown): Promise<T> => {
      calls.push({ body, options });
      return body;
    },
  };
};

describe('statusApplyBody', () => {
  const live = {
    apiVersion: 'v1',
    kind: 'Thing',
    metadata: { name: 'a', namespace: 'ns', resourceVersion: '9', labels: { x: 'y' } },
    spec: { big: true },
  };

  test('carries the identity and the status only, never the live object', () => {
    expect(statusApplyBody(live, { phase: 'Up' })).toEqual({
      apiVersion: 'v1',
      kind: 'Thing',
      metadata: { name: 'a', namespace: 'ns' },
      status: { phase: 'Up' },
    });
  });

  test('omits the namespace of a cluster-scoped object', () => {
    expect(statusApplyBody({ ...live, metadata: { name: 'a' } }, {}).metadata).toEqual({ name: 'a' });
  });

  test('sends the resourceVersion only when asked', () => {
    expect(statusApplyBody(live, {}, { resourceVersion: '9' }).metadata).toEqual({
      name: 'a',
      namespace: 'ns',
      resourceVersion: '9',
    });
  });

  test('refuses an object without apiVersion, kind or name', () => {
    expect(() => statusApplyBody({ kind: 'Thing', metadata: { name: 'a' } }, {})).toThrow(
      'applyStatus needs apiVersion, kind and metadata.name',
    );
    expect(() => statusApplyBody({ apiVersion: 'v1', kind: 'Thing', metadata: {} }, {})).toThrow();
  });
});

describe('applyStatus', () => {
  test('applies on /status under the default field manager, not forced', async () => {
    const kube = recording();
    await applyStatus(kube, { apiVersion: 'v1', kind: 'Thing', metadata: { name: 'a' } }, { ok: 1 });
    expect(kube.calls[0]!.options).toEqual({ subresource: 'status', fieldManager: 'tailscale-gateway' });
  });

  test('passes field manager, force and signal through', async () => {
    const kube = recording();
    const signal = new AbortController().signal;
    await applyStatus(
      kube,
      { apiVersion: 'v1', kind: 'Thing', metadata: { name: 'a' } },
      {},
      { fieldManager: 'mine', force: true, resourceVersion: '3', signal },
    );
    expect(kube.calls[0]!.options).toEqual({
      subresource: 'status',
      fieldManager: 'mine',
      force: true,
      signal,
    });
    expect(kube.calls[0]!.body.metadata).toEqual({ name: 'a', resourceVersion: '3' });
  });
});
