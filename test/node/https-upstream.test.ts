/**
 * Flow 2 of issue 17, HTTPS to a tailnet service, through the real data plane on the one-node cluster
 * (test/harness/node/data-plane.ts): the device `web` runs its own TLS server on 443
 * (test/harness/tailscale/https-echo.ts) with a certificate for its MagicDNS name from the lab CA, and
 * the Envoy Pod trusts the lab CA (the system bundle our upstream TLS names, replaced by it). An
 * endpoint with protocol HTTPS and the device's name gets there over TLS; one whose name is another
 * (the same device by its tailnet IP) is refused by Envoy's name check: 503, and the device's server
 * gets no request.
 *
 * Needs what test/node/traffic.test.ts needs. Run under `flock /tmp/tsgw-node.lock`.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { clusterName } from '../../src/model/names.ts';
import { type DataPlane, startDataPlane } from '../harness/node/data-plane.ts';
import { nodeClusterUnavailable } from '../harness/node/index.ts';
import { APPS } from '../harness/node/tailnet-stack.ts';
import { type HttpsEcho, startHttpsEcho } from '../harness/tailscale/https-echo.ts';

const HOST = 'web.example.com';
const unavailable = nodeClusterUnavailable();
if (unavailable) console.warn(`skipping HTTPS-upstream-on-node tests: ${unavailable}`);

describe.skipIf(unavailable !== undefined)('flow 2: HTTPS to a tailnet service through real Envoy', () => {
  let dp: DataPlane;
  let echo: HttpsEcho;
  let wrongName = '';

  beforeAll(async () => {
    dp = await startDataPlane({
      tag: 'https',
      devices: [{ name: 'web', tags: ['tag:web'] }],
      envoyTrustsLabCa: true,
    });
    const web = dp.devices.web!;
    wrongName = `not-web.${web.fqdn.slice(web.fqdn.indexOf('.') + 1)}`;
    echo = await startHttpsEcho(dp.lab, web, { certificateFor: web.fqdn });
    await dp.applyEndpoints('tls', [
      { name: 'secure', tailscaleFQDN: web.fqdn, port: 443, protocol: 'HTTPS' },
      // The same device and port, expected under a name its certificate is not for.
      { name: 'misnamed', tailscaleFQDN: wrongName, tailscaleIP: web.ip4, port: 443, protocol: 'HTTPS' },
    ]);
    await dp.joinTailnet('/tailscale/{service}/');
    // Generated routes join the virtual hosts EG makes for the Gateway's routes: this gives it one.
    await dp.routeToEndpoints('host', { hostname: HOST, pathPrefix: '/unused', backend: 'tls' });
  }, 500_000);

  // The cluster's teardown takes longer than bun's default hook timeout (5 s), which would leave it up.
  afterAll(async () => {
    await echo?.stop();
    await dp?.stop();
  }, 180_000);

  const viaEnvoy = async (path: string) => {
    const r = await fetch(`http://${await dp.envoyAddress()}${path}`, {
      headers: { host: HOST },
      signal: AbortSignal.timeout(5000),
    });
    return { status: r.status, body: await r.text() };
  };
  /** Envoy's counters of the generated cluster of endpoint `endpoint` of `tls`, by stat name. */
  const clusterStats = (endpoint: string) => {
    const prefix = `cluster.${clusterName(APPS, 'tls', endpoint)}.`;
    const stats: Record<string, number> = {};
    for (const line of dp.envoyAdmin('/stats').split('\n')) {
      if (!line.startsWith(prefix)) continue;
      const [stat, value] = line.slice(prefix.length).split(': ');
      stats[stat!] = Number(value);
    }
    return stats;
  };
  /** The TLS and outcome counters, non-zero ones, for the log. */
  const shown = (stats: Record<string, number>) =>
    JSON.stringify(
      Object.fromEntries(
        Object.entries(stats).filter(
          ([k, v]) => v > 0 && /^(ssl\.|upstream_cx_(total|connect_fail)$|upstream_rq_\dxx$)/.test(k),
        ),
      ),
    );

  test('an HTTPS endpoint named as its certificate: Envoy reaches the device over TLS, verified by name', async () => {
    const web = dp.devices.web!;
    const answer = await dp.soon(
      'an answer from web through Envoy over TLS',
      async () => {
        const r = await viaEnvoy('/tailscale/secure/hello?x=1').catch(() => undefined);
        return r?.status === 200 ? (JSON.parse(r.body) as Record<string, string>) : undefined;
      },
      180_000,
    );
    // The device's own TLS server answered: it got the request over TLS, with the service's name as Host.
    expect(answer).toMatchObject({ name: 'web', path: '/hello?x=1', protocol: 'https:', host: web.fqdn });
    expect(echo.requests.some((r) => r.path === '/hello?x=1' && r.protocol === 'https:')).toBe(true);
    const stats = clusterStats('secure');
    console.log(`Envoy counters of cluster secure: ${shown(stats)}`);
    expect(stats['ssl.handshake']).toBeGreaterThan(0);
    expect(stats['ssl.fail_verify_san'] ?? 0).toBe(0);
  }, 240_000);

  test('an HTTPS endpoint expected under another name fails closed: 503, a SAN failure, no request at the device', async () => {
    const before = echo.requests.length;
    // The generated route of `misnamed` is in Envoy once its cluster has refused a handshake.
    const refused = await dp.soon(
      'Envoy refusing the misnamed endpoint',
      async () => {
        const r = await viaEnvoy('/tailscale/misnamed/secret').catch(() => undefined);
        return r?.status === 503 && (clusterStats('misnamed')['ssl.fail_verify_san'] ?? 0) > 0
          ? r
          : undefined;
      },
      120_000,
    );
    console.log(`misnamed: ${refused.status} ${refused.body.slice(0, 200)}`);
    for (let i = 0; i < 3; i++) expect((await viaEnvoy('/tailscale/misnamed/secret')).status).toBe(503);
    const stats = clusterStats('misnamed');
    console.log(`Envoy counters of cluster misnamed: ${shown(stats)}`);
    expect(stats['ssl.fail_verify_san']).toBeGreaterThanOrEqual(4);
    expect(stats.upstream_rq_2xx ?? 0).toBe(0);
    // The device's server saw none of them; what it saw over the same time was nothing at all.
    expect(echo.requests.slice(before).filter((r) => r.path.includes('secret'))).toEqual([]);
    expect(echo.requests.length).toBe(before);
  }, 180_000);
});
