import { describe, expect, test } from 'bun:test';
import { readEnvironment } from './environment.ts';

describe('readEnvironment', () => {
  test('takes the Pod variables and the kube client variables, nothing else', () => {
    expect(
      readEnvironment({
        POD_NAME: 'operator-0',
        POD_NAMESPACE: 'gateway',
        KUBECONFIG: '/a:/b',
        KUBERNETES_SERVICE_HOST: '10.96.0.1',
        KUBERNETES_SERVICE_PORT: '443',
        HOME: '/root',
        TSGW_LOG_LEVEL: 'debug',
      }),
    ).toEqual({
      podName: 'operator-0',
      podNamespace: 'gateway',
      kube: { KUBECONFIG: '/a:/b', KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' },
    });
  });

  test('an empty variable counts as unset, as for the TSGW_ settings', () => {
    expect(readEnvironment({ POD_NAME: '', POD_NAMESPACE: '', KUBECONFIG: '' })).toEqual({ kube: {} });
    expect(readEnvironment({})).toEqual({ kube: {} });
  });
});
