/**
 * Flow 6 of issue 17, the quickstart's standalone path as site/quickstart.md and site/envoy-gateway.md
 * give it, to a real tailnet device: `npm start` (from source, in a working directory holding the
 * examples), `curl localhost:8080/readyz`, `envoy-gateway certgen --local`, `envoy-gateway server
 * --config-path examples/envoy-gateway/standalone.yaml` with that config unchanged, and requests
 * through the Envoy it starts (the real one, PyPI's) to a device of the tailnet.
 *
 * The host is on the tailnet as a user's Linux machine is: tailscaled with a kernel TUN, managing the
 * host's resolver; the examples' devices `grafana` and `api-primary` are real, in a tailnet whose
 * MagicDNS domain is the examples' (test/harness/envoy-gateway/quickstart-tailnet.ts says how and
 * why). The examples run as they are but for `api-primary`'s `tailscaleIP`, set to the device's, the
 * edit site/quickstart.md tells a user to make: so `grafana` is reached by MagicDNS name, `api-primary`
 * by tailnet IP. Each device's echo server answers with the caller's address, so each answer shows it
 * came over the tailnet from the host's own tailnet address (no other process has it), with the Host
 * and path Envoy gave it.
 *
 * Then the same path twice more: with the host's UDP blocked (every packet through the lab's DERP
 * relay), and to a Tailscale Service (`svc:dash`, advertised by `grafana`) named by its MagicDNS name.
 *
 * One departure, for a shared test machine: the ports `npm start` binds come from
 * TSGW_GRPC_ADDR/TSGW_HTTP_ADDR (free ones; inside the host's network namespace the config's
 * 127.0.0.1:5005 leads to that gRPC port). The loopback stand-in this test used before is gone: an
 * `externalTarget` is what test/traffic/standalone-traffic.test.ts proves.
 *
 * Run it under `flock /tmp/tsgw-eg.lock`, as every EG test.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type QuickstartOnTailnet,
  startQuickstartOnTailnet,
} from '../harness/envoy-gateway/quickstart-tailnet.ts';
import { REPO_ROOT } from '../harness/support/binary.ts';
import { type EchoAnswer, tailnetLabUnavailable } from '../harness/tailscale/tailnet-devices.ts';

const unavailable = tailnetLabUnavailable();
if (unavailable) console.warn(`skipping the quickstart on a tailnet: ${unavailable}`);

/** GETs `path` through the Gateway listener until the device answers (Envoy's clusters warm up). */
async function untilDeviceAnswers(
  q: QuickstartOnTailnet,
  path: string,
  headers: Record<string, string>,
): Promise<EchoAnswer> {
  let last = 'no answer yet';
  for (let i = 0; i < 150; i++) {
    try {
      const response = await fetch(`${q.stack.url}${path}`, {
        headers,
        signal: AbortSignal.timeout(5_000),
      });
      const body = await response.text();
      if (response.status === 200) return JSON.parse(body) as EchoAnswer;
      last = `${response.status} ${body.slice(0, 200)}`;
    } catch (error) {
      last = String(error);
    }
    await Bun.sleep(200);
  }
  throw new Error(
    `no answer from the device through Envoy for ${headers.host}${path} (last: ${last}); the lab: ${JSON.stringify(await q.lab.netmapDisagreements())}`,
  );
}

describe.skipIf(unavailable !== undefined)('the quickstart, standalone, to a real tailnet device', () => {
  let q: QuickstartOnTailnet;

  beforeAll(async () => {
    q = await startQuickstartOnTailnet();
  }, 240_000);

  afterAll(async () => {
    await q?.stop();
  }, 60_000);

  test('the pages give the steps this test takes', () => {
    const quickstart = readFileSync(join(REPO_ROOT, 'site/quickstart.md'), 'utf8');
    expect(quickstart).toContain('\nnpm ci && npm start\n');
    expect(quickstart).toContain('curl -s localhost:8080/readyz');
    expect(quickstart).toContain('./envoy-gateway.md#standalone-no-kubernetes');
    expect(quickstart).toContain('test/traffic/quickstart-standalone.test.ts');
    const page = readFileSync(join(REPO_ROOT, 'site/envoy-gateway.md'), 'utf8');
    expect(page).toContain('\nenvoy-gateway certgen --local ');
    expect(page).toContain('\nenvoy-gateway server --config-path examples/envoy-gateway/standalone.yaml');
    // The EG config EG ran with is the repository's, byte for byte.
    const config = 'examples/envoy-gateway/standalone.yaml';
    expect(readFileSync(join(q.stack.resources, '../..', config), 'utf8')).toBe(
      readFileSync(join(REPO_ROOT, config), 'utf8'),
    );
  });

  test('npm start is up and ready: /readyz', async () => {
    expect(q.stack.ours.lines.some((line) => line.includes('"starting tailscale-gateway"'))).toBe(true);
    const response = await fetch(`${q.stack.ours.httpUrl}/readyz`);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { status: string }).status).toBe('ready');
  });

  test('the host is on the tailnet with MagicDNS as its resolver, as tailscaled sets a host up', async () => {
    const self = (await q.host.status()).Self;
    expect(self.TailscaleIPs).toContain(q.host.ip4);
    expect(readFileSync(q.host.resolvConf!, 'utf8')).toContain('nameserver 100.100.100.100');
  });

  test('by MagicDNS name: the generated route carries a request to `grafana` over the tailnet', async () => {
    const answer = await untilDeviceAnswers(q, '/tailscale/grafana/status?x=1', { host: 'api.example.com' });
    expect(answer.name).toBe('grafana');
    expect(answer.path).toBe('/status?x=1');
    expect(answer.host).toBe('grafana.tail1234.ts.net');
    // From the host's own tailnet address: Envoy's connection went into the host's tailscale0.
    expect(String(answer.remote).replace(/:\d+$/, '')).toBe(q.host.ip4);
    expect((answer.headers as Record<string, string>)['x-tailscale-service']).toBe('grafana');
  }, 60_000);

  test('by tailnet IP: the example HTTPRoute `api` and its route policy reach `api-primary`', async () => {
    const answer = await untilDeviceAnswers(q, '/hello', { host: 'api.example.com', 'x-debug': '1' });
    expect(answer.name).toBe('api-primary');
    expect(answer.path).toBe('/hello');
    // A user's HTTPRoute keeps the client's Host (the generated routes give the device's name).
    expect(answer.host).toBe('api.example.com');
    // examples/standalone/route-policy.yaml's header rule, on the route to the device.
    expect((answer.headers as Record<string, string>)['x-forwarded-by']).toBe('tailscale-gateway');
    expect((answer.headers as Record<string, string>)['x-debug']).toBeUndefined();
    expect(String(answer.remote).replace(/:\d+$/, '')).toBe(q.host.ip4);
  }, 60_000);

  test('Envoy took every update EG sent it', async () => {
    const stats = await (await fetch(`${q.stack.eg.envoy.url}/stats?filter=update_rejected`)).text();
    const rejected = [...stats.matchAll(/update_rejected: (\d+)/g)].map((m) => Number(m[1]));
    expect(rejected.length).toBeGreaterThan(0);
    expect(rejected.every((n) => n === 0)).toBe(true);
  });
});

describe.skipIf(unavailable !== undefined)(
  'the same with the host’s UDP blocked: through the DERP relay',
  () => {
    let q: QuickstartOnTailnet;

    beforeAll(async () => {
      q = await startQuickstartOnTailnet({ derpOnly: true });
    }, 240_000);

    afterAll(async () => {
      await q?.stop();
    }, 60_000);

    test('a request through Envoy reaches `grafana` by MagicDNS name, relayed', async () => {
      const sent = async () => Number((await q.lab.control.admin.derpStats()).packets_sent);
      const before = await sent();
      const answer = await untilDeviceAnswers(q, '/tailscale/grafana/status', { host: 'api.example.com' });
      expect(answer.name).toBe('grafana');
      expect(String(answer.remote).replace(/:\d+$/, '')).toBe(q.host.ip4);
      const status = JSON.parse((await q.host.tailscale('status', '--json')).stdout) as {
        Peer: Record<string, { HostName: string; CurAddr: string; Relay: string; RxBytes: number }>;
      };
      const peer = Object.values(status.Peer).find((p) => p.HostName === 'grafana');
      // No direct path: tailscaled names no current address, only its DERP region.
      expect(peer?.CurAddr).toBe('');
      expect(peer?.Relay).not.toBe('');
      expect(peer?.RxBytes).toBeGreaterThan(0);
      expect(await sent()).toBeGreaterThan(before);
    }, 60_000);
  },
);

describe.skipIf(unavailable !== undefined)('a Tailscale Service as the upstream of a standalone host', () => {
  let q: QuickstartOnTailnet;
  let vip = '';

  beforeAll(async () => {
    q = await startQuickstartOnTailnet({
      // `grafana` hosts svc:dash, serving its port 3000 (the service's TCP forwarding to its echo server).
      async prepare({ lab, grafana }) {
        const service = await lab.control.admin.putService('svc:dash', {
          ports: ['tcp:3000'],
          tags: ['tag:web'],
        });
        vip = service.addrs.find((a) => !a.includes(':')) ?? '';
        const serve = await grafana.tailscale(
          'serve',
          '--service=svc:dash',
          '--tcp=3000',
          'tcp://127.0.0.1:3000',
        );
        if (serve.code !== 0) throw new Error(`tailscale serve on grafana: ${serve.stderr}`);
        return {
          'dash.yaml': `apiVersion: gateway.tailscale.com/v1alpha1
kind: TailscaleEndpoints
metadata: { name: dash, namespace: default }
spec:
  tailnet: corp
  endpoints:
    - name: dash
      tailscaleFQDN: dash.${lab.control.domain}
      port: 3000
      protocol: HTTP
`,
        };
      },
    });
  }, 240_000);

  afterAll(async () => {
    await q?.stop();
  }, 60_000);

  test('Envoy reaches the service by its MagicDNS name, routed to its host by the VIP', async () => {
    const answer = await untilDeviceAnswers(q, '/tailscale/dash/status', { host: 'api.example.com' });
    expect(answer.name).toBe('grafana');
    expect(answer.path).toBe('/status');
    expect(answer.host).toBe(`dash.${q.lab.control.domain}`);
    // The host's route to the VIP is the service host's AllowedIPs, as control hands it out.
    const peer = Object.values((await q.host.status()).Peer ?? {}).find((p) => p.HostName === 'grafana');
    expect(peer?.AllowedIPs).toContain(`${vip}/32`);
    const stats = await (await fetch(`${q.stack.eg.envoy.url}/clusters`)).text();
    expect(stats).toContain(`tailscale/default/dash/dash::${vip}:3000::health_flags::healthy`);
  }, 60_000);
});
