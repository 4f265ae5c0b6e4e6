/**
 * `run`: the operator in a cluster. Wiring only, in the order things depend on each other:
 * config → Kubernetes client → runtime (HTTP surface, extension server) → informers (every replica,
 * feeding the hooks' store) → leader election → controllers (the leader only).
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { renderCrds } from '../api/index.ts';
import { startRuntime } from '../app/runtime.ts';
import type { ProcessEnvironment } from '../config/environment.ts';
import type { Config } from '../config/schema.ts';
import {
  createEventRecorder,
  createLeaderElector,
  createTerms,
  kubeEventSink,
  sleep,
  systemClock,
} from '../controller-runtime/index.ts';
import { OperatorError } from '../errors.ts';
import { createExtensionHooks } from '../extension/hooks/index.ts';
import { createKubeClient, type KubeClient } from '../kube/index.ts';
import { SERVICE_ACCOUNT_DIR } from '../kube/kube-config.ts';
import { createMemoryResourceStore } from '../model/resource-store.ts';
import type { Logger } from '../observability/logger.ts';
import type { ComponentHandle } from '../observability/readiness.ts';
import { loginServerFor } from '../proxy/config.ts';
import { createProxyInformers } from '../proxy/informers.ts';
import { createProxyKube } from '../proxy/kube.ts';
import { startProxyParents } from '../resources/proxy-parents.ts';
import {
  setupTailscaleEndpointsDiscovery,
  setupTailscaleEndpointsProxies,
} from '../resources/tailscale-endpoints/setup.ts';
import { startIdentityResolution } from '../resources/tailscale-gateway/identity.ts';
import { setupTailscaleGateway } from '../resources/tailscale-gateway/setup.ts';
import { setupTailscaleProxyGroup } from '../resources/tailscale-proxy-group/setup.ts';
import { setupTailscaleRoutePolicy } from '../resources/tailscale-route-policy/setup.ts';
import { setupTailscaleTailnet } from '../resources/tailscale-tailnet/setup.ts';
import { createTailnetClients } from '../resources/tailscale-tailnet/tailnet-clients.ts';
import { createBackoff } from '../time/backoff.ts';
import { startResourceCaches } from './resource-caches.ts';
import { createEnvoyServiceInformer } from './resource-informers.ts';

const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 30_000;
/** Name of the leader-election Lease in the operator's namespace. */
export const LEASE_NAME = 'tailscale-gateway';
/** How long in-flight reconciles may finish when leadership ends or the process stops. */
const DRAIN_MS = 10_000;

export async function runOperator(config: Config, environment: ProcessEnvironment): Promise<number> {
  // A kubeconfig that cannot be loaded is a usage error; report it before binding any port.
  const kube = createKubeClient({
    ...(config.kubeconfig ? { kubeconfig: config.kubeconfig } : {}),
    env: environment.kube,
  });
  const store = createMemoryResourceStore();
  const runtime = await startRuntime({
    config,
    mode: 'run',
    hooks: (log) => createExtensionHooks({ log, clusterDomain: config.clusterDomain }),
    store,
  });
  const { log, readiness, shutdown, metrics, health } = runtime;
  const registry = metrics.registry;
  const stopping = new AbortController();
  void waitForApi(
    kube,
    readiness.component('kubernetes'),
    log.child({ component: 'kubernetes' }),
    stopping.signal,
  );

  const { informers, gatewayApi, stopFeed } = startResourceCaches({
    kube,
    log,
    registry,
    store,
    health,
    readiness,
  });
  // Proxy children (Secrets, StatefulSets, Pods, RBAC in the operator namespace; egress Services and
  // EndpointSlices anywhere), labelled tailscale.com/managed: every replica caches them so a new leader
  // starts reconciling at once.
  const proxyNamespace = operatorNamespace(config, environment);
  // Every replica: the identity shared Tailscale Services know this operator by, logged once resolved;
  // the leader's ServiceCoordinators (src/resources/tailscale-gateway/tailscale-services-controller.ts) use it once it is.
  const identity = startIdentityResolution({
    kube,
    namespace: proxyNamespace,
    operatorId: config.operatorId,
    clusterId: config.clusterId,
    log: log.child({ component: 'identity' }),
    signal: stopping.signal,
  });
  const proxyChildren = createProxyInformers({
    client: kube,
    operatorNamespace: proxyNamespace,
    log: log.child({ component: 'proxies' }),
    registry,
  });
  for (const informer of proxyChildren.all()) informer.start();

  // The leader only: each resource's controllers, built anew for each term (a controller runs once).
  const clients = createTailnetClients({
    baseUrl: config.tailscaleApiUrl,
    log: log.child({ component: 'tailscale' }),
    registry,
  });
  const events = createEventRecorder({ sink: kubeEventSink(kube), log });
  const clock = systemClock;
  const proxyKube = createProxyKube(kube);
  const tailnets = setupTailscaleTailnet({
    kube,
    tailnets: informers.tailnets,
    clients,
    events,
    clock,
    log,
    registry,
  });
  const terms = createTerms((term) => {
    tailnets.inTerm(term);
    const proxyParents = startProxyParents(
      {
        client: kube,
        kube: proxyKube,
        endpoints: informers.endpoints,
        tailnets: informers.tailnets,
        children: proxyChildren,
        tailscaleGateways: informers.gateways,
        tailscale: (tailnet) => clients.current(tailnet),
        operatorNamespace: proxyNamespace,
        serverUrl: loginServerFor(config.tailscaleApiUrl),
        clusterDomain: config.clusterDomain,
        clock,
        events,
        log,
        registry,
      },
      term,
    );
    setupTailscaleEndpointsProxies(proxyParents, term);
    setupTailscaleProxyGroup(proxyParents, term);
    setupTailscaleGateway(
      {
        // Only the settings it reads, so the feature cannot come to depend on the CLI's whole Config.
        settings: {
          serviceStaleAfter: config.serviceStaleAfter,
          serviceReverifyMin: config.serviceReverifyMin,
          serviceReverifyMax: config.serviceReverifyMax,
          clusterDomain: config.clusterDomain,
        },
        kube,
        proxyKube,
        store,
        tailscaleGateways: informers.gateways,
        tailnets: informers.tailnets,
        endpoints: informers.endpoints,
        secrets: proxyChildren.informers.Secret,
        proxyGroups: proxyParents.proxyGroups,
        gatewayApi,
        envoyServices: () => {
          const envoyServices = createEnvoyServiceInformer({ client: kube, log, registry });
          envoyServices.start();
          return envoyServices;
        },
        operatorNamespace: proxyNamespace,
        client: (tailnet) => clients.current(tailnet),
        identity,
        events,
        clock,
        log,
        registry,
      },
      term,
    );
    setupTailscaleRoutePolicy(
      {
        kube,
        routePolicies: informers.routePolicies,
        tailscaleGateways: informers.gateways,
        gatewayApi,
        events,
        clock,
        log,
        registry,
      },
      term,
    );
    setupTailscaleEndpointsDiscovery(
      {
        kube,
        endpoints: informers.endpoints,
        tailnets: informers.tailnets,
        tailscale: (tailnet) => clients.current(tailnet),
        clock,
        log,
        registry,
      },
      term,
    );
  });

  if (config.leaderElection) {
    const elector = createLeaderElector({
      client: kube,
      namespace: proxyNamespace,
      ...(environment.podName === undefined ? {} : { candidate: environment.podName }),
      name: LEASE_NAME,
      // client-go's proportions (15 s / 10 s / 2 s) for any lease duration.
      leaseDurationMs: config.leaseDuration * 1000,
      renewDeadlineMs: (config.leaseDuration * 1000 * 2) / 3,
      retryPeriodMs: (config.leaseDuration * 1000 * 2) / 15,
      log: log.child({ component: 'leader-election' }),
      registry,
      onStartedLeading: (signal) => {
        log.info({ lease: `${proxyNamespace}/${LEASE_NAME}` }, 'leading: starting controllers');
        void terms.begin(signal);
      },
      onStoppedLeading: () => {
        log.info('no longer leading: stopping controllers');
        void terms.end(0);
      },
    });
    runtime.reportLeadership(() => ({
      identity: elector.identity,
      leader: elector.isLeader(),
      ...(elector.leader() ? { holder: elector.leader()! } : {}),
    }));
    void elector.run();
    shutdown.on('stop-work', 'controllers', async () => {
      await terms.end(DRAIN_MS);
      await elector.stop({ release: true });
    });
  } else {
    void terms.begin(stopping.signal);
    shutdown.on('stop-work', 'controllers', () => terms.end(DRAIN_MS));
  }
  shutdown.on('stop-work', 'informers', async () => {
    stopping.abort();
    stopFeed();
    await gatewayApi.stop();
    await tailnets.secrets.stop();
    await Promise.all([...informers.all(), ...proxyChildren.all()].map((informer) => informer.stop()));
  });
  return shutdown.done;
}

/** Where the Lease lives: the flag, then the pod's own namespace, then a fixed default. */
export function operatorNamespace(
  config: Pick<Config, 'namespace'>,
  environment: Pick<ProcessEnvironment, 'podNamespace'>,
): string {
  if (config.namespace) return config.namespace;
  if (environment.podNamespace) return environment.podNamespace;
  try {
    const fromServiceAccount = readFileSync(`${SERVICE_ACCOUNT_DIR}/namespace`, 'utf8').trim();
    if (fromServiceAccount) return fromServiceAccount;
  } catch {
    // not in a pod
  }
  return 'tailscale-gateway';
}

/**
 * Retries with capped exponential backoff until the API server answers and every CRD is Established,
 * so a pod started before its CRDs were applied becomes ready by itself once they are.
 */
async function waitForApi(
  kube: KubeClient,
  ready: ComponentHandle,
  log: Logger,
  signal: AbortSignal,
): Promise<void> {
  const retries = createBackoff({ baseMs: RETRY_MIN_MS, capMs: RETRY_MAX_MS, jitter: [0.8, 1.2] });
  while (!signal.aborted) {
    // Jittered so operators restarted together by one outage do not knock in step.
    const retryInMs = retries.next();
    try {
      const version = await kube.request<{ gitVersion?: string }>('/version', { signal });
      const missing = await missingCrds(kube, signal);
      if (missing.length === 0) {
        ready.set(true, `API server ${version.gitVersion ?? 'unknown version'}; CRDs established`);
        log.info(
          { server: kube.server, version: version.gitVersion },
          'connected to the API server; CRDs established',
        );
        return;
      }
      ready.set(false, `CRDs not established: ${missing.join(', ')}`);
      log.warn(
        { missing },
        'CRDs not installed or not established; install them with `tailscale-gateway crds | kubectl apply --server-side -f -`',
      );
    } catch (err) {
      if (signal.aborted) return;
      const error = OperatorError.from(err);
      ready.set(false, error.message);
      log.warn({ err: { code: error.code, message: error.message }, retryInMs }, 'API server not reachable');
    }
    await sleep(systemClock, retryInMs, signal);
  }
}

async function missingCrds(kube: KubeClient, signal: AbortSignal): Promise<string[]> {
  const missing: string[] = [];
  for (const name of renderCrds().map((crd) => crd.metadata.name)) {
    try {
      const crd = await kube.request<{ status?: { conditions?: { type: string; status: string }[] } }>(
        `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`,
        { signal },
      );
      if (!crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True'))
        missing.push(name);
    } catch (err) {
      if (OperatorError.from(err).code !== 'NotFound') throw err;
      missing.push(name);
    }
  }
  return missing;
}
