/**
 * Byte pipes between a network namespace and the host through unix sockets, which are files and so
 * reachable from both sides. Envoy Gateway binds fixed ports (18000, 18002, 8081, 8080), so two EG
 * replicas on one machine each run in a network namespace of their own (index.ts, `netns: true`); one
 * bridge runs inside it and one on the host:
 *
 * - `tcp:127.0.0.1:6443=unix:/dir/api.sock` listens on TCP and forwards each connection to the socket;
 * - `unix:/dir/api.sock=tcp:127.0.0.1:6443` listens on the socket and forwards to TCP;
 * - `unix:/dir/admin.sock=file:GLOB` forwards to the TCP `host:port` written in the newest file the
 *   glob (`*` in path segments) matches, read at each connection: Envoy's admin
 *   port is ephemeral when Envoy Gateway's Host infrastructure starts it, and func-e has Envoy write it
 *   to such a file once bound.
 *
 * So EG inside dials 127.0.0.1:<port> of the kube-apiserver and of our extension server as if they were
 * local (TLS stays end to end: the address it checks is the same), and the test dials EG's health,
 * admin and xDS ports on host ports of its choosing.
 *
 * Usage: `bun netns-bridge.ts [--watch-pid PID] SPEC...`; prints `ready` once every listener is up and
 * exits when PID is gone (or stdin closes, when not watching a PID).
 *
 * @module
 */
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { connect, createServer, type Server, Socket } from 'node:net';

type Endpoint =
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'unix'; path: string }
  | { kind: 'file'; glob: string };

function parseEndpoint(text: string): Endpoint {
  if (text.startsWith('unix:')) return { kind: 'unix', path: text.slice(5) };
  if (text.startsWith('file:')) return { kind: 'file', glob: text.slice(5) };
  const match = /^tcp:(.+):(\d+)$/.exec(text);
  if (!match) throw new Error(`not an endpoint: ${text} (tcp:HOST:PORT or unix:PATH)`);
  return { kind: 'tcp', host: match[1]!, port: Number(match[2]) };
}

/** The `host:port` in the newest file matching `glob`, or undefined while there is none. */
function addressFromFile(glob: string): { host: string; port: number } | undefined {
  const parts = glob.split('/');
  const wild = parts.findIndex((part) => part.includes('*'));
  const cwd = parts.slice(0, wild).join('/') || '/';
  if (!existsSync(cwd)) return undefined;
  const pattern = new Bun.Glob(parts.slice(wild).join('/'));
  const files = [...pattern.scanSync({ cwd, absolute: true, onlyFiles: true })];
  const newest = files.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
  const match = newest && /^(.+):(\d+)$/.exec(readFileSync(newest, 'utf8').trim());
  return match ? { host: match[1]!, port: Number(match[2]) } : undefined;
}

function dial(to: Endpoint): Socket {
  if (to.kind === 'unix') return connect(to.path);
  if (to.kind === 'tcp') return connect(to.port, to.host);
  const address = addressFromFile(to.glob);
  if (address === undefined) {
    // Nothing to reach yet: the caller sees the connection close, as with a refused one.
    const socket = new Socket();
    queueMicrotask(() => socket.destroy());
    return socket;
  }
  return connect(address.port, address.host);
}

function pipe(a: Socket, b: Socket): void {
  a.pipe(b);
  b.pipe(a);
  const close = () => {
    a.destroy();
    b.destroy();
  };
  a.on('error', close);
  b.on('error', close);
  a.on('close', close);
  b.on('close', close);
}

function listen(from: Endpoint, to: Endpoint): Promise<Server> {
  const server = createServer((socket) => pipe(socket, dial(to)));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    if (from.kind === 'unix') {
      if (existsSync(from.path)) rmSync(from.path);
      server.listen(from.path, () => resolve(server));
    } else if (from.kind === 'tcp') server.listen(from.port, from.host, () => resolve(server));
    else reject(new Error(`cannot listen on a file endpoint (${from.glob})`));
  });
}

const args = process.argv.slice(2);
let watchPid: number | undefined;
const specs: string[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--watch-pid') watchPid = Number(args[++i]);
  else specs.push(args[i]!);
}
await Promise.all(
  specs.map((spec) => {
    const [from, to] = spec.split('=');
    if (from === undefined || to === undefined) throw new Error(`not a spec: ${spec} (FROM=TO)`);
    return listen(parseEndpoint(from), parseEndpoint(to));
  }),
);
console.log('ready');
if (watchPid !== undefined) {
  const pid = watchPid;
  setInterval(() => {
    try {
      process.kill(pid, 0);
    } catch {
      process.exit(0);
    }
  }, 500);
} else {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}
