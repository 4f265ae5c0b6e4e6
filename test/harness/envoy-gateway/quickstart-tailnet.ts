/**
 * The quickstart's standalone path (site/quickstart.md) on a host that is on a tailnet, with the
 * examples' devices real: a tailnet lab (test/harness/tailscale/tailnet-devices.ts) whose MagicDNS
 * domain is the examples' `tail1234.ts.net`, with the devices `grafana` (HTTP on :3000) and
 * `api-primary` (HTTP on :8080) the examples name, and the host `gateway-host`; all three run
 * tailscaled with a kernel TUN. EG standalone and its Envoy run in the host's network namespace with
 * the resolver file the host's tailscaled manages as their /etc/resolv.conf, so Envoy reaches the
 * devices as any program on a tailnet host does: plain sockets to a 100.x address routed into
 * `tailscale0`, MagicDNS names answered by 100.100.100.100. That is how a Linux machine is on a
 * tailnet by default; userspace networking would not do, since its tailnet is reachable only through
 * tailscaled's SOCKS5/HTTP proxies, which Envoy's clusters do not use.
 *
 * The examples run unchanged but for the one edit the quickstart tells a user to make: `api-primary`'s
 * `tailscaleIP` (control hands out the addresses, so the example's 100.101.102.103 cannot be the
 * device's) becomes the device's. `grafana` is reached by its MagicDNS name alone, as the example
 * names it. The names the examples hold that are not on this tailnet (`api-standby`, `httpbin.org`)
 * stay unresolvable: MagicDNS knows no such device, and the namespace has no route off the lab.
 *
 * Used by test/traffic/quickstart-standalone.test.ts and bench/quickstart.ts. Needs root (the lab);
 * callers hold `flock /tmp/tsgw-eg.lock`.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/binary.ts';
import { startTailnetLab, type TailnetDevice, type TailnetLab } from '../tailscale/tailnet-devices.ts';
import { STANDALONE_LISTENER, type StandaloneStack, startStandaloneStack } from './standalone-stack.ts';

/** The MagicDNS domain examples/standalone/endpoints.yaml names its devices in. */
export const EXAMPLES_DOMAIN = 'tail1234.ts.net';
const ENDPOINTS = 'examples/standalone/endpoints.yaml';
const EXAMPLE_PRIMARY_IP = 'tailscaleIP: 100.101.102.103';

/** examples/standalone/endpoints.yaml with `api-primary`'s tailscaleIP set to `ip`; throws if the example changed. */
export function endpointsWithPrimaryAt(ip: string): string {
  const text = readFileSync(join(REPO_ROOT, ENDPOINTS), 'utf8');
  if (text.split(EXAMPLE_PRIMARY_IP).length !== 2)
    throw new Error(`${ENDPOINTS} no longer holds ${EXAMPLE_PRIMARY_IP} once`);
  return text.replace(EXAMPLE_PRIMARY_IP, `tailscaleIP: ${ip}`);
}

export interface QuickstartOnTailnet {
  lab: TailnetLab;
  /** The examples' devices; their echo servers answer JSON naming themselves and the caller's address. */
  grafana: TailnetDevice;
  apiPrimary: TailnetDevice;
  /** The host EG standalone and its Envoy run on (no echo server). */
  host: TailnetDevice;
  stack: StandaloneStack;
  /** `performance.now()` just before `npm start` was spawned. */
  npmStartAt: number;
  /** The Gateway listener reached straight over the lab bridge: `http://<host's lab address>:8888`. */
  directUrl: string;
  stop(): Promise<void>;
}

/** The lab and its devices, then `npm start` and EG standalone on the host (Envoy ready). */
export async function startQuickstartOnTailnet(
  options: {
    /** The host without UDP: everything between it and the devices goes through the DERP relay. */
    derpOnly?: boolean;
    /**
     * Runs once the devices are up, before `npm start`: tailnet setup of the caller's (a Tailscale
     * Service, say), answering more files for the examples' copy.
     */
    prepare?: (tailnet: { lab: TailnetLab; grafana: TailnetDevice }) => Promise<Record<string, string>>;
  } = {},
): Promise<QuickstartOnTailnet> {
  const lab = await startTailnetLab({ domain: EXAMPLES_DOMAIN });
  try {
    const grafana = await lab.addDevice({
      name: 'grafana',
      tags: ['tag:web'],
      tun: true,
      echoHttpPort: 3000,
    });
    const apiPrimary = await lab.addDevice({ name: 'api-primary', tun: true, echoHttpPort: 8080 });
    const host = await lab.addDevice({
      name: 'gateway-host',
      tun: true,
      echo: false,
      ...(options.derpOnly ? { derpOnly: true } : {}),
    });
    const more = (await options.prepare?.({ lab, grafana })) ?? {};
    const npmStartAt = performance.now();
    const stack = await startStandaloneStack({
      npmStart: true,
      files: { ...more, 'endpoints.yaml': endpointsWithPrimaryAt(apiPrimary.ip4) },
      host: { netns: host.netns, resolvConf: host.resolvConf! },
    });
    return {
      lab,
      grafana,
      apiPrimary,
      host,
      stack,
      npmStartAt,
      directUrl: `http://${host.lanIp}:${STANDALONE_LISTENER}`,
      async stop() {
        await stack.stop();
        await lab.stop();
      },
    };
  } catch (error) {
    await lab.stop();
    throw error;
  }
}
