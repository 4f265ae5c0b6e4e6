/**
 * The proxy's Kubernetes objects, built from scratch for server-side apply: each builder returns the
 * whole set of fields the operator owns and nothing else, never a modified copy of a live object, so a
 * field the operator stops sending is removed and fields others own are left alone.
 *
 * Modes (reference tailscale.md §5.2): userspace (default) runs non-root with a read-only root
 * filesystem and no capabilities; kernel mode (needed by egress, whose forwarding is DNAT in netfilter)
 * gets the official operator's privileges: a privileged `sysctler` init container enabling IP
 * forwarding and a privileged `tailscale` container.
 *
 * Certificate sharing (ingress ProxyGroups, as the official operator's HA ingress does): every replica
 * serves the same Tailscale Service names, so instead of each obtaining its own Let's Encrypt
 * certificate for a name (5 duplicates a week are allowed), replica 0 obtains it and all replicas read
 * it from one Secret per name. containerboot turns `TS_EXPERIMENTAL_CERT_SHARE=true` into
 * `TS_CERT_SHARE_MODE=rw` for the Pod whose name ends in `-0` and `ro` for the others
 * (cmd/containerboot/settings.go, tailscaled.go); only `rw` issues and renews (cmd/containerboot/certs.go
 * runs a loop per HTTPS name of the serve config). tailscaled's kube store reads and writes `tls.crt` and
 * `tls.key` of the Secret named after the DNS name, in its own namespace; it never creates that Secret
 * (only its state Secret), and a missing or empty one reads as "no certificate"
 * (ipn/store/kubestore/store_kube.go). So the operator pre-creates each one, and the group's Role lets the
 * proxies get and patch exactly those names. The other replicas keep a certificate in memory once read
 * and cannot reload it under that Role, so a renewal rolls the Pods through an annotation of the Pod
 * template (src/proxy/certificate-revision.ts).
 *
 * @module
 */
import type {
  KubernetesObject,
  V1EnvVar,
  V1PodDisruptionBudget,
  V1Role,
  V1RoleBinding,
  V1Secret,
  V1Service,
  V1ServiceAccount,
  V1StatefulSet,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import type { CertificateRecord } from './certificate-revision.ts';
import { EGRESS_CONFIG_KEY, type EgressRoute, SERVE_CONFIG_KEY, tailscaledConfigFiles } from './config.ts';
import {
  AUTH_KEY_ID_ANNOTATION,
  CERT_PROXY_GROUP_LABEL,
  CERT_SECRET_TYPE,
  CERTIFICATES_REVISION_ANNOTATION,
  CERTIFICATES_SEEN_ANNOTATION,
  configSecretName,
  DEVICE_ID_ANNOTATION,
  MANAGED_LABEL,
  PROXY_LABEL,
  PROXY_TYPE_LABEL,
  REPLICA_LABEL,
  SECRET_TYPE_LABEL,
  stateSecretName,
  TAILNET_LABEL,
} from './names.ts';

/** `tailscale/tailscale` tag used unless the operator is configured otherwise (a stable release). */
export const DEFAULT_PROXY_TAG = 'v1.102.2';
export const DEFAULT_PROXY_IMAGE_REPOSITORY = 'tailscale/tailscale';
export const defaultProxyImage = (tag = DEFAULT_PROXY_TAG) => `${DEFAULT_PROXY_IMAGE_REPOSITORY}:${tag}`;
/** Container name: the official operator and its overlays key on it. */
export const CONTAINER_NAME = 'tailscale';
/** containerboot's `/healthz` and `/metrics`. */
export const METRICS_PORT = 9002;
/**
 * Ready means on the tailnet: containerboot's `/healthz` (`TS_ENABLE_HEALTH_CHECK`, served on
 * `TS_LOCAL_ADDR_PORT` = the Pod IP) answers 200 once the node has a tailnet address and 503 before,
 * so a proxy that cannot log in stays unready, its StatefulSet does not count it and the egress
 * EndpointSlices (ready = Pod Ready) send no traffic to it. No liveness probe: a proxy waiting for
 * its control server is not stuck, and restarting it would only lose the wait.
 */
export const READINESS_PROBE = {
  httpGet: { path: '/healthz', port: METRICS_PORT, scheme: 'HTTP' },
  periodSeconds: 5,
  timeoutSeconds: 2,
  failureThreshold: 2,
};
/** Requests when the user sets no resources: what an idle proxy needs to be scheduled sensibly. */
export const DEFAULT_RESOURCES = { requests: { cpu: '10m', memory: '64Mi' } };
/** Non-root uid/gid in userspace mode (the image has no USER). */
export const NON_ROOT_ID = 65532;

export type ProxyType = 'ingress' | 'egress';
export type ProxyMode = 'userspace' | 'kernel';

export interface ProxySet {
  /** StatefulSet, headless Service and RBAC name; prefix of Secret and Pod names. */
  base: string;
  /** The operator's namespace. */
  namespace: string;
  type: ProxyType;
  mode: ProxyMode;
  replicas: number;
  /** Device hostname per replica. */
  hostnames: string[];
  /** TailscaleTailnet object name. */
  tailnet: string;
  image: string;
  /** `Hostinfo.App`, `TS_INTERNAL_APP`. */
  app: string;
  serverUrl: string;
  /** Parent labels (and anything else every child should carry). */
  labels: Record<string, string>;
  resources?: { limits?: Record<string, string | number>; requests?: Record<string, string | number> };
  /** Pod scheduling, as the user wrote it (validated by the CRD schemas). */
  nodeSelector?: Record<string, string>;
  tolerations?: object[];
  affinity?: Record<string, unknown>;
  priorityClassName?: string;
  topologySpreadConstraints?: ({ labelSelector?: Record<string, unknown> } & Record<string, unknown>)[];
  /** Ingress: the serve config (same for every replica). */
  serveConfig?: Record<string, unknown>;
  /** Egress: the egress config and the container ports it listens on. */
  egressConfig?: Record<string, unknown>;
  egressRoutes?: EgressRoute[];
  /** Advertised Tailscale Services, written into every replica's config. */
  advertiseServices?: string[];
  /** Advertised Tailscale Services per replica; wins over `advertiseServices` where given. */
  advertiseServicesByReplica?: string[][];
  /**
   * Ingress ProxyGroup: run the proxies in certificate-share mode. Set whether or not an HTTPS service is
   * hosted yet, so the first one does not restart the Pods.
   */
  certShare?: boolean;
  /** The shared certificates' Secret names (DNS names), sorted; each one also in the Role. */
  certDomains?: string[];
  /**
   * The shared certificates the Pods may hold and the revision of the last renewal
   * (src/proxy/certificate-revision.ts): on the StatefulSet, and the revision on its Pod template.
   */
  certificates?: CertificateRecord;
  /** ProxyGroup: spread replicas over nodes and keep a PodDisruptionBudget. */
  highAvailability?: boolean;
}

/** Labels of every object of a proxy set (and the Pod template). */
export function proxyLabels(set: ProxySet): Record<string, string> {
  return {
    ...set.labels,
    [MANAGED_LABEL]: 'true',
    [PROXY_LABEL]: set.base,
    [PROXY_TYPE_LABEL]: set.type,
    [TAILNET_LABEL]: set.tailnet,
  };
}

const selectorOf = (set: ProxySet) => ({ [PROXY_LABEL]: set.base });
const meta = (set: ProxySet, name: string, extra: Record<string, string> = {}) => ({
  name,
  namespace: set.namespace,
  labels: { ...proxyLabels(set), ...extra },
});
const configMountPath = (set: ProxySet, replica: number) =>
  `/etc/tsconfig/${stateSecretName(set.base, replica)}`;

export function buildServiceAccount(set: ProxySet): V1ServiceAccount {
  return { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(set, set.base) };
}

/**
 * Get/patch/update of exactly this set's Secrets (by resourceNames), and Events. The shared certificates'
 * Secrets get the verbs the official operator grants for them (get, list, patch, update), also by name:
 * the kube store reads one with a GET and writes it with a JSON patch. Its label-selected list of them
 * (a reload of renewed certificates) is not authorized by a name-restricted `list`; allowing it would
 * mean listing every Secret of the namespace, other proxies' keys included, so it is not granted: the
 * operator rolls the Pods after a renewal instead.
 */
export function buildRole(set: ProxySet): V1Role {
  const names: string[] = [];
  for (let i = 0; i < set.replicas; i++)
    names.push(stateSecretName(set.base, i), configSecretName(set.base, i));
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: meta(set, set.base),
    rules: [
      { apiGroups: [''], resources: ['secrets'], resourceNames: names, verbs: ['get', 'patch', 'update'] },
      ...(set.certDomains?.length
        ? [
            {
              apiGroups: [''],
              resources: ['secrets'],
              resourceNames: [...set.certDomains],
              verbs: ['get', 'list', 'patch', 'update'],
            },
          ]
        : []),
      { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch', 'get'] },
    ],
  };
}

export function buildRoleBinding(set: ProxySet): V1RoleBinding {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: meta(set, set.base),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: set.base },
    subjects: [{ kind: 'ServiceAccount', name: set.base, namespace: set.namespace }],
  };
}

/** The StatefulSet's governing Service; also publishes the metrics port of every Pod. */
export function buildHeadlessService(set: ProxySet): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(set, set.base),
    spec: {
      clusterIP: 'None',
      selector: selectorOf(set),
      publishNotReadyAddresses: true,
      ports: [{ name: 'metrics', port: METRICS_PORT, targetPort: METRICS_PORT, protocol: 'TCP' }],
    },
  };
}

/**
 * Egress: the ClusterIP Service in the operator namespace in front of the egress proxies, one port per
 * endpoint (`matchPort`); the per-endpoint Services in the app namespace are mirrors of one port each.
 */
export function buildClusterIPService(set: ProxySet): V1Service | undefined {
  const routes = set.egressRoutes ?? [];
  if (set.type !== 'egress' || routes.length === 0) return undefined;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(set, `${set.base}-svc`),
    spec: {
      type: 'ClusterIP',
      selector: selectorOf(set),
      ports: routes.map((route) => ({
        name: `${route.protocol.toLowerCase()}-${route.matchPort}`,
        port: route.matchPort,
        targetPort: route.matchPort,
        protocol: route.protocol,
      })),
    },
  };
}

export interface ReplicaAuth {
  /** The auth key to put in the config; absent once the device exists. */
  key?: string;
  /** Its id, recorded so an unused key can be deleted. */
  id?: string;
  /** The replica's device, once it exists. */
  deviceId?: string;
}

/** Per-replica config Secret: the `cap-N.hujson` files, plus the serve or egress config. */
export function buildConfigSecret(set: ProxySet, replica: number, auth: ReplicaAuth = {}): V1Secret {
  const files = tailscaledConfigFiles({
    hostname: set.hostnames[replica]!,
    serverUrl: set.serverUrl,
    ...(auth.key ? { authKey: auth.key } : {}),
    ...((set.advertiseServicesByReplica?.[replica] ?? set.advertiseServices)
      ? { advertiseServices: set.advertiseServicesByReplica?.[replica] ?? set.advertiseServices }
      : {}),
  });
  if (set.serveConfig) files[SERVE_CONFIG_KEY] = JSON.stringify(set.serveConfig);
  if (set.egressConfig) files[EGRESS_CONFIG_KEY] = JSON.stringify(set.egressConfig);
  const metadata = meta(set, configSecretName(set.base, replica), {
    [SECRET_TYPE_LABEL]: 'config',
    [REPLICA_LABEL]: String(replica),
  });
  const annotations: Record<string, string> = {};
  if (auth.key && auth.id) annotations[AUTH_KEY_ID_ANNOTATION] = auth.id;
  if (auth.deviceId) annotations[DEVICE_ID_ANNOTATION] = auth.deviceId;
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: Object.keys(annotations).length > 0 ? { ...metadata, annotations } : metadata,
    type: 'Opaque',
    data: Object.fromEntries(
      Object.entries(files).map(([key, value]) => [key, Buffer.from(value).toString('base64')]),
    ),
  };
}

/**
 * A shared certificate's Secret, named after the DNS name as tailscaled's kube store expects, with the
 * label its cert selector uses. Built without `data`: the operator creates it once with empty `tls.crt`
 * and `tls.key` (a `kubernetes.io/tls` Secret must have both keys) and never applies them, so no later
 * apply can take a certificate replica 0 wrote away.
 */
export function buildCertSecret(set: ProxySet, domain: string): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: meta(set, domain, {
      [SECRET_TYPE_LABEL]: CERT_SECRET_TYPE,
      [CERT_PROXY_GROUP_LABEL]: set.base,
    }),
    type: 'kubernetes.io/tls',
  };
}

/** The fields a cert Secret is created with (and only then). */
export const EMPTY_CERT_DATA: Readonly<Record<string, string>> = { 'tls.crt': '', 'tls.key': '' };

/**
 * Per-replica state Secret, pre-created so the proxy's Role can be scoped by name. The operator owns
 * only its labels; tailscaled and containerboot own the data.
 */
export function buildStateSecret(set: ProxySet, replica: number): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: meta(set, stateSecretName(set.base, replica), {
      [SECRET_TYPE_LABEL]: 'state',
      [REPLICA_LABEL]: String(replica),
    }),
    type: 'Opaque',
  };
}

const fieldEnv = (name: string, fieldPath: string): V1EnvVar => ({
  name,
  valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath } },
});

/** containerboot's environment; the downward-API variables come first so `$(POD_NAME)` expands. */
export function proxyEnv(set: ProxySet): V1EnvVar[] {
  const env: V1EnvVar[] = [
    fieldEnv('POD_NAME', 'metadata.name'),
    fieldEnv('POD_UID', 'metadata.uid'),
    fieldEnv('POD_IP', 'status.podIP'),
    fieldEnv('POD_IPS', 'status.podIPs'),
    { name: 'TS_USERSPACE', value: set.mode === 'userspace' ? 'true' : 'false' },
    { name: 'TS_KUBE_SECRET', value: '$(POD_NAME)' },
    { name: 'TS_EXPERIMENTAL_VERSIONED_CONFIG_DIR', value: '/etc/tsconfig/$(POD_NAME)' },
    { name: 'TS_EXPERIMENTAL_SERVICE_AUTO_ADVERTISEMENT', value: 'false' },
    { name: 'TS_LOCAL_ADDR_PORT', value: `$(POD_IP):${METRICS_PORT}` },
    { name: 'TS_ENABLE_HEALTH_CHECK', value: 'true' },
    { name: 'TS_ENABLE_METRICS', value: 'true' },
    { name: 'TS_INTERNAL_APP', value: set.app },
  ];
  // Kernel mode (egress) forwards by DNAT in netfilter. In iptables mode, v1.102.2 writes an IPv6 DNAT
  // target as `addr:port` without brackets (util/linuxfw/iptables_for_svcs.go), which iptables
  // rejects: any target with an IPv6 address, so every FQDN target, leaves the egress rules half
  // installed and containerboot stuck (reference tailnet-lab.md, M2). nftables mode has no such bug
  // and needs no userland (netlink); tailscaled and containerboot both read this variable.
  if (set.mode === 'kernel') env.push({ name: 'TS_DEBUG_FIREWALL_MODE', value: 'nftables' });
  if (set.serveConfig)
    env.push({ name: 'TS_SERVE_CONFIG', value: `/etc/tsconfig/$(POD_NAME)/${SERVE_CONFIG_KEY}` });
  if (set.egressConfig)
    env.push({ name: 'TS_EGRESS_PROXIES_CONFIG_PATH', value: '/etc/tsconfig/$(POD_NAME)' });
  // Replica 0 (POD_NAME `<base>-0`) issues and renews, the others only read: see the module comment.
  if (set.certShare) env.push({ name: 'TS_EXPERIMENTAL_CERT_SHARE', value: 'true' });
  return env;
}

const SYSCTL =
  'sysctl -w net.ipv4.ip_forward=1 && if sysctl net.ipv6.conf.all.forwarding; then sysctl -w net.ipv6.conf.all.forwarding=1; fi';

/** Soft anti-affinity: replicas on different nodes when the cluster has them. */
function antiAffinity(set: ProxySet): Record<string, unknown> {
  return {
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [
        {
          weight: 100,
          podAffinityTerm: {
            labelSelector: { matchLabels: selectorOf(set) },
            topologyKey: 'kubernetes.io/hostname',
          },
        },
      ],
    },
  };
}

export function buildStatefulSet(set: ProxySet): V1StatefulSet {
  const labels = proxyLabels(set);
  const volumes: V1Volume[] = [];
  const mounts: V1VolumeMount[] = [];
  // Every replica's config is mounted in every Pod; each picks its own by $(POD_NAME).
  for (let i = 0; i < set.replicas; i++) {
    volumes.push({ name: `tailscaledconfig-${i}`, secret: { secretName: configSecretName(set.base, i) } });
    mounts.push({ name: `tailscaledconfig-${i}`, mountPath: configMountPath(set, i), readOnly: true });
  }
  volumes.push({ name: 'tmp', emptyDir: {} });
  mounts.push({ name: 'tmp', mountPath: '/tmp' });
  const userspace = set.mode === 'userspace';
  // A ProxyGroup's egress routes change whenever a TailscaleEndpoints joins or leaves it; declaring
  // them as container ports would roll every shared proxy each time. Traffic does not need them (the
  // Services target port numbers), so only single-owner proxies list them.
  const ports = [
    { name: 'metrics', containerPort: METRICS_PORT, protocol: 'TCP' },
    ...(set.highAvailability ? [] : (set.egressRoutes ?? [])).map((route) => ({
      name: `${route.protocol.toLowerCase()}-${route.matchPort}`.slice(0, 15),
      containerPort: route.matchPort,
      protocol: route.protocol,
    })),
  ];
  // A group keeps its spread over nodes unless the user's affinity says how pods repel each other.
  const affinity =
    set.highAvailability && !set.affinity?.['podAntiAffinity']
      ? { ...set.affinity, ...antiAffinity(set) }
      : set.affinity;
  // A spread constraint without a selector counts no pods at all; the user means this proxy's.
  const spread = set.topologySpreadConstraints?.map((constraint) =>
    constraint.labelSelector
      ? constraint
      : { ...constraint, labelSelector: { matchLabels: selectorOf(set) } },
  );
  const seen = set.certificates?.seen ?? {};
  const revision = set.certificates?.revision;
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: {
      ...meta(set, set.base),
      ...(Object.keys(seen).length > 0
        ? { annotations: { [CERTIFICATES_SEEN_ANNOTATION]: JSON.stringify(seen) } }
        : {}),
    },
    spec: {
      replicas: set.replicas,
      serviceName: set.base,
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: selectorOf(set) },
      template: {
        metadata: {
          labels,
          ...(revision ? { annotations: { [CERTIFICATES_REVISION_ANNOTATION]: revision } } : {}),
        },
        spec: {
          serviceAccountName: set.base,
          ...(userspace
            ? {
                securityContext: {
                  runAsNonRoot: true,
                  runAsUser: NON_ROOT_ID,
                  runAsGroup: NON_ROOT_ID,
                  fsGroup: NON_ROOT_ID,
                  seccompProfile: { type: 'RuntimeDefault' },
                },
              }
            : {
                initContainers: [
                  {
                    name: 'sysctler',
                    image: set.image,
                    command: ['/bin/sh', '-c'],
                    args: [SYSCTL],
                    securityContext: { privileged: true },
                    resources: DEFAULT_RESOURCES,
                  },
                ],
              }),
          containers: [
            {
              name: CONTAINER_NAME,
              image: set.image,
              env: proxyEnv(set),
              ports,
              readinessProbe: READINESS_PROBE,
              volumeMounts: mounts,
              resources: set.resources ?? DEFAULT_RESOURCES,
              securityContext: userspace
                ? {
                    allowPrivilegeEscalation: false,
                    readOnlyRootFilesystem: true,
                    capabilities: { drop: ['ALL'] },
                  }
                : { privileged: true },
            },
          ],
          volumes,
          ...(set.nodeSelector ? { nodeSelector: set.nodeSelector } : {}),
          ...(set.tolerations ? { tolerations: set.tolerations } : {}),
          ...(affinity ? { affinity } : {}),
          ...(set.priorityClassName ? { priorityClassName: set.priorityClassName } : {}),
          ...(spread ? { topologySpreadConstraints: spread } : {}),
        },
      },
    },
  } as V1StatefulSet;
}

/** ProxyGroup: voluntary disruptions (drains) take at most one replica at a time. */
export function buildPodDisruptionBudget(set: ProxySet): V1PodDisruptionBudget | undefined {
  if (!set.highAvailability) return undefined;
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: meta(set, set.base),
    spec: { maxUnavailable: 1, selector: { matchLabels: selectorOf(set) } },
  };
}

/**
 * Everything in the operator namespace for one proxy set, in apply order: RBAC before Pods, and the
 * certificates' Secrets (and the Role naming them) before the config Secrets whose serve config makes
 * replica 0 write to them.
 */
export function buildProxySetObjects(set: ProxySet, auth: readonly ReplicaAuth[]): KubernetesObject[] {
  const objects: (KubernetesObject | undefined)[] = [
    buildServiceAccount(set),
    buildRole(set),
    buildRoleBinding(set),
    ...(set.certDomains ?? []).map((domain) => buildCertSecret(set, domain)),
  ];
  for (let i = 0; i < set.replicas; i++)
    objects.push(buildStateSecret(set, i), buildConfigSecret(set, i, auth[i] ?? {}));
  objects.push(
    buildHeadlessService(set),
    buildClusterIPService(set),
    buildPodDisruptionBudget(set),
    buildStatefulSet(set),
  );
  return objects.filter((o): o is KubernetesObject => o !== undefined);
}
