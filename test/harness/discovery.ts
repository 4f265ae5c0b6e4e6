/**
 * The discovery controller in-process against a real kube-apiserver and the fake Tailscale control
 * plane, with real informers and a fake clock: a test moves time by a sync interval and waits until
 * every object with discovery has synced and everything is quiet, so "10 syncs" is exactly ten rounds
 * and never a sleep. Used by test/apiserver/discovery.test.ts and bench/discovery.ts.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import {
  type AnyResource,
  API_VERSION,
  parseResource,
  renderCrds,
  type TailscaleEndpoints,
} from '../../src/api/index.ts';
import { type Controller, createFakeClock, type FakeClock } from '../../src/controller-runtime/index.ts';
import { createInformer, createKubeClient, type Informer, type KubeClient } from '../../src/kube/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createDiscoveryController } from '../../src/resources/tailscale-endpoints/setup.ts';
import { createTailnetInventory, type TailnetInventory } from '../../src/tailnet-discovery/index.ts';
import { createTailscaleClient } from '../../src/tailscale/index.ts';
import { type ControlPlane, installCrds, sharedControlPlane } from './control-plane/index.ts';
import { type FakeTailscale, startFakeTailscale } from './fake-tailscale/index.ts';
import { eventually } from './support/eventually.ts';

export const DEVICES = { method: 'GET', endpoint: '/tailnet/{tailnet}/devices' };
export const SERVICES = { method: 'GET', endpoint: '/tailnet/{tailnet}/vip-services' };

export interface DiscoveryWrite {
  what: 'spec' | 'status';
  name: string;
}

export interface DiscoveryHarness {
  cp: ControlPlane;
  kube: KubeClient;
  fake: FakeTailscale;
  clock: FakeClock;
  namespace: string;
  /** The TailscaleTailnet every object uses (Ready, MagicDNS suffix tail-fake.ts.net). */
  tailnet: string;
  endpoints: Informer;
  controller: Controller;
  inventory: TailnetInventory;
  writes: DiscoveryWrite[];
  syncs: { key: string; outcome: string; at: number }[];
  request<T = unknown>(path: string, init?: Parameters<ControlPlane['request']>[1]): Promise<T>;
  path(name?: string): string;
  create(name: string, spec: Record<string, unknown>): Promise<void>;
  get(name: string): Promise<TailscaleEndpoints & { metadata: { managedFields?: unknown[] } }>;
  /** The objects as the informer (and so the hooks' store) sees them. */
  cached(): AnyResource[];
  /**
   * Moves the clock by `ms` (default 30 s) and waits until every discovery object synced and all is
   * quiet; returns the wall time from moving the clock to the last object's sync.
   */
  tick(ms?: number): Promise<{ syncMs: number }>;
  /** Waits until no reconcile is queued or running, no write for a moment and the cache holds the last write. */
  settle(): Promise<void>;
  stop(): Promise<void>;
}

export async function startDiscoveryHarness(label: string): Promise<DiscoveryHarness> {
  const cp = await sharedControlPlane();
  await installCrds(cp, renderCrds());
  const suffix = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
  const namespace = `${label}-${suffix}`;
  const tailnet = `${label}-${suffix}`;
  const request = async <T>(path: string, init?: Parameters<ControlPlane['request']>[1]): Promise<T> => {
    const res = await cp.request(path, init);
    if (!res.ok) throw new Error(`${init?.method ?? 'GET'} ${path}: ${res.status} ${await res.text()}`);
    return (res.status === 204 ? undefined : await res.json()) as T;
  };
  await request('/api/v1/namespaces', { method: 'POST', body: { metadata: { name: namespace } } });
  const clock = createFakeClock(Date.now());
  const fake = startFakeTailscale({ now: () => clock.now() });
  const api = createTailscaleClient({
    baseUrl: fake.url,
    clientId: fake.clientId,
    clientSecret: fake.clientSecret,
    retry: { maxAttempts: 1 },
  });
  // A Ready tailnet, as the TailscaleTailnet controller would leave it.
  await request(`/apis/${API_VERSION}/tailscaletailnets`, {
    method: 'POST',
    body: {
      apiVersion: API_VERSION,
      kind: 'TailscaleTailnet',
      metadata: { name: tailnet },
      spec: { oauthSecretRef: { name: 'oauth', namespace } },
    },
  });
  await request(`/apis/${API_VERSION}/tailscaletailnets/${tailnet}/status`, {
    method: 'PATCH',
    contentType: 'application/merge-patch+json',
    body: {
      status: {
        magicDNSSuffix: 'tail-fake.ts.net',
        conditions: [
          {
            type: 'Ready',
            status: 'True',
            reason: 'Ready',
            message: '',
            lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
          },
        ],
      },
    },
  });
  const kube = createKubeClient({ kubeconfig: cp.kubeconfigPath });
  const log = createLogger({ level: (process.env.TSGW_TEST_LOG as 'info') ?? 'silent' });
  const endpoints = createInformer({
    client: kube,
    path: `/apis/${API_VERSION}/namespaces/${namespace}/tailscaleendpoints`,
    log,
  });
  const tailnets = createInformer({ client: kube, path: `/apis/${API_VERSION}/tailscaletailnets`, log });
  const writes: DiscoveryWrite[] = [];
  const syncs: { key: string; outcome: string; at: number }[] = [];
  const inventory = createTailnetInventory({ clock });
  let lastWriteVersion = '';
  const counting: Pick<KubeClient, 'applyObject'> = {
    async applyObject<T extends KubernetesObject>(
      obj: T,
      options?: Parameters<KubeClient['applyObject']>[1],
    ) {
      writes.push({ what: options?.subresource === 'status' ? 'status' : 'spec', name: obj.metadata!.name! });
      const stored = await kube.applyObject(obj, options);
      lastWriteVersion = stored.metadata?.resourceVersion ?? lastWriteVersion;
      return stored;
    },
  };
  const controller = createDiscoveryController({
    kube: counting,
    endpoints,
    tailnets,
    tailscale: (name) => (name === tailnet ? api : undefined),
    inventory,
    clock,
    log,
    workers: 4,
    onSync: (key, outcome) => syncs.push({ key, outcome, at: performance.now() }),
  });
  endpoints.start();
  tailnets.start();
  const abort = new AbortController();
  void controller.start(abort.signal);

  const path = (name?: string) =>
    `/apis/${API_VERSION}/namespaces/${namespace}/tailscaleendpoints${name ? `/${name}` : ''}`;
  const idle = () => controller.queue.len() === 0 && controller.activeWorkers() === 0;
  const cacheHoldsLastWrite = () =>
    lastWriteVersion === '' ||
    endpoints.list().some((o) => o.metadata?.resourceVersion === lastWriteVersion) ||
    BigInt(endpoints.lastResourceVersion() || '0') >= BigInt(lastWriteVersion);
  const discoveryKeys = () =>
    (endpoints.list() as unknown as TailscaleEndpoints[])
      .filter((e) => e.spec?.discovery !== undefined)
      .map((e) => `${e.metadata.namespace}/${e.metadata.name}`);

  const h: DiscoveryHarness = {
    cp,
    kube,
    fake,
    clock,
    namespace,
    tailnet,
    endpoints,
    controller,
    inventory,
    writes,
    syncs,
    request,
    path,
    async create(name, spec) {
      await request(path(), {
        method: 'POST',
        body: { apiVersion: API_VERSION, kind: 'TailscaleEndpoints', metadata: { name }, spec },
      });
    },
    get: (name) => request(path(name)),
    cached: () => endpoints.list().map((o) => parseResource(o)),
    async tick(ms = 30_000) {
      await h.settle();
      const before = syncs.length;
      const started = performance.now();
      await clock.advance(ms);
      const keys = discoveryKeys();
      await eventually(
        () => new Set(syncs.slice(before).map((s) => s.key)),
        (seen) => keys.every((k) => seen.has(k)),
        { timeoutMs: 60_000, intervalMs: 20 },
      );
      const last = Math.max(...syncs.slice(before).map((s) => s.at));
      await h.settle();
      return { syncMs: Math.round(last - started) };
    },
    async settle() {
      let stableSince = performance.now();
      let lastWrites = writes.length;
      await eventually(
        () => {
          if (!idle() || writes.length !== lastWrites || !cacheHoldsLastWrite()) {
            lastWrites = writes.length;
            stableSince = performance.now();
          }
          return performance.now() - stableSince;
        },
        (quiet) => quiet > 300,
        { timeoutMs: 60_000, intervalMs: 20 },
      );
    },
    async stop() {
      abort.abort();
      await controller.stop(0);
      await Promise.all([endpoints.stop(), tailnets.stop()]);
      await fake.stop();
      await cp.request(`/apis/${API_VERSION}/tailscaletailnets/${tailnet}`, { method: 'DELETE' });
    },
  };
  return h;
}
