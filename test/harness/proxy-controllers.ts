/**
 * The proxy controllers in-process against a real kube-apiserver and the fake Tailscale control plane,
 * with real informers, plus what the missing cluster components would do: "play the proxy" (write the
 * state Secret as containerboot does, create the Pod the StatefulSet controller would), "play the
 * garbage collector" (finish a foreground deletion).
 */
import type { KubernetesObject, V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import { API_VERSION, renderCrds } from '../../src/api/index.ts';
import { type EventRecorder, systemClock } from '../../src/controller-runtime/index.ts';
import { createInformer, createKubeClient, type KubeClient } from '../../src/kube/index.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createProxyInformers, type ProxyInformers } from '../../src/proxy/informers.ts';
import { createProxyKube, type ProxyKube } from '../../src/proxy/kube.ts';
import type { SyncResult } from '../../src/proxy/sync.ts';
import { createProxyControllers, type ProxyControllers } from '../../src/resources/proxy-parents.ts';
import { createTailscaleClient, type TailscaleApi } from '../../src/tailscale/index.ts';
import { type ControlPlane, installCrds, sharedControlPlane } from './control-plane/index.ts';
import { type FakeTailscale, startFakeTailscale } from './fake-tailscale/index.ts';

export async function eventually<T>(
  probe: () => T | Promise<T>,
  accept: (value: T) => boolean,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await probe();
    if (accept(last)) return last;
    if (performance.now() > deadline)
      throw new Error(
        `condition not met within ${timeoutMs} ms; last value: ${JSON.stringify(last)?.slice(0, 2000)}`,
      );
    await Bun.sleep(50);
  }
}

export interface WriteLog {
  kind: string;
  verb: 'apply' | 'create' | 'delete' | 'finalizers' | 'status';
  name: string;
}

export interface Harness {
  cp: ControlPlane;
  kube: KubeClient;
  fake: FakeTailscale;
  api: TailscaleApi;
  operatorNamespace: string;
  appNamespace: string;
  children: ProxyInformers;
  controllers: ProxyControllers;
  writes: WriteLog[];
  syncs: { key: string; result: SyncResult }[];
  /** Events the reconcilers recorded (kept here, not written to the API server). */
  events: { regarding: string; type: string; reason: string; message: string }[];
  /** Log lines (JSON) at debug level and above, when started with `captureLogs`. */
  logs: string[];
  /** Whether the tailnet "corp" has a client (TailscaleTailnet Ready). */
  tailnetReady: { value: boolean };
  /** Clients of other tailnets, by TailscaleTailnet name (what `TailnetClients.current` returns). */
  clients: Map<string, TailscaleApi>;
  request(path: string, init?: Parameters<ControlPlane['request']>[1]): Promise<unknown>;
  get<T = KubernetesObject>(path: string): Promise<T | undefined>;
  createEndpoints(name: string, spec: Record<string, unknown>): Promise<void>;
  createProxyGroup(name: string, spec: Record<string, unknown>): Promise<void>;
  /** Waits until no reconcile is queued or running and no write happened for a moment. */
  settle(): Promise<void>;
  /** Reconciles `key` once more and returns the writes it made. */
  reconcileAgain(controller: 'endpoints' | 'proxyGroups', key: string): Promise<WriteLog[]>;
  /** Creates the Pod `name` as the StatefulSet controller would; returns its UID. */
  createPod(name: string, stsName: string, ip?: string): Promise<string>;
  /** Writes containerboot's keys into a state Secret. */
  playProxy(stateSecret: string, data: Record<string, string>): Promise<void>;
  /** Finishes the foreground deletion of a StatefulSet: deletes its Pods, drops the GC finalizer. */
  playGarbageCollector(stsName: string): Promise<void>;
  deletePod(name: string): Promise<void>;
  stop(): Promise<void>;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

export async function startHarness(
  label: string,
  options: { reissueIntervalMs?: number; tailscaleGateways?: boolean; captureLogs?: boolean } = {},
): Promise<Harness> {
  const cp = await sharedControlPlane();
  await installCrds(cp, renderCrds());
  const suffix = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
  const operatorNamespace = `${label}-op-${suffix}`;
  const appNamespace = `${label}-app-${suffix}`;
  for (const name of [operatorNamespace, appNamespace]) {
    const res = await cp.request('/api/v1/namespaces', { method: 'POST', body: { metadata: { name } } });
    if (!res.ok) throw new Error(`namespace ${name}: ${res.status} ${await res.text()}`);
  }
  const kube = createKubeClient({ kubeconfig: cp.kubeconfigPath });
  const fake = startFakeTailscale();
  const logs: string[] = [];
  const log = options.captureLogs
    ? createLogger({ level: 'debug', destination: { write: (line: string) => void logs.push(line) } })
    : createLogger({ level: (process.env.TSGW_TEST_LOG as 'info') ?? 'silent' });
  const events: Harness['events'] = [];
  const recorder: EventRecorder = {
    async event(regarding, type, reason, message) {
      events.push({
        regarding: `${regarding.kind}/${regarding.metadata?.namespace ?? ''}/${regarding.metadata?.name}`,
        type,
        reason,
        message,
      });
    },
  };
  const api = createTailscaleClient({
    baseUrl: fake.url,
    clientId: fake.clientId,
    clientSecret: fake.clientSecret,
    retry: { maxAttempts: 2, baseMs: 10, capMs: 50 },
    writeRateLimit: { perSecond: 1000, burst: 1000 },
  });
  const writes: WriteLog[] = [];
  const syncs: { key: string; result: SyncResult }[] = [];
  const real = createProxyKube(kube);
  const record = (verb: WriteLog['verb'], obj: KubernetesObject) =>
    writes.push({
      verb,
      kind: obj.kind ?? '?',
      name: `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name}`,
    });
  const counting: ProxyKube = {
    apply(obj, signal) {
      record('apply', obj);
      return real.apply(obj, signal);
    },
    create(obj, signal) {
      record('create', obj);
      return real.create(obj, signal);
    },
    delete(obj, o, signal) {
      record('delete', obj);
      return real.delete(obj, o, signal);
    },
    setFinalizers(obj, f, signal) {
      record('finalizers', obj);
      return real.setFinalizers(obj, f, signal);
    },
    applyStatus(obj, s, signal) {
      record('status', obj);
      return real.applyStatus(obj, s, signal);
    },
  };
  const tailnetReady = { value: true };
  const clients = new Map<string, TailscaleApi>();
  // The TailscaleTailnet "corp" every test names, Ready as its controller would leave it (the proxy
  // reconcilers read its Ready condition before they call the API).
  await putTailnet(cp, 'corp', { status: 'True', reason: 'Ready', message: 'credentials valid' });
  const children = createProxyInformers({ client: kube, operatorNamespace, log });
  // Primary informers restricted to this harness's app namespace, so harnesses of other test files
  // (sharing one API server) never reconcile each other's objects.
  const scoped = (plural: string) =>
    createInformer({ client: kube, path: `/apis/${API_VERSION}/namespaces/${appNamespace}/${plural}`, log });
  const endpointsInformer = scoped('tailscaleendpoints');
  const groupsInformer = scoped('tailscaleproxygroups');
  // The services controller is not run: a test writes a TailscaleGateway's status.services itself.
  const gatewaysInformer = options.tailscaleGateways ? scoped('tailscalegateways') : undefined;
  const controllers = createProxyControllers({
    client: kube,
    endpoints: endpointsInformer,
    proxyGroups: groupsInformer,
    ...(gatewaysInformer ? { tailscaleGateways: gatewaysInformer } : {}),
    kube: counting,
    children,
    tailscale: (tailnet) =>
      tailnet === 'corp' ? (tailnetReady.value ? api : undefined) : clients.get(tailnet),
    operatorNamespace,
    serverUrl: fake.url,
    clock: systemClock,
    events: recorder,
    log,
    workers: 4,
    ...(options.reissueIntervalMs !== undefined ? { reissueIntervalMs: options.reissueIntervalMs } : {}),
    onSync: (key, result) => syncs.push({ key, result }),
  });
  const primaries = [endpointsInformer, groupsInformer, ...(gatewaysInformer ? [gatewaysInformer] : [])];
  for (const informer of [...children.all(), ...controllers.ownInformers, ...primaries]) informer.start();
  const abort = new AbortController();
  void controllers.endpoints.start(abort.signal);
  void controllers.proxyGroups.start(abort.signal);

  const request = async (path: string, init?: Parameters<ControlPlane['request']>[1]) => {
    const res = await cp.request(path, init);
    if (!res.ok) throw new Error(`${init?.method ?? 'GET'} ${path}: ${res.status} ${await res.text()}`);
    return res.status === 204 ? undefined : res.json();
  };
  const get = async <T>(path: string): Promise<T | undefined> => {
    const res = await cp.request(path);
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
    return (await res.json()) as T;
  };
  const idle = () =>
    controllers.endpoints.queue.len() === 0 &&
    controllers.proxyGroups.queue.len() === 0 &&
    controllers.endpoints.activeWorkers() === 0 &&
    controllers.proxyGroups.activeWorkers() === 0;

  const h: Harness = {
    cp,
    kube,
    fake,
    api,
    operatorNamespace,
    appNamespace,
    children,
    controllers,
    writes,
    syncs,
    events,
    logs,
    tailnetReady,
    clients,
    request,
    get,
    async createEndpoints(name, spec) {
      await request(`/apis/${API_VERSION}/namespaces/${appNamespace}/tailscaleendpoints`, {
        method: 'POST',
        body: { apiVersion: API_VERSION, kind: 'TailscaleEndpoints', metadata: { name }, spec },
      });
    },
    async createProxyGroup(name, spec) {
      await request(`/apis/${API_VERSION}/namespaces/${appNamespace}/tailscaleproxygroups`, {
        method: 'POST',
        body: { apiVersion: API_VERSION, kind: 'TailscaleProxyGroup', metadata: { name }, spec },
      });
    },
    async settle() {
      let stableSince = performance.now();
      let lastWrites = writes.length;
      await eventually(
        () => {
          if (!idle() || writes.length !== lastWrites) {
            lastWrites = writes.length;
            stableSince = performance.now();
          }
          return performance.now() - stableSince;
        },
        (quiet) => quiet > 400,
      );
    },
    async reconcileAgain(which, key) {
      await h.settle();
      const before = writes.length;
      const syncsBefore = syncs.filter((s) => s.key === key).length;
      controllers[which].enqueue(key);
      await eventually(
        () => syncs.filter((s) => s.key === key).length,
        (n) => n > syncsBefore,
      );
      await eventually(idle, Boolean);
      return writes.slice(before);
    },
    async createPod(name, stsName, ip = '10.1.0.1') {
      const sts = (await get<V1StatefulSet>(
        `/apis/apps/v1/namespaces/${operatorNamespace}/statefulsets/${stsName}`,
      ))!;
      const pod = (await request(`/api/v1/namespaces/${operatorNamespace}/pods`, {
        method: 'POST',
        body: {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name, labels: sts.spec!.template.metadata!.labels },
          spec: { containers: [{ name: 'tailscale', image: 'tailscale/tailscale' }] },
        },
      })) as { metadata: { uid: string; resourceVersion: string } };
      await request(`/api/v1/namespaces/${operatorNamespace}/pods/${name}/status`, {
        method: 'PATCH',
        contentType: 'application/merge-patch+json',
        body: {
          status: {
            podIP: ip,
            podIPs: [{ ip }],
            conditions: [{ type: 'Ready', status: 'True' }],
          },
        },
      });
      return pod.metadata.uid;
    },
    async playProxy(stateSecret, data) {
      await request(`/api/v1/namespaces/${operatorNamespace}/secrets/${stateSecret}`, {
        method: 'PATCH',
        contentType: 'application/merge-patch+json',
        body: { data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])) },
      });
    },
    async playGarbageCollector(stsName) {
      const path = `/apis/apps/v1/namespaces/${operatorNamespace}/statefulsets/${stsName}`;
      await eventually(
        () => get<V1StatefulSet>(path),
        (sts) => sts === undefined || sts.metadata?.deletionTimestamp !== undefined,
      );
      const pods = (await request(
        `/api/v1/namespaces/${operatorNamespace}/pods?labelSelector=${encodeURIComponent(`tailscale-gateway.tailscale.com/proxy=${stsName}`)}`,
      )) as { items: KubernetesObject[] };
      for (const pod of pods.items) await h.deletePod(pod.metadata!.name!);
      if (await get(path))
        await request(path, {
          method: 'PATCH',
          contentType: 'application/merge-patch+json',
          body: { metadata: { finalizers: null } },
        });
    },
    async deletePod(name) {
      await request(`/api/v1/namespaces/${operatorNamespace}/pods/${name}?gracePeriodSeconds=0`, {
        method: 'DELETE',
      });
    },
    async stop() {
      abort.abort();
      await Promise.all([controllers.endpoints.stop(0), controllers.proxyGroups.stop(0)]);
      await Promise.all([...children.all(), ...controllers.ownInformers, ...primaries].map((i) => i.stop()));
      await fake.stop();
    },
  };
  return h;
}

/**
 * Creates the cluster-scoped TailscaleTailnet `name` when absent and sets its Ready condition, as the
 * TailscaleTailnet controller (not run here) would.
 */
export async function putTailnet(
  cp: Pick<ControlPlane, 'request'>,
  name: string,
  ready: { status: 'True' | 'False'; reason: string; message: string },
): Promise<void> {
  const path = `/apis/${API_VERSION}/tailscaletailnets`;
  const created = await cp.request(path, {
    method: 'POST',
    body: {
      apiVersion: API_VERSION,
      kind: 'TailscaleTailnet',
      metadata: { name },
      spec: { oauthSecretRef: { name: 'oauth', namespace: 'tailscale' } },
    },
  });
  if (!created.ok && created.status !== 409)
    throw new Error(`TailscaleTailnet ${name}: ${created.status} ${await created.text()}`);
  await created.body?.cancel();
  const status = await cp.request(`${path}/${name}/status`, {
    method: 'PATCH',
    contentType: 'application/merge-patch+json',
    body: {
      status: {
        conditions: [
          { type: 'Ready', ...ready, lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') },
        ],
      },
    },
  });
  if (!status.ok) throw new Error(`TailscaleTailnet ${name} status: ${status.status} ${await status.text()}`);
  await status.body?.cancel();
}

/** A state Secret's decoded data. */
export function decoded(secret: V1Secret | undefined): Record<string, string> {
  return Object.fromEntries(
    Object.entries(secret?.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
  );
}

/** containerboot's keys for a logged-in proxy. */
export function loggedIn(podUid: string, n: number, fqdn: string): Record<string, string> {
  return {
    device_id: `nPROXY${n}CNTRL`,
    device_fqdn: `${fqdn}.`,
    device_ips: JSON.stringify([`100.64.1.${n}`, `fd7a:115c:a1e0::1:${n}`]),
    pod_uid: podUid,
    _machinekey: 'privkey:abc',
    _profiles: '{}',
    '_current-profile': 'profile-1234',
    'profile-1234': '{}',
  };
}
