/**
 * Names and labels of proxy objects. Everything a proxy needs (StatefulSet, Secrets, RBAC, its own
 * Services) lives in the operator's namespace, like the official operator's proxies, so users of an
 * app namespace never see auth keys or tailscaled state; only the per-endpoint egress Services live in
 * the TailscaleEndpoints' namespace, where `egressTarget` points.
 *
 * Names follow the ProxyGroup pattern: StatefulSet `<base>`, state Secret `<base>-<i>` (= the Pod name,
 * so `TS_KUBE_SECRET=$(POD_NAME)`), config Secret `<base>-<i>-config`. The base is at most 52
 * characters (the StatefulSet controller's `controller-revision-hash` label must fit 63).
 *
 * @module
 */
import { createHash } from 'node:crypto';

/** Labels and annotations the official operator uses, kept so its tooling and habits carry over. */
export const MANAGED_LABEL = 'tailscale.com/managed';
export const SECRET_TYPE_LABEL = 'tailscale.com/secret-type';
/** `tailscale.com/secret-type` of a Secret holding one shared TLS certificate (`tls.crt`, `tls.key`). */
export const CERT_SECRET_TYPE = 'certs';
/**
 * On cert Secrets: the StatefulSet whose proxies share them. tailscaled's kube store lists the Secrets
 * with this label, `tailscale.com/managed=true` and `tailscale.com/secret-type=certs`, taking the value
 * from its own Pod name without the ordinal (ipn/store/kubestore/store_kube.go, certSecretSelector).
 */
export const CERT_PROXY_GROUP_LABEL = 'tailscale.com/proxy-group';
const PREFIX = 'tailscale-gateway.tailscale.com';
/** The StatefulSet (and Pod selector) a child belongs to. */
export const PROXY_LABEL = `${PREFIX}/proxy`;
/** `ingress` or `egress`. */
export const PROXY_TYPE_LABEL = `${PREFIX}/proxy-type`;
/** The TailscaleTailnet whose devices a Secret holds: state never crosses tailnets. */
export const TAILNET_LABEL = `${PREFIX}/tailnet`;
/** Replica ordinal on Secrets, so scale-down knows which to remove without parsing names. */
export const REPLICA_LABEL = `${PREFIX}/replica`;
/** Hash of what the operator last applied; a mismatch (or drift) means apply again. */
export const APPLIED_ANNOTATION = `${PREFIX}/applied-hash`;
/** The id of the auth key in a config Secret, so an unused key can be deleted on teardown. */
export const AUTH_KEY_ID_ANNOTATION = `${PREFIX}/auth-key-id`;
/**
 * The device a replica's config was written for, on the config Secret: proof the device exists even if
 * the state Secret is deleted by hand, and what teardown deletes then.
 */
export const DEVICE_ID_ANNOTATION = `${PREFIX}/device-id`;
/**
 * On an ingress group's StatefulSet: per shared certificate Secret, a hash of the `tls.crt` its running
 * Pods may hold in memory (src/proxy/certificate-revision.ts). Not on the Pod template, so recording a
 * first issuance restarts nothing.
 */
export const CERTIFICATES_SEEN_ANNOTATION = 'gateway.tailscale.com/certificates-seen';
/**
 * On an ingress group's Pod template: a digest of the certificates at the last renewal, so a renewal
 * changes the template and the StatefulSet controller rolls the Pods, which then read the new one.
 */
export const CERTIFICATES_REVISION_ANNOTATION = 'gateway.tailscale.com/certificates-revision';
/** Finalizer of TailscaleEndpoints and TailscaleProxyGroup. */
export const PROXY_FINALIZER = `${PREFIX}/proxies`;
/** Field manager of status applies, distinct so other controllers' status fields are left alone. */
export const STATUS_FIELD_MANAGER = 'tailscale-gateway-proxies';

export const MAX_BASE = 52;

/** A short stable hash of a string, hex. */
export function shortHash(text: string, length = 6): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length);
}

/** Cuts `name` so `name + suffix` fits `max`, never leaving a trailing dash. */
function fit(name: string, suffix: string, max: number): string {
  return `${name.slice(0, Math.max(1, max - suffix.length)).replace(/-+$/, '')}${suffix}`;
}

/**
 * `<name>-<hash(namespace/name)>-<type>`: unique in the operator namespace across namespaces of the
 * parents, readable, at most 52 characters.
 */
export function proxyBaseName(namespace: string, name: string, type: string): string {
  return fit(name, `-${shortHash(`${namespace}/${name}`)}-${type}`, MAX_BASE);
}

export const stateSecretName = (base: string, replica: number) => `${base}-${replica}`;
export const configSecretName = (base: string, replica: number) => `${base}-${replica}-config`;
export const podName = stateSecretName;

/**
 * A device hostname prefix from `parts` joined by `-`, at most 60 characters (shortened with a hash),
 * so `<prefix>-<replica>` is always a DNS label.
 */
export function hostnamePrefixOf(...parts: string[]): string {
  const full = parts
    .join('-')
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-');
  if (full.length <= 60) return full;
  return fit(full, `-${shortHash(full)}`, 60);
}
