/**
 * Where the ingress proxies send a published service of mode HTTP: the Envoy Service of the joined
 * Gateway, on the port of its HTTP listener (pure).
 *
 * Facts of Envoy Gateway 1.9.1 this relies on:
 * - EG labels the Envoy Service of a Gateway `gateway.envoyproxy.io/owning-gateway-namespace` and
 *   `gateway.envoyproxy.io/owning-gateway-name` (`GatewayOwnerLabels`, internal/gatewayapi); the Service
 *   lives in EG's namespace, or the Gateway's in gateway-namespace mode, so it is looked up by label in
 *   every namespace, never by a computed name (EG hashes it, and an EnvoyProxy may rename it).
 * - Each Service port is the listener's own port (`ServicePort: listener.Port`; only the container port
 *   is shifted above 1024), so the listener's `port` is the port to dial.
 * - With `mergeGateways` EG labels the shared Service by GatewayClass
 *   (`gateway.envoyproxy.io/owning-gatewayclass`) instead. That is not supported: one Envoy serves
 *   several Gateways there, and the extension's virtual host is added for one Gateway only. Such a
 *   Gateway has no Service with the owning-gateway labels, so the service stays Pending and says so.
 *
 * Only an HTTP listener will do: the proxies speak plain HTTP to Envoy (they terminate the tailnet's TLS
 * themselves), and the extension adds the virtual host to that listener's routes.
 *
 * @module
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { keyOf, namespaceOf } from '../../kube/index.ts';
import { fieldsOf, listOf, specOf } from '../../kube/object-fields.ts';

export const OWNING_GATEWAY_NAME_LABEL = 'gateway.envoyproxy.io/owning-gateway-name';
export const OWNING_GATEWAY_NAMESPACE_LABEL = 'gateway.envoyproxy.io/owning-gateway-namespace';
/** Selects every Envoy Service EG made for a single Gateway (the informer's label selector). */
export const ENVOY_SERVICE_SELECTOR = OWNING_GATEWAY_NAME_LABEL;

export interface UpstreamInput {
  /** The Gateway's namespace and name (gatewayRef, defaulted) and the listener it picks, if any. */
  gateway: { namespace: string; name: string; sectionName?: string };
  /** The Gateway object; undefined when it does not exist. */
  object: KubernetesObject | undefined;
  /** Services carrying the owning-gateway labels of this Gateway (a superset is fine). */
  envoyServices: readonly KubernetesObject[];
  clusterDomain: string;
}

export type UpstreamResolution =
  | {
      ok: true;
      /** `http://<service>.<namespace>.svc.<cluster domain>:<port>`. */
      upstream: string;
      listener: string;
      port: number;
      service: { namespace: string; name: string };
    }
  | { ok: false; reason: 'GatewayNotFound' | 'NoHTTPListener' | 'EnvoyServiceNotFound'; message: string };

interface Listener {
  name?: unknown;
  protocol?: unknown;
  port?: unknown;
}

/** The listener a mode-HTTP service goes through, or why there is none. */
export function httpListenerOf(
  gateway: KubernetesObject,
  sectionName: string | undefined,
): { name: string; port: number } | { problem: string } {
  const listeners = specOf(gateway).listeners;
  const list: Listener[] = Array.isArray(listeners) ? (listeners as Listener[]) : [];
  const id = `Gateway ${namespaceOf(gateway)}/${gateway.metadata?.name}`;
  const usable = (l: Listener): l is { name: string; protocol: 'HTTP'; port: number } =>
    typeof l.name === 'string' && l.protocol === 'HTTP' && typeof l.port === 'number';
  if (sectionName !== undefined) {
    const named = list.find((l) => l.name === sectionName);
    if (!named) return { problem: `${id} has no listener ${sectionName} (gatewayRef.sectionName)` };
    if (!usable(named))
      return {
        problem: `listener ${sectionName} of ${id} has protocol ${String(named.protocol)}; mode HTTP needs an HTTP listener (the proxies terminate TLS and speak plain HTTP to Envoy)`,
      };
    return { name: named.name, port: named.port };
  }
  const first = list.find(usable);
  if (!first)
    return {
      problem: `${id} has no listener of protocol HTTP; mode HTTP needs one (or name one with gatewayRef.sectionName)`,
    };
  return { name: first.name, port: first.port };
}

const labelsOf = (obj: KubernetesObject) => obj.metadata?.labels ?? {};

/** True when `service` is the Envoy Service EG made for the Gateway `namespace/name`. */
export function isEnvoyServiceOf(service: KubernetesObject, namespace: string, name: string): boolean {
  const labels = labelsOf(service);
  return labels[OWNING_GATEWAY_NAME_LABEL] === name && labels[OWNING_GATEWAY_NAMESPACE_LABEL] === namespace;
}

/** The Gateway (`namespace/name`) an Envoy Service belongs to, from its labels. */
export function gatewayOfEnvoyService(service: KubernetesObject): string | undefined {
  const labels = labelsOf(service);
  const name = labels[OWNING_GATEWAY_NAME_LABEL];
  const namespace = labels[OWNING_GATEWAY_NAMESPACE_LABEL];
  return name && namespace ? keyOf(namespace, name) : undefined;
}

const servesPort = (service: KubernetesObject, port: number) => {
  return listOf(specOf(service).ports)
    .map(fieldsOf)
    .some((p) => p.port === port && (p.protocol ?? 'TCP') === 'TCP');
};

/**
 * The upstream of a mode-HTTP service. Several matching Services (a leftover of a renamed EnvoyProxy
 * Service, say) are taken in namespace and name order, preferring one that serves the listener's port,
 * so the answer does not depend on the informer's order.
 */
export function resolveUpstream(input: UpstreamInput): UpstreamResolution {
  const { namespace, name, sectionName } = input.gateway;
  if (!input.object)
    return {
      ok: false,
      reason: 'GatewayNotFound',
      message: `Gateway ${namespace}/${name} (gatewayRef) not found; mode HTTP sends requests to its Envoy`,
    };
  const listener = httpListenerOf(input.object, sectionName);
  if ('problem' in listener) return { ok: false, reason: 'NoHTTPListener', message: listener.problem };
  const candidates = input.envoyServices
    .filter((s) => isEnvoyServiceOf(s, namespace, name) && !s.metadata?.deletionTimestamp)
    .sort(
      (a, b) =>
        (a.metadata?.namespace ?? '').localeCompare(b.metadata?.namespace ?? '') ||
        (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''),
    );
  const selector = `${OWNING_GATEWAY_NAMESPACE_LABEL}=${namespace},${OWNING_GATEWAY_NAME_LABEL}=${name}`;
  if (candidates.length === 0)
    return {
      ok: false,
      reason: 'EnvoyServiceNotFound',
      message:
        `no Service labelled ${selector}: Envoy Gateway has not created the Envoy Service of Gateway ` +
        `${namespace}/${name} yet (with mergeGateways it labels the shared Service by GatewayClass, which mode HTTP does not support)`,
    };
  const service = candidates.find((s) => servesPort(s, listener.port));
  if (!service) {
    const found = candidates[0]!;
    return {
      ok: false,
      reason: 'EnvoyServiceNotFound',
      message: `the Envoy Service ${found.metadata?.namespace}/${found.metadata?.name} of Gateway ${namespace}/${name} has no TCP port ${listener.port} (listener ${listener.name}) yet`,
    };
  }
  const svc = { namespace: namespaceOf(service), name: service.metadata?.name ?? '' };
  return {
    ok: true,
    upstream: `http://${svc.name}.${svc.namespace}.svc.${input.clusterDomain}:${listener.port}`,
    listener: listener.name,
    port: listener.port,
    service: svc,
  };
}
