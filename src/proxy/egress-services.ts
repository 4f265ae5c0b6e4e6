/**
 * The per-endpoint egress Services, in the TailscaleEndpoints' namespace under the name
 * `egressServiceName` gives (the extension hooks point Envoy clusters at exactly that name and port).
 *
 * A Service selects Pods only in its own namespace, and the proxies live in the operator namespace, so
 * each Service has no selector and the operator writes its EndpointSlice: the egress proxy Pods' IPs on
 * the endpoint's `matchPort`, ready when the Pod is Ready. kube-proxy then maps
 * `<service>:<endpoint port>` to `<pod>:<matchPort>`, where the proxy DNATs to the tailnet target.
 *
 * @module
 */
import type { V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';
import type { EgressRoute } from './config.ts';
import { MANAGED_LABEL } from './names.ts';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
export const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
export const MANAGED_BY = 'tailscale-gateway.tailscale.com';

const portName = (route: EgressRoute) => route.endpoint.slice(0, 63);

export function buildEgressService(
  route: EgressRoute,
  namespace: string,
  labels: Record<string, string>,
): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: route.serviceName, namespace, labels: { ...labels, [MANAGED_LABEL]: 'true' } },
    spec: {
      type: 'ClusterIP',
      ports: [
        { name: portName(route), port: route.port, targetPort: route.matchPort, protocol: route.protocol },
      ],
    },
  };
}

export interface ProxyPodAddress {
  name: string;
  ip: string;
  ready: boolean;
  nodeName?: string;
}

/** The addresses of running proxy Pods, ordered by name so the slice is stable. */
export function podAddresses(pods: readonly V1Pod[]): ProxyPodAddress[] {
  return pods
    .filter((pod) => pod.status?.podIP && !pod.metadata?.deletionTimestamp)
    .map((pod) => ({
      name: pod.metadata!.name!,
      ip: pod.status!.podIP!,
      ready: pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
      ...(pod.spec?.nodeName ? { nodeName: pod.spec.nodeName } : {}),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

export function buildEgressEndpointSlice(
  route: EgressRoute,
  namespace: string,
  labels: Record<string, string>,
  pods: readonly ProxyPodAddress[],
  proxyNamespace: string,
): V1EndpointSlice {
  const v4 = pods.filter((pod) => !pod.ip.includes(':'));
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: route.serviceName,
      namespace,
      labels: {
        ...labels,
        [MANAGED_LABEL]: 'true',
        [SERVICE_NAME_LABEL]: route.serviceName,
        [MANAGED_BY_LABEL]: MANAGED_BY,
      },
    },
    addressType: 'IPv4',
    ports: [{ name: portName(route), port: route.matchPort, protocol: route.protocol }],
    endpoints: v4.map((pod) => ({
      addresses: [pod.ip],
      conditions: { ready: pod.ready, serving: pod.ready, terminating: false },
      targetRef: { kind: 'Pod', namespace: proxyNamespace, name: pod.name },
      ...(pod.nodeName ? { nodeName: pod.nodeName } : {}),
    })),
  } as V1EndpointSlice;
}
