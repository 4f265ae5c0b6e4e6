/**
 * `npm run bench:quickstart`: the quickstart's standalone path to a real tailnet device
 * (test/harness/envoy-gateway/quickstart-tailnet.ts, the setup of
 * test/traffic/quickstart-standalone.test.ts): the examples' devices on a lab tailnet, the host on it
 * with a kernel TUN, `npm start` and Envoy Gateway standalone with its Envoy on that host.
 *
 * Per round, on a fresh lab: the time from spawning `npm start` to its resources written, to EG's
 * Envoy ready, and to the first answer from the device `grafana` (by MagicDNS name) through Envoy;
 * then `--requests` sequential requests, each a fresh `curl` in the host's network namespace (its
 * `time_total`, so process start is not counted), alternating through Envoy (127.0.0.1:8888, the
 * generated route `/tailscale/grafana/`) and straight to the device over the tailnet
 * (its tailnet IP, port 3000; Envoy resolved the name once), one new connection each: what Envoy adds on the host, with the same
 * client and path otherwise. Prints the figures and the host's path to the device (tailscaled's
 * `CurAddr`, or its DERP region); asserts nothing. The lab's devices are on one bridge, so WireGuard
 * runs direct between namespaces; `--derp-only` takes the host's UDP away (every packet relayed).
 *
 * Usage: `flock /tmp/tsgw-eg.lock bun bench/quickstart.ts [--rounds R] [--requests N] [--derp-only]` (as root: the
 * lab; the EG lock, since Envoy Gateway binds fixed ports).
 *
 * @module
 */
import { startQuickstartOnTailnet } from '../test/harness/envoy-gateway/quickstart-tailnet.ts';

interface Args {
  rounds: number;
  requests: number;
  derpOnly: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { rounds: 3, requests: 40, derpOnly: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--rounds') args.rounds = Number(argv[++i]);
    else if (argv[i] === '--requests') args.requests = Number(argv[++i]);
    else if (argv[i] === '--derp-only') args.derpOnly = true;
    else throw new Error(`unknown argument ${argv[i]} (--rounds R, --requests N, --derp-only)`);
  }
  return args;
}

const quantile = (values: number[], q: number): number => {
  const sorted = values.toSorted((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
};

/** One `curl` in `netns`: its `time_total` in ms, or undefined unless the answer was 200. */
async function curlMs(netns: string, url: string, host?: string): Promise<number | undefined> {
  const proc = Bun.spawn(
    [
      ...['nsenter', `--net=${netns}`, '--', 'curl', '-s', '-o', '/dev/null', '-m', '5'],
      ...(host ? ['-H', `Host: ${host}`] : []),
      ...['-w', '%{http_code} %{time_total}', url],
    ],
    { stdout: 'pipe', stderr: 'ignore' },
  );
  const [out] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  const [code, seconds] = out.trim().split(' ');
  return code === '200' ? Number(seconds) * 1000 : undefined;
}

interface Round {
  resourcesMs: number;
  envoyReadyMs: number;
  firstAnswerMs: number;
  viaEnvoy: number[];
  direct: number[];
  failed: number;
  /** The host's path to `grafana` after the requests: its direct address, or `DERP <region>`. */
  path: string;
}

async function round(requests: number, derpOnly: boolean): Promise<Round> {
  const q = await startQuickstartOnTailnet({ derpOnly });
  try {
    const envoyReadyAt = performance.now();
    const resourcesAt = q.stack.ours.lines.findIndex((l) => l.includes('Envoy Gateway resources written'));
    const logged = q.stack.ours.lines[resourcesAt];
    const resourcesWall = logged ? Date.parse((JSON.parse(logged) as { time: string }).time) : Number.NaN;
    // The log line's wall clock against performance.now(): both read now, for the offset.
    const resourcesMs = resourcesWall - (Date.now() - (performance.now() - q.npmStartAt));
    const generated = `${q.stack.url}/tailscale/grafana/`;
    let firstAnswerMs = Number.NaN;
    for (let i = 0; i < 600; i++) {
      const response = await fetch(generated, {
        headers: { host: 'api.example.com' },
        signal: AbortSignal.timeout(5_000),
      }).catch(() => undefined);
      if (response?.status === 200 && ((await response.json()) as { name: string }).name === 'grafana') {
        firstAnswerMs = performance.now() - q.npmStartAt;
        break;
      }
      await Bun.sleep(20);
    }
    const viaEnvoy: number[] = [];
    const direct: number[] = [];
    let failed = 0;
    for (let i = 0; i < requests; i++) {
      const envoy = await curlMs(q.host.netns, 'http://127.0.0.1:8888/tailscale/grafana/', 'api.example.com');
      const straight = await curlMs(q.host.netns, `http://${q.grafana.ip4}:3000/`);
      if (envoy === undefined) failed++;
      else viaEnvoy.push(envoy);
      if (straight === undefined) failed++;
      else direct.push(straight);
    }
    const status = JSON.parse((await q.host.tailscale('status', '--json')).stdout) as {
      Peer: Record<string, { HostName: string; CurAddr: string; Relay: string }>;
    };
    const peer = Object.values(status.Peer).find((p) => p.HostName === 'grafana');
    return {
      path: peer?.CurAddr || `DERP ${peer?.Relay}`,
      resourcesMs,
      envoyReadyMs: envoyReadyAt - q.npmStartAt,
      firstAnswerMs,
      viaEnvoy,
      direct,
      failed,
    };
  } finally {
    await q.stop();
  }
}

const args = parseArgs(process.argv.slice(2));
const ms = (n: number) => `${n.toFixed(n < 10 ? 2 : 0)} ms`;
console.log(
  `quickstart on a tailnet: ${args.rounds} rounds, ${args.requests} requests each way per round (curl in the host's namespace, new connection each)`,
);
for (let r = 1; r <= args.rounds; r++) {
  const result = await round(args.requests, args.derpOnly);
  console.log(
    `round ${r}: npm start → resources written ${ms(result.resourcesMs)}, → Envoy ready ${ms(result.envoyReadyMs)}, → first answer from grafana ${ms(result.firstAnswerMs)}; ` +
      `through Envoy p50 ${ms(quantile(result.viaEnvoy, 0.5))} p90 ${ms(quantile(result.viaEnvoy, 0.9))}, ` +
      `direct over the tailnet p50 ${ms(quantile(result.direct, 0.5))} p90 ${ms(quantile(result.direct, 0.9))}; ${result.failed} failed; host → grafana: ${result.path}`,
  );
}
