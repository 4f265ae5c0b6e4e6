/**
 * `npm run bench:load`: the extension server under concurrent large calls, as an HA Envoy Gateway install
 * sends them after each change. PostTranslateModify at 1k and 10k clusters (as many route
 * configurations) with 1, 4, 8 and 32 calls in flight on one connection, while a second connection
 * sends small PostRouteModify calls one after another, the way one EG translation does by the
 * thousand. The same load goes to the raw `node:http2` echo floor (bench/echo-server.ts, with the same
 * HTTP/2 session sizing as ours) in the same run, so figures on a shared machine are compared within
 * one run, never across runs.
 *
 * Servers: the compiled binary in standalone mode on examples/standalone (real hooks), or with
 * `--source` `bun src/main.ts` (no build). Peak and idle RSS are read from /proc of each server
 * process. A benchmark, not a test: it prints figures and asserts nothing.
 *
 * Usage: `bun bench/load.ts [--source] [--rounds N] [--sizes 1000,10000] [--concurrency 1,4,8,32]
 * [--idle SECONDS] [--inflight-bytes N] [--compare OTHER-BINARY]`; `--compare` runs another build (an
 * older one, without `--grpc-inflight-bytes`) as a third server in the same run.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { PostRouteModifyRequestSchema } from '../gen/envoygateway/extension/service_pb.ts';
import { compiledBinary, REPO_ROOT } from '../test/harness/support/binary.ts';
import { translateFixture } from '../test/harness/support/xds-fixtures.ts';

const SERVICE = '/envoygateway.extension.EnvoyGatewayExtension';
const TRANSLATE = `${SERVICE}/PostTranslateModify`;
const ROUTE = `${SERVICE}/PostRouteModify`;

interface Args {
  source: boolean;
  rounds: number;
  sizes: number[];
  concurrency: number[];
  idleSeconds: number;
  /** `--grpc-inflight-bytes` for the extension server; its default when absent. */
  inflightBytes?: number;
  /** Another build to run as well (e.g. an older one, for a before/after in one run). */
  compare?: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    source: false,
    rounds: 5,
    sizes: [1_000, 10_000],
    concurrency: [1, 4, 8, 32],
    idleSeconds: 20,
  };
  for (let i = 0; i < argv.length; i++) {
    const list = () => (argv[++i] ?? '').split(',').map(Number).filter(Number.isFinite);
    if (argv[i] === '--source') args.source = true;
    else if (argv[i] === '--rounds') args.rounds = Number(argv[++i]);
    else if (argv[i] === '--sizes') args.sizes = list();
    else if (argv[i] === '--concurrency') args.concurrency = list();
    else if (argv[i] === '--idle') args.idleSeconds = Number(argv[++i]);
    else if (argv[i] === '--inflight-bytes') args.inflightBytes = Number(argv[++i]);
    else if (argv[i] === '--compare') args.compare = argv[++i];
  }
  return args;
}

interface Target {
  name: string;
  pid: number;
  port: number;
  stop(): Promise<void>;
}

/** CPU time (user + system) `pid` has used, in ms, from /proc (Linux). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command; in clock ticks (100/s).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Resident set size of `pid` in MiB, from /proc (Linux). */
function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

async function startExtensionServer(
  source: boolean,
  inflightBytes?: number,
  binary?: string,
): Promise<Target> {
  const command =
    binary !== undefined
      ? [binary]
      : source
        ? [process.execPath, join(REPO_ROOT, 'src/main.ts')]
        : [await compiledBinary()];
  const child = Bun.spawn(
    [
      ...command,
      'standalone',
      '--resources',
      'examples/standalone',
      '--grpc-addr',
      '127.0.0.1:0',
      '--http-addr',
      '127.0.0.1:0',
      ...(inflightBytes === undefined ? [] : ['--grpc-inflight-bytes', String(inflightBytes)]),
    ],
    { cwd: REPO_ROOT, stdin: 'ignore', stdout: 'pipe', stderr: 'inherit' },
  );
  // Successful calls are not logged, so info costs nothing under load; its listening line names the port.
  const decoder = new TextDecoder();
  let buffer = '';
  let port = 0;
  const reader = child.stdout.getReader();
  while (port === 0) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.includes('"extension server listening"')) continue;
      port = Number(new URL((JSON.parse(line) as { url: string }).url).port);
    }
  }
  if (port === 0) throw new Error(`extension server did not report its port:\n${buffer.slice(-2000)}`);
  void (async () => {
    // Keep draining stdout so the child never blocks on a full pipe.
    for (;;) if ((await reader.read()).done) return;
  })();
  return {
    name:
      binary !== undefined
        ? `compared build (${binary})`
        : source
          ? 'extension server (bun src/main.ts)'
          : 'extension server (compiled binary)',
    pid: child.pid,
    port,
    async stop() {
      child.kill('SIGTERM');
      await child.exited;
    },
  };
}

async function startEcho(): Promise<Target> {
  const child = Bun.spawn([process.execPath, join(import.meta.dir, 'echo-server.ts')], {
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'inherit',
  });
  const { value } = await child.stdout.getReader().read();
  const { port } = JSON.parse(new TextDecoder().decode(value)) as { port: number };
  return {
    name: 'raw node:http2 echo',
    pid: child.pid,
    port,
    async stop() {
      child.stdin.end();
      await child.exited;
    },
  };
}

const CHANNEL_OPTIONS = {
  'grpc.max_receive_message_length': -1,
  'grpc.max_send_message_length': -1,
  // A connection of its own per client, as two EG replicas (or EG and a benchmark) would have.
  'grpc.use_local_subchannel_pool': 1,
};

function call(client: grpc.Client, path: string, request: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      request,
      (error, response) => (error ? reject(error) : resolve(response!)),
    );
  });
}

const quantile = (sorted: number[], q: number): number =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

interface Row {
  target: string;
  clusters: number;
  concurrency: number;
  calls: number;
  failed: number;
  errors: Map<string, number>;
  large: { p50: number; p99: number };
  small: { calls: number; failed: number; p50: number; p99: number };
  peakRss: number;
  /** Server CPU time over the run divided by the large calls (small calls included). */
  cpuPerCall: number;
}

async function run(
  target: Target,
  clusters: number,
  request: Buffer,
  small: Buffer,
  concurrency: number,
  rounds: number,
): Promise<Row> {
  const large = new grpc.Client(
    `127.0.0.1:${target.port}`,
    grpc.credentials.createInsecure(),
    CHANNEL_OPTIONS,
  );
  const smalls = new grpc.Client(
    `127.0.0.1:${target.port}`,
    grpc.credentials.createInsecure(),
    CHANNEL_OPTIONS,
  );
  try {
    // Warm both connections (and the server's JIT) outside the figures.
    await call(large, TRANSLATE, request);
    for (let i = 0; i < 20; i++) await call(smalls, ROUTE, small);
    let peakRss = rssMiB(target.pid);
    const cpuBefore = cpuMs(target.pid);
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, rssMiB(target.pid));
    }, 25);
    const largeTimes: number[] = [];
    const smallTimes: number[] = [];
    const errors = new Map<string, number>();
    let failed = 0;
    let smallFailed = 0;
    let done = false;
    const smallLoop = (async () => {
      while (!done) {
        const started = performance.now();
        try {
          await call(smalls, ROUTE, small);
          smallTimes.push(performance.now() - started);
        } catch {
          smallFailed++;
        }
      }
    })();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        for (let r = 0; r < rounds; r++) {
          const started = performance.now();
          try {
            const response = await call(large, TRANSLATE, request);
            if (response.byteLength < request.byteLength - 64) throw new Error('short response');
            largeTimes.push(performance.now() - started);
          } catch (error) {
            failed++;
            const message = (error as Error).message.slice(0, 100);
            errors.set(message, (errors.get(message) ?? 0) + 1);
          }
        }
      }),
    );
    done = true;
    await smallLoop;
    clearInterval(sampler);
    const cpuPerCall = (cpuMs(target.pid) - cpuBefore) / (concurrency * rounds);
    largeTimes.sort((a, b) => a - b);
    smallTimes.sort((a, b) => a - b);
    return {
      target: target.name,
      clusters,
      concurrency,
      calls: concurrency * rounds,
      failed,
      errors,
      large: { p50: quantile(largeTimes, 0.5), p99: quantile(largeTimes, 0.99) },
      small: {
        calls: smallTimes.length,
        failed: smallFailed,
        p50: quantile(smallTimes, 0.5),
        p99: quantile(smallTimes, 0.99),
      },
      peakRss,
      cpuPerCall,
    };
  } finally {
    large.close();
    smalls.close();
  }
}

export async function benchLoad(args: Args): Promise<void> {
  const small = Buffer.from(
    toBinary(
      PostRouteModifyRequestSchema,
      create(PostRouteModifyRequestSchema, {
        route: {
          name: 'httproute/default/app/rule/0/match/0/app_example_com',
          match: { pathSpecifier: { case: 'prefix', value: '/' } },
          action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: 'app' } } },
        },
      }),
    ),
  );
  const targets = [await startEcho(), await startExtensionServer(args.source, args.inflightBytes)];
  if (args.compare !== undefined) targets.push(await startExtensionServer(false, undefined, args.compare));
  const idleBefore = new Map(targets.map((t) => [t.name, rssMiB(t.pid)]));
  const rows: Row[] = [];
  try {
    for (const clusters of args.sizes) {
      const request = Buffer.from(translateFixture(clusters).request);
      for (const concurrency of args.concurrency) {
        for (const target of targets) {
          rows.push(await run(target, clusters, request, small, concurrency, args.rounds));
        }
      }
    }
    await Bun.sleep(args.idleSeconds * 1000);
    const mib = (n: number) => n.toFixed(0);
    console.log(
      `Extension server under concurrent PostTranslateModify calls; ${args.rounds} rounds per caller; load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')} on ${navigator.hardwareConcurrency} cores`,
    );
    console.log(
      '| server | clusters | in flight | calls | failed | large p50 / p99 ms | server CPU ms per large call | small calls | small p50 / p99 ms | peak RSS MiB |',
    );
    console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const row of rows) {
      console.log(
        `| ${row.target} | ${row.clusters.toLocaleString('en')} | ${row.concurrency} | ${row.calls} | ${row.failed} | ` +
          `${row.large.p50.toFixed(0)} / ${row.large.p99.toFixed(0)} | ${row.cpuPerCall.toFixed(1)} | ${row.small.calls}${row.small.failed ? ` (${row.small.failed} failed)` : ''} | ` +
          `${row.small.p50.toFixed(1)} / ${row.small.p99.toFixed(1)} | ${mib(row.peakRss)} |`,
      );
    }
    for (const row of rows) {
      for (const [message, count] of row.errors)
        console.log(`  ${row.target} ${row.clusters}×${row.concurrency}: ${count}× ${message}`);
    }
    for (const target of targets) {
      console.log(
        `${target.name}: RSS ${mib(idleBefore.get(target.name) ?? 0)} MiB before, ${mib(rssMiB(target.pid))} MiB ${args.idleSeconds} s after the load`,
      );
    }
  } finally {
    await Promise.all(targets.map((t) => t.stop()));
  }
}

if (import.meta.main) await benchLoad(parseArgs(process.argv.slice(2)));
