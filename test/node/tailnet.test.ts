/**
 * The operator's proxies, unchanged, join a real tailnet from the one-node cluster: the chart's
 * operator is pointed at the fake Tailscale API, whose auth keys and devices are those of the tests'
 * control server (tailnet-control: tailscale's testcontrol with DERP and STUN, on the node IP), and
 * control answers at the API's origin, where the operator sends its proxies to log in. The proxy Pods
 * are the operator's StatefulSets, Secrets and Role as users get them, running the real containerboot
 * and tailscaled v1.102.2 (kernel mode for egress, userspace for ingress). What the operator then
 * learns from the real proxies — device id, MagicDNS name and addresses from the state Secrets, Ready
 * status, the auth key used once — is checked against what control says.
 *
 * Needs what test/node/chart.test.ts needs, plus tailnet-control (bash test/prepare.sh builds it).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { TailscaleEndpointsStatus } from '../../src/api/tailscale-endpoints.ts';
import type { TailscaleProxyGroupStatus } from '../../src/api/tailscale-proxy-group.ts';
import { CHART_NAMESPACE, until } from '../harness/node/chart.ts';
import { nodeClusterUnavailable, TOOLS_IMAGE } from '../harness/node/index.ts';
import { runPod } from '../harness/node/run-pod.ts';
import {
  GROUP,
  type Pod,
  podReady,
  startTailnetStack,
  type TailnetStack,
} from '../harness/node/tailnet-stack.ts';
import type { TailnetDevice } from '../harness/tailscale/tailnet-devices.ts';

const NS = CHART_NAMESPACE;
const unavailable = nodeClusterUnavailable();
if (unavailable) console.warn(`skipping tailnet-on-node tests: ${unavailable}`);

describe.skipIf(unavailable !== undefined)('the operator’s proxies on the node join a real tailnet', () => {
  let stack: TailnetStack;
  let web: TailnetDevice;

  beforeAll(async () => {
    // Control, DERP and STUN on the node IP (the Pods' way to the host), the admin API on loopback;
    // a tailnet device `web` (tailscaled in a network namespace of the test's, an HTTP echo server
    // behind it) on a bridge of its own, with a route to the node IP.
    stack = await startTailnetStack({ tag: 'tailnet', devices: [{ name: 'web', tags: ['tag:web'] }] });
    web = stack.devices.web!;
    stack.explainAlso(async () => `devices on control: ${JSON.stringify(await stack.admin.devices())}`);
  }, 150_000);

  afterAll(async () => {
    await stack?.stop();
  }, 120_000);

  const keyPosts = () => stack.fake.requests.count({ method: 'POST', endpoint: '/tailnet/{tailnet}/keys' });

  test('a TailscaleEndpoints egress proxy joins: control, the state Secret and the status agree; the key is used once', async () => {
    const started = performance.now();
    await stack.apply(`/apis/${GROUP}/namespaces/default/tailscaleendpoints`, {
      apiVersion: GROUP,
      kind: 'TailscaleEndpoints',
      metadata: { name: 'db', namespace: 'default' },
      spec: {
        tailnet: 'corp',
        endpoints: [{ name: 'db', tailscaleIP: '100.64.0.9', port: 5432 }],
        proxy: { connectionType: 'egress', replicas: 1 },
      },
    });
    type Tse = { status?: TailscaleEndpointsStatus };
    const tse = await stack.soon(
      'the TailscaleEndpoints Ready with its proxy device',
      async () => {
        const t = await stack.get<Tse>(`/apis/${GROUP}/namespaces/default/tailscaleendpoints/db`);
        const ready = t.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
        return ready && t.status?.proxies?.[0]?.devices?.length === 1 ? t : undefined;
      },
      60_000,
    );
    console.log(
      `TailscaleEndpoints apply → Ready with an online proxy device in ${Math.round(performance.now() - started)} ms`,
    );
    const [onControl, ...others] = (await stack.admin.devices()).filter((d) => d.hostname !== 'web');
    expect(others).toEqual([]);
    const device = onControl!;
    const reported = tse.status!.proxies![0]!.devices![0]!;
    const podName = reported.podName!;
    // What the operator reports is what control has: the node id, the MagicDNS name and addresses.
    expect(device.tags).toEqual(['tag:k8s']);
    expect(device.clientVersion).toStartWith('1.102.2');
    expect(reported.nodeId).toBe(device.nodeId);
    expect(reported.fqdn).toBe(device.name);
    expect(reported.tailscaleIPs?.slice().sort()).toEqual(device.addresses.slice().sort());
    expect(device.name).toBe(`${reported.hostname}.tail-fake.ts.net`);
    // ... which the operator read from the state Secret the real containerboot and tailscaled wrote.
    const pod = await stack.get<Pod>(`/api/v1/namespaces/${NS}/pods/${podName}`);
    const state = await stack.secretData(NS, podName);
    expect(state.device_id).toBe(device.nodeId);
    expect(state.device_fqdn).toBe(`${device.name}.`); // tailscaled writes it rooted; status drops the dot
    expect(JSON.parse(state.device_ips!).sort()).toEqual(device.addresses.slice().sort());
    expect(state.pod_uid).toBe(pod.metadata.uid);
    // The capability version the proxy runs (v1.102.2 is 142), which picks its cap-<N>.hujson.
    expect(state.tailscale_capver).toBe('142');
    // One key minted, the one the device joined with; single-use, so control has consumed it, and
    // the operator has taken it out of the config Secret now that the device exists.
    expect(keyPosts()).toBe(1);
    const keys = await stack.admin.keys();
    const used = keys.find((k) => k.id === device.authKeyId);
    expect(used?.capabilities.devices.create).toMatchObject({ reusable: false, tags: ['tag:k8s'] });
    expect(used?.invalid).toBe(true); // used, single-use: control admits no second node with it
    const config = await until('the auth key dropped from the config Secret', async () => {
      const c = await stack.secretData(NS, `${podName}-config`);
      return Object.values(c).some((text) => text.includes('tskey-auth')) ? undefined : c;
    });
    expect(Object.keys(config).sort()).toEqual(['cap-107.hujson', 'cap-95.hujson', 'egress-services']);
    // The proxy's own endpoints: /healthz 200 now that it has tailnet addresses (so the kubelet's
    // readiness probe passes), /metrics in Prometheus text.
    const healthz = await fetch(`http://${pod.status.podIP}:9002/healthz`, {
      signal: AbortSignal.timeout(3000),
    });
    expect(healthz.status).toBe(200);
    const metrics = await fetch(`http://${pod.status.podIP}:9002/metrics`, {
      signal: AbortSignal.timeout(3000),
    });
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('tailscaled_');
    expect(
      podReady(
        await until('the proxy Pod Ready', async () => {
          const p = await stack.get<Pod>(`/api/v1/namespaces/${NS}/pods/${podName}`);
          return podReady(p) ? p : undefined;
        }),
      ),
    ).toBe(true);
    // No further key: a second look after the operator's next syncs.
    await Bun.sleep(2000);
    expect(keyPosts()).toBe(1);
  }, 90_000);

  test('a TailscaleProxyGroup (ingress, 2 replicas) joins with two devices; a read-only cert replica is refused listing Secrets and runs on (M4)', async () => {
    const before = keyPosts();
    await stack.apply(`/apis/${GROUP}/namespaces/default/tailscaleproxygroups`, {
      apiVersion: GROUP,
      kind: 'TailscaleProxyGroup',
      metadata: { name: 'ingress-pool', namespace: 'default' },
      spec: {
        type: 'ingress',
        tailnet: 'corp',
        replicas: 2,
        tags: ['tag:k8s'],
        hostnamePrefix: 'gw-ingress',
      },
    });
    type Group = { status?: TailscaleProxyGroupStatus };
    const group = await stack.soon(
      'the group Ready with 2 devices',
      async () => {
        const g = await stack.get<Group>(
          `/apis/${GROUP}/namespaces/default/tailscaleproxygroups/ingress-pool`,
        );
        const ready = g.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
        return ready && g.status?.devices?.length === 2 ? g : undefined;
      },
      60_000,
    );
    const onControl = (await stack.admin.devices()).filter((d) => d.hostname.startsWith('gw-ingress'));
    expect(onControl.map((d) => d.hostname).sort()).toEqual(['gw-ingress-0', 'gw-ingress-1']);
    for (const reported of group.status!.devices!) {
      const device = onControl.find((d) => d.hostname === reported.hostname)!;
      expect(reported.nodeId).toBe(device.nodeId);
      expect(reported.fqdn).toBe(device.name);
      const state = await stack.secretData(NS, reported.podName!);
      expect(state.device_id).toBe(device.nodeId);
    }
    // One key per replica, each used by its own device.
    expect(keyPosts() - before).toBe(2);
    expect(new Set(onControl.map((d) => d.authKeyId)).size).toBe(2);
    // M4: the replica that only reads shared certificates (not -0) lists cert Secrets by label at start;
    // the Role names its Secrets, so the apiserver refuses (403). Logged, not fatal: the replica is on the
    // tailnet and Ready (above), and its container has not restarted.
    const ro = group.status!.devices!.find((d) => d.podName?.endsWith('-1'))!.podName!;
    const log = await stack.proxyLog(ro);
    expect(log).toContain(
      'error listing TLS Secrets: secrets is forbidden: User "system:serviceaccount:tailscale-gateway:ingress-pool-',
    );
    expect(log).toContain('cannot list resource "secrets"');
    const pod = await stack.get<{ status: { containerStatuses?: { name: string; restartCount: number }[] } }>(
      `/api/v1/namespaces/${NS}/pods/${ro}`,
    );
    expect(pod.status.containerStatuses?.find((c) => c.name === 'tailscale')?.restartCount).toBe(0);
  }, 90_000);

  test('a client Pod reaches a tailnet device through the per-endpoint egress Services (IP and FQDN target)', async () => {
    await stack.apply(`/apis/${GROUP}/namespaces/default/tailscaleendpoints`, {
      apiVersion: GROUP,
      kind: 'TailscaleEndpoints',
      metadata: { name: 'web', namespace: 'default' },
      spec: {
        tailnet: 'corp',
        endpoints: [
          { name: 'by-ip', tailscaleIP: web.ip4, port: 80 },
          // A MagicDNS name: containerboot resolves it from the netmap to the device's IPv4 and IPv6
          // addresses, the case iptables mode breaks in v1.102.2 (M2).
          { name: 'by-name', tailscaleFQDN: web.fqdn, port: 80 },
        ],
        proxy: { connectionType: 'egress', replicas: 1 },
      },
    });
    const started = performance.now();
    let n = 0;
    /** `tools get` from a fresh Pod; its log is the body (or the error). */
    const fromPod = (url: string) =>
      runPod(stack.cluster, {
        name: `client-${++n}`,
        image: TOOLS_IMAGE,
        command: ['/tools', 'get', url],
        timeoutMs: 50_000,
      });
    for (const endpoint of ['by-ip', 'by-name']) {
      const url = `http://web-${endpoint}-egress.default.svc.cluster.local/${endpoint}`;
      const answer = await stack.soon(
        `an answer from web through ${endpoint}`,
        async () => {
          const r = await fromPod(url);
          return r.phase === 'Succeeded' ? r : undefined;
        },
        60_000,
      );
      // The echo server in web's namespace answered: its name and the path the client asked for.
      expect(JSON.parse(answer.log)).toMatchObject({ name: 'web', path: `/${endpoint}` });
      console.log(
        `egress TSE apply → client Pod answered through ${endpoint} in ${Math.round(performance.now() - started)} ms`,
      );
    }
  }, 150_000);

  test('a deleted proxy Pod comes back as the same device: state Secret kept, no new key, no new node', async () => {
    const [device] = (await stack.admin.devices()).filter((d) => d.hostname.startsWith('default-db'));
    const podName = 'db-e8853f-egress-0';
    const old = await stack.get<Pod>(`/api/v1/namespaces/${NS}/pods/${podName}`);
    const keys = keyPosts();
    const deleted = await stack.cluster.request(`/api/v1/namespaces/${NS}/pods/${podName}`, {
      method: 'DELETE',
    });
    expect(deleted.status).toBeLessThan(300);
    const started = performance.now();
    const back = await stack.replacementReady(NS, old, 60_000);
    console.log(`proxy Pod deleted → back and Ready in ${Math.round(performance.now() - started)} ms`);
    const state = await stack.secretData(NS, podName);
    expect(state.pod_uid).toBe(back.metadata.uid);
    expect(state.device_id).toBe(device!.nodeId);
    const after = (await stack.admin.devices()).filter((d) => d.hostname.startsWith('default-db'));
    expect(after.map((d) => d.nodeId)).toEqual([device!.nodeId]);
    expect(keyPosts()).toBe(keys);
    const log = await stack.proxyLog(podName);
    expect(log).not.toContain('Generating a new nodekey');
  }, 90_000);

  test('no writes at rest: with the proxies Ready beside a real kube-controller-manager, nothing the operator owns or writes changes for 60 s', async () => {
    // A write loop (the operator and a controller undoing each other, as 88b4dea's EndpointSlice loop
    // did twice a second) shows only with the controller-manager running: bench/steady-state.ts and the
    // apiserver tests have none. The node cluster runs the real one, whose EndpointSlice controller
    // copies the proxy Services' labels onto its slices, and whose StatefulSet controller makes the Pods.
    const parents = [
      `/apis/${GROUP}/namespaces/default/tailscaleendpoints/db`,
      `/apis/${GROUP}/namespaces/default/tailscaleendpoints/web`,
      `/apis/${GROUP}/namespaces/default/tailscaleproxygroups/ingress-pool`,
    ];
    const childKinds = [
      `/api/v1/namespaces/${NS}/secrets`,
      `/api/v1/namespaces/${NS}/pods`,
      `/api/v1/namespaces/${NS}/serviceaccounts`,
      '/api/v1/services',
      '/apis/discovery.k8s.io/v1/endpointslices',
      `/apis/apps/v1/namespaces/${NS}/statefulsets`,
      `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/roles`,
      `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings`,
      `/apis/policy/v1/namespaces/${NS}/poddisruptionbudgets`,
    ];
    type Listed = {
      items: { metadata: { namespace?: string; name: string; resourceVersion: string } }[];
    };
    /** `what → resourceVersion` of the parents and of every object labelled tailscale.com/managed. */
    const versions = async () => {
      const out = new Map<string, string>();
      for (const path of parents) {
        const r = await stack.cluster.request(path);
        if (r.status === 404) continue; // run alone with -t: the tests that make it did not run
        const p = (await r.json()) as { metadata: { resourceVersion: string } };
        out.set(path.replace(`/apis/${GROUP}/namespaces/`, ''), p.metadata.resourceVersion);
      }
      for (const path of childKinds) {
        const list = await stack.get<Listed>(`${path}?labelSelector=tailscale.com%2Fmanaged%3Dtrue`);
        const kind = path.split('/').at(-1);
        for (const item of list.items)
          out.set(`${kind}/${item.metadata.namespace}/${item.metadata.name}`, item.metadata.resourceVersion);
      }
      return out;
    };
    /** Each operator replica's writes to the API server, by series, leader Lease renewals left out. */
    const operatorWrites = async () => {
      const operators = (await stack.pods(NS)).filter((p) => p.metadata.name.startsWith('tsgw-'));
      expect(operators.length).toBe(2);
      const out = new Map<string, number>();
      for (const pod of operators) {
        const r = await fetch(`http://${pod.status.podIP}:8080/metrics`, {
          signal: AbortSignal.timeout(5000),
        });
        for (const m of (await r.text()).matchAll(/^tsgw_kube_api_writes_total\{([^}]*)\} (\d+)/gm)) {
          if (m[1]!.includes('resource="leases.coordination.k8s.io"')) continue;
          out.set(`${pod.metadata.name} ${m[1]}`, Number(m[2]));
        }
      }
      return out;
    };
    const changes = <V>(before: Map<string, V>, after: Map<string, V>) =>
      [...new Set([...before.keys(), ...after.keys()])]
        .filter((key) => before.get(key) !== after.get(key))
        .map((key) => `${key}: ${before.get(key) ?? '(none)'} → ${after.get(key) ?? '(gone)'}`);
    // Every proxy Ready first (the Pod deleted by the test before is back), then up to 45 s for what
    // the proxies still report after starting (containerboot's state Secret keys) to land.
    await stack.soon(
      'every proxy Pod Ready',
      async () => {
        const pods = await stack.pods(NS, 'tailscale.com/managed=true');
        return pods.length >= 3 && pods.every(podReady) ? pods : undefined;
      },
      60_000,
    );
    let settled = await versions();
    const quietBy = performance.now() + 45_000;
    for (let quiet = false; !quiet && performance.now() < quietBy; ) {
      await Bun.sleep(10_000);
      const now = await versions();
      quiet = changes(settled, now).length === 0;
      settled = now;
    }
    const writesBefore = await operatorWrites();
    const before = await versions();
    const started = performance.now();
    await Bun.sleep(60_000);
    const after = await versions();
    const writesAfter = await operatorWrites();
    console.log(
      `at rest for ${Math.round((performance.now() - started) / 1000)} s: ${before.size} objects watched, ` +
        `${changes(before, after).length} changed, ${changes(writesBefore, writesAfter).length} write series moved ` +
        `(${writesAfter.size} series)`,
    );
    // The controller's slices are among them (they carry the copied label), so a delete-and-recreate
    // shows as a name gone and a new one.
    expect([...after.keys()].filter((k) => k.startsWith(`endpointslices/${NS}/`)).length).toBeGreaterThan(0);
    expect(changes(before, after)).toEqual([]);
    expect(changes(writesBefore, writesAfter)).toEqual([]);
  }, 240_000);

  test('ProxyGroup 2 → 3 → 1: one device joins, then the two above the new count leave the tailnet', async () => {
    const scale = (replicas: number) =>
      stack.apply(`/apis/${GROUP}/namespaces/default/tailscaleproxygroups`, {
        apiVersion: GROUP,
        kind: 'TailscaleProxyGroup',
        metadata: { name: 'ingress-pool', namespace: 'default' },
        spec: { type: 'ingress', tailnet: 'corp', replicas, tags: ['tag:k8s'], hostnamePrefix: 'gw-ingress' },
      });
    const group = async () =>
      (await stack.admin.devices())
        .filter((d) => d.hostname.startsWith('gw-ingress'))
        .sort((a, b) => (a.hostname < b.hostname ? -1 : 1));
    const [zero, one] = await group();
    const keys = keyPosts();
    await scale(3);
    // Scaled up once the group reports the third device, i.e. its replica's state Secret holds its node
    // id. Scaling down sooner can orphan the node: a replica removed before its state Secret names its
    // node (neither containerboot's device_id nor tailscaled's login profile written yet) leaves no id
    // to delete by; the profile fallback (state.ts) narrows that window, a loaded machine still hits it.
    await stack.soon(
      'the group reporting 3 devices',
      async () => {
        const g = await stack.get<{ status?: { devices?: unknown[] } }>(
          `/apis/${GROUP}/namespaces/default/tailscaleproxygroups/ingress-pool`,
        );
        return g.status?.devices?.length === 3 ? g : undefined;
      },
      60_000,
    );
    const three = await group();
    expect(three.map((d) => d.hostname)).toEqual(['gw-ingress-0', 'gw-ingress-1', 'gw-ingress-2']);
    // The first two are the same nodes as before; only the new replica took a key.
    expect(three.slice(0, 2).map((d) => d.nodeId)).toEqual([zero!.nodeId, one!.nodeId]);
    expect(keyPosts() - keys).toBe(1);
    const started = performance.now();
    await scale(1);
    const left = await stack.soon(
      '1 group device on control',
      async () => {
        const g = await group();
        return g.length === 1 ? g : undefined;
      },
      45_000,
    );
    console.log(
      `ProxyGroup 3 → 1 → two devices gone from control in ${Math.round(performance.now() - started)} ms`,
    );
    expect(left.map((d) => d.nodeId)).toEqual([zero!.nodeId]);
    // None orphaned: every node control has is a device of a live replica.
    const all = await stack.admin.devices();
    expect(all.map((d) => d.hostname).sort()).toEqual([
      'default-db-egress-0',
      'default-web-egress-0',
      'gw-ingress-0',
      'web',
    ]);
    // The state Secrets of the removed replicas go too.
    await until('the removed replicas’ state Secrets deleted', async () => {
      const list = await stack.get<{ items: { metadata: { name: string } }[] }>(
        `/api/v1/namespaces/${NS}/secrets`,
      );
      const names = list.items.map((x) => x.metadata.name);
      return names.some((n) => /^ingress-pool-\w+-pg-[12]$/.test(n)) ? undefined : names;
    });
  }, 180_000);

  test('teardown: deleting the TailscaleEndpoints and the ProxyGroup removes every node the operator made', async () => {
    const started = performance.now();
    for (const path of [
      `/apis/${GROUP}/namespaces/default/tailscaleendpoints/db`,
      `/apis/${GROUP}/namespaces/default/tailscaleendpoints/web`,
      `/apis/${GROUP}/namespaces/default/tailscaleproxygroups/ingress-pool`,
    ]) {
      const r = await stack.cluster.request(path, { method: 'DELETE' });
      expect(r.status).toBeLessThan(300);
    }
    const left = await stack.soon(
      'only the lab device left on control',
      async () => {
        const d = await stack.admin.devices();
        return d.length === 1 ? d : undefined;
      },
      60_000,
    );
    console.log(
      `teardown → last proxy device gone from control in ${Math.round(performance.now() - started)} ms`,
    );
    expect(left.map((d) => d.hostname)).toEqual(['web']);
    // No auth key the operator minted can still admit a node: each was used (single-use) or deleted.
    const keys = await stack.admin.keys();
    const operatorKeys = keys.filter((k) => k.capabilities.devices.create.tags.includes('tag:k8s'));
    expect(operatorKeys.filter((k) => !k.invalid)).toEqual([]);
    // And the parents are gone, finalizers released.
    await until('the parents deleted', async () => {
      const a = await stack.cluster.request(`/apis/${GROUP}/namespaces/default/tailscaleendpoints/db`);
      const b = await stack.cluster.request(
        `/apis/${GROUP}/namespaces/default/tailscaleproxygroups/ingress-pool`,
      );
      return a.status === 404 && b.status === 404 ? true : undefined;
    });
  }, 90_000);
});
