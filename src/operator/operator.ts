/**
 * `run`: the operator in a cluster. Wiring only, in the order things depend on each other:
 * config → Kubernetes client → runtime (HTTP surface, extension server) → informers (every replica,
 * feeding the hooks' store) → leader election → controllers (the leader only).
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { renderCrds } from '../api/index.ts';
import { type Runtime, startRuntime } from '../app/runtime.ts';
import type { ProcessEnvironment } from '../config/environment.ts';
import type { Config } from '../config/schema.ts';
import { tailscaleGatewaySettingsOf } from '../config/tailscale-gateway-settings.ts';
import {
  createEventRecorder,
  createLeaderElector,
  createTerms,
  type FeatureDeps,
  kubeEventSink,
  sleep,
  systemClock,
  type Terms,
} from '../controller-runtime/index.ts';
import { OperatorError } from '../errors.ts';
import { createExtensionHooks } from '../extension/hooks/index.ts';
import { createKubeClient, type Informer, type KubeClient, kubeWriteObserver } from '../kube/index.ts';
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
  kube.transport.observe(kubeWriteObserver(registry));
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
  const tailscale = (tailnet: string) => clients.current(tailnet);
  const deps: FeatureDeps = {
    kube,
    events: createEventRecorder({ sink: kubeEventSink(kube), log }),
    clock: systemClock,
    log,
    registry,
  };
  const proxyKube = createProxyKube(kube);
  const { tailnets, endpoints, gateways: tailscaleGateways } = informers;
  const tailnetSetup = setupTailscaleTailnet({ ...deps, tailnets, clients });
  const terms = createTerms((term) => {
    tailnetSetup.inTerm(term);
    const proxyParents = startProxyParents(
      {
        ...deps,
        client: kube,
        kube: proxyKube,
        endpoints,
        tailnets,
        children: proxyChildren,
        tailscaleGateways,
        tailscale,
        operatorNamespace: proxyNamespace,
        serverUrl: loginServerFor(config.tailscaleApiUrl),
        clusterDomain: config.clusterDomain,
      },
      term,
    );
    setupTailscaleEndpointsProxies(proxyParents, term);
    setupTailscaleProxyGroup(proxyParents, term);
    setupTailscaleGateway(
      {
        ...deps,
        settings: tailscaleGatewaySettingsOf(config),
        proxyKube,
        store,
        tailscaleGateways,
        tailnets,
        endpoints,
        secrets: proxyChildren.informers.Secret,
        proxyGroups: proxyParents.proxyGroups,
        gatewayApi,
        envoyServices: () => startedEnvoyServiceInformer(deps),
        operatorNamespace: proxyNamespace,
        client: tailscale,
        identity,
      },
      term,
    );
    setupTailscaleRoutePolicy(
      { ...deps, routePolicies: informers.routePolicies, tailscaleGateways, gatewayApi },
      term,
    );
    setupTailscaleEndpointsDiscovery({ ...deps, endpoints, tailnets, tailscale }, term);
  });
  runTerms(terms, {
    ...deps,
    config,
    environment,
    runtime,
    namespace: proxyNamespace,
    signal: stopping.signal,
  });
  shutdown.on('stop-work', 'informers', async () => {
    stopping.abort();
    stopFeed();
    await gatewayApi.stop();
    await tailnetSetup.secrets.stop();
    await Promise.all([...informers.all(), ...proxyChildren.all()].map((informer) => informer.stop()));
  });
  return shutdown.done;
}

function startedEnvoyServiceInformer({ kube, log, registry }: FeatureDeps): Informer {
  const envoyServices = createEnvoyServiceInformer({ client: kube, log, registry });
  envoyServices.start();
  return envoyServices;
}

interface TermsOptions extends Pick<FeatureDeps, 'kube' | 'log' | 'registry'> {
  config: Pick<Config, 'leaderElection' | 'leaseDuration'>;
  environment: Pick<ProcessEnvironment, 'podName'>;
  runtime: Pick<Runtime, 'shutdown' | 'reportLeadership'>;
  /** Where the Lease lives (the operator's namespace). */
  namespace: string;
  /** Aborted at shutdown; the one term of a run without leader election ends with it. */
  signal: AbortSignal;
}

/**
 * Begins and ends the controllers' terms: with leader election one per leadership won, drained before
 * the Lease is released at shutdown; without, one term for the process's life.
 */
function runTerms(terms: Terms, options: TermsOptions): void {
  const { config, environment, namespace, log } = options;
  const { shutdown } = options.runtime;
  if (!config.leaderElection) {
    void terms.begin(options.signal);
    shutdown.on('stop-work', 'controllers', () => terms.end(DRAIN_MS));
    return;
  }
  const elector = createLeaderElector({
    client: options.kube,
    namespace,
    ...(environment.podName === undefined ? {} : { candidate: environment.podName }),
    name: LEASE_NAME,
    // client-go's proportions (15 s / 10 s / 2 s) for any lease duration.
    leaseDurationMs: config.leaseDuration * 1000,
    renewDeadlineMs: (config.leaseDuration * 1000 * 2) / 3,
    retryPeriodMs: (config.leaseDuration * 1000 * 2) / 15,
    log: log.child({ component: 'leader-election' }),
    registry: options.registry,
    onStartedLeading: (signal) => {
      log.info({ lease: `${namespace}/${LEASE_NAME}` }, 'leading: starting controllers');
      void terms.begin(signal);
    },
    onStoppedLeading: () => {
      log.info('no longer leading: stopping controllers');
      void terms.end(0);
    },
  });
  options.runtime.reportLeadership(() => ({
    identity: elector.identity,
    leader: elector.isLeader(),
    ...(elector.leader() ? { holder: elector.leader()! } : {}),
  }));
  void elector.run();
  shutdown.on('stop-work', 'controllers', async () => {
    await terms.end(DRAIN_MS);
    await elector.stop({ release: true });
  });
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
