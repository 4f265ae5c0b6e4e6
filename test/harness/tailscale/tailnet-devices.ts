/**
 * A tailnet of real tailscaled devices for tests: tailnet-control on a bridge of the lab's own, and
 * each device a userspace-networking tailscaled in a network namespace of its own (one veth on the
 * bridge, no default route, so nothing reaches the machine's uplink), with the HTTP/TCP echo server
 * (`tailnet-control echo`) on the namespace's loopback behind it: a userspace tailscaled forwards
 * connections to its tailnet addresses to 127.0.0.1 of its namespace, and `tailscale serve` targets
 * `127.0.0.1:<port>` there too. Each device's SOCKS5 server listens on its bridge address, so the test
 * process dials tailnet addresses and MagicDNS names *from* a device (`dial`, `httpGet`, `tcpLine`).
 * A `tun` device is a host on the tailnet instead: kernel TUN, tailscaled managing its DNS, so any
 * program in its namespace reaches tailnet addresses and names with plain sockets.
 *
 * Cleanup: the namespaces are anonymous (`unshare --net`), so they and their veths go with their last
 * process; watchdogs kill every process and delete the bridge when the test process dies, even by
 * SIGKILL.
 *
 * Needs root, iproute2, util-linux (unshare, nsenter) and openssl (the lab CA); `tailnetLabUnavailable()` says why not.
 *
 * @module
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import type { Subprocess } from 'bun';
import { waitUntil } from '../support/eventually.ts';
import { spawnWatchdog } from '../support/processes.ts';
import { tailscaleBuildDir } from './index.ts';
import {
  type AdminDebugNode,
  startTailnetControl,
  type TailnetControl,
  type TailnetControlOptions,
} from './tailnet-control.ts';

/** Why the lab cannot run here, or undefined when it can. */
export function tailnetLabUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'tailnet devices need root (network namespaces, veths, a bridge)';
  for (const tool of ['ip', 'unshare', 'nsenter', 'openssl'])
    if (!Bun.which(tool)) return `tailnet devices need ${tool} (iproute2 / util-linux / openssl)`;
  return undefined;
}

export interface DeviceOptions {
  /** Hostname, hence MagicDNS name `<name>.<domain>`; unique within the lab. */
  name: string;
  /** Tags of the key the lab mints (ignored with `authKey`); none makes an untagged (user) device. */
  tags?: string[];
  ephemeral?: boolean;
  /** Join with this key (e.g. one the fake Tailscale API minted) instead of one the lab mints. */
  authKey?: string;
  /** Run the echo server (HTTP on 127.0.0.1:80, TCP on 127.0.0.1:7); default true. */
  echo?: boolean;
  /** The echo server's HTTP port instead of 80 (a device standing in for a service on its own port). */
  echoHttpPort?: number;
  /** Stop after starting tailscaled, without `tailscale up` (to try keys by hand). */
  noLogin?: boolean;
  /**
   * A kernel TUN (`tailscale0` in its namespace) instead of userspace networking: the way a Linux host
   * is on a tailnet, so any program there (Envoy) reaches tailnet addresses with plain sockets, and
   * tailscaled manages DNS as on a host, writing `nameserver 100.100.100.100` into `resolvConf` (bound
   * over /etc/resolv.conf in a mount namespace of tailscaled's own; the machine's stays untouched). The
   * echo server then listens on every address of the namespace, so it sees callers' tailnet addresses.
   */
  tun?: boolean;
  /**
   * No UDP of its own (tailscaled's `TS_DEBUG_ALWAYS_USE_DERP`): every packet to and from its peers
   * goes through the lab's DERP relay, as for a host whose UDP is blocked.
   */
  derpOnly?: boolean;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface TailnetDevice {
  name: string;
  /** Its address on the lab bridge (where its SOCKS5 server listens, port 1080). */
  lanIp: string;
  /**
   * Its network namespace (`nsenter --net=<netns>`): a server started there on the loopback is what
   * its userspace tailscaled forwards tailnet connections of that port to, as for the echo server.
   */
  netns: string;
  /**
   * With `tun`: the file tailscaled sees as /etc/resolv.conf (it writes MagicDNS's resolver there at
   * `up`), for a program in the namespace to read as its own (bind it over the /etc/resolv.conf of a
   * mount namespace or chroot).
   */
  resolvConf?: string;
  /** Tailnet addresses and MagicDNS name, once logged in (`up`). */
  ip4: string;
  ip6: string;
  fqdn: string;
  /** Runs the tailscale CLI against this device's tailscaled. */
  tailscale(...args: string[]): Promise<ExecResult>;
  /** `tailscale up` against the lab's control; throws with the CLI's output when refused. */
  up(authKey: string, extraArgs?: string[]): Promise<void>;
  /** `tailscale status --json`, parsed. */
  status(): Promise<TailscaleStatus>;
  /** A TCP connection to `host:port` made from this device (tailnet IP, VIP or MagicDNS name). */
  dial(host: string, port: number): Promise<Socket>;
  /** `GET url` from this device; the echo server answers JSON naming itself. */
  httpGet(
    url: string,
    timeoutMs?: number,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: string }>;
  /**
   * `GET https://…` from this device, TLS checked against the lab CA for the URL's host name
   * (`servername` when the URL names an address, e.g. a VIP).
   */
  httpsGet(
    url: string,
    options?: { servername?: string; timeoutMs?: number },
  ): Promise<{ status: number; body: string }>;
  /**
   * Places a certificate for `domain` signed by the lab CA where this tailscaled keeps its certificates
   * (`<statedir>/certs/`), as the operator's cert Secret gives a proxy one: tailscaled then serves HTTPS
   * for the domain (it must be in control's CertDomains: the device's own name, a service's) with no
   * ACME. tailscaled trusts the lab CA (SSL_CERT_FILE), since it checks a stored certificate's chain.
   */
  placeCertificate(domain: string): void;
  /**
   * Sets the serve config the way containerboot applies its serve-config file: LocalAPI
   * `POST /localapi/v0/serve-config` (cmd/containerboot/serve.go calls `local.Client.SetServeConfig`,
   * without an ETag, so the config replaces the whole current one once tailscaled takes it). Answers
   * tailscaled's refusal (`<status>: <body>`), or undefined when it took the config.
   */
  setServeConfig(config: object): Promise<string | undefined>;
  /** The serve config tailscaled holds now (LocalAPI `GET /localapi/v0/serve-config`); `{}` for none. */
  serveConfig(): Promise<Record<string, unknown>>;
  /** Sends one line to `host:port` from this device and answers the first line back. */
  tcpLine(host: string, port: number, line: string, timeoutMs?: number): Promise<string>;
  /** Stops its processes (its namespace and veth go with them). */
  stop(): Promise<void>;
}

export interface TailscaleStatus {
  BackendState: string;
  Self: {
    ID: string;
    HostName: string;
    DNSName: string;
    TailscaleIPs?: string[];
    Online?: boolean;
    UserID?: number;
  };
  /** The users of the devices in this status, by id: an untagged device's login is its user's. */
  User?: Record<string, { LoginName: string }>;
  Peer?: Record<
    string,
    { ID: string; HostName: string; DNSName: string; TailscaleIPs?: string[]; AllowedIPs?: string[] }
  >;
}

export interface TailnetLab {
  control: TailnetControl;
  /** PEM of the lab CA: what signs `placeCertificate`'s certificates. */
  caCert: string;
  /**
   * A certificate for `domain` signed by the lab CA, PEM (`cert`, `key`): what Let's Encrypt would issue
   * a proxy, for a test to place where the proxy's tailscaled reads it (e.g. a shared cert Secret).
   */
  issueCertificate(domain: string): { cert: string; key: string };
  /** The lab bridge and its address (where control, DERP and STUN listen). */
  bridge: string;
  gateway: string;
  addDevice(options: DeviceOptions): Promise<TailnetDevice>;
  /**
   * Whether control refuses `authKey`: `tailscale up` with it on a fresh device, which is then stopped
   * (and deleted from control, if admitted). Answers the CLI's error, or undefined when admitted. A
   * fresh tailscaled each time, because one whose login failed may report that error again later.
   */
  refusal(authKey: string): Promise<string | undefined>;
  /**
   * Where a running device's view of a peer disagrees with control's table (`GET /debug/nodes`), one
   * line each; [] when every device has every other node in its netmap under control's ID, disco key
   * and home DERP region and in magicsock (WireGuard takes a peer in lazily, at its first packet, so
   * its absence there says nothing), and every node is connected to the DERP relay. A device that never answers a new peer (`open-conn-track: … lastRecv=never` on the peer)
   * shows here whether its netmap is stale (control's fault), its magicsock lost the peer (the
   * device's), or it has no relay connection; tests print it when a device cannot be reached.
   */
  netmapDisagreements(): Promise<string[]>;
  stop(): Promise<void>;
}

interface NetmapPeer {
  ID: number;
  Key: string;
  DiscoKey?: string;
  HomeDERP?: number;
}

interface StatusPeer {
  ID: string;
  PublicKey: string;
  InMagicSock?: boolean;
}

const ZERO_DISCO = `discokey:${'0'.repeat(64)}`;

/** The disagreements of one device's netmap and status with control's nodes (see netmapDisagreements). */
export function peerViewDisagreements(
  device: string,
  selfKey: string,
  nodes: AdminDebugNode[],
  netmapPeers: NetmapPeer[],
  statusPeers: StatusPeer[],
): string[] {
  const out: string[] = [];
  const inNetmap = new Map(netmapPeers.map((p) => [p.Key, p]));
  const inStatus = new Map(statusPeers.map((p) => [p.PublicKey, p]));
  for (const node of nodes) {
    if (!node.adopted || node.nodeKey === selfKey) continue;
    const what = `${device}: peer ${node.hostname} (node ${node.id})`;
    const peer = inNetmap.get(node.nodeKey);
    if (!peer) {
      out.push(`${what} is not in its netmap`);
      continue;
    }
    if (String(peer.ID) !== node.id) out.push(`${what} is node ${peer.ID} in its netmap`);
    const disco = peer.DiscoKey ?? ZERO_DISCO;
    if (disco !== node.discoKey)
      out.push(`${what} has disco key ${disco} in its netmap, control ${node.discoKey}`);
    if ((peer.HomeDERP ?? 0) !== node.homeDERP)
      out.push(`${what} has home DERP ${peer.HomeDERP ?? 0} in its netmap, control ${node.homeDERP}`);
    const status = inStatus.get(node.nodeKey);
    if (node.discoKey !== ZERO_DISCO && !status?.InMagicSock) out.push(`${what} is not in its magicsock`);
  }
  return out;
}

/** Env the tailscale integration tests give tailscaled: no logs upload, no real control, no UPnP. */
function tailscaledEnv(dir: string, control: string, caFile: string): Record<string, string> {
  return {
    SSL_CERT_FILE: caFile,
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: dir,
    TS_NO_LOGS_NO_SUPPORT: 'true',
    TS_LOGS_DIR: dir,
    TS_DISABLE_PORTMAPPER: '1',
    TS_PANIC_IF_HIT_MAIN_CONTROL: '1',
    TS_ASSUME_NETWORK_UP_FOR_TEST: '1',
    TS_DEBUG_PERMIT_HTTP_C2N: '1',
    TS_NETCHECK_GENERATE_204_URL: `${control}/generate_204`,
  };
}

function run(argv: string[]): ExecResult {
  const r = Bun.spawnSync(argv, { stdout: 'pipe', stderr: 'pipe' });
  return { code: r.exitCode ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

function must(argv: string[]): void {
  const r = run(argv);
  if (r.code !== 0) throw new Error(`${argv.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
}

/** A fresh bridge `tsgwtn<k>` with 10.251.<k>.1/24, k the first free (two labs may run at once). */
function createBridge(): { bridge: string; prefix: string } {
  for (let k = 0; k < 200; k++) {
    const bridge = `tsgwtn${k}`;
    if (existsSync(`/sys/class/net/${bridge}`)) continue;
    // A device veth of an earlier lab with this k that the kernel has not freed yet.
    if (readdirSync('/sys/class/net').some((name) => name.startsWith(`${bridge}d`))) continue;
    if (run(['ip', 'link', 'add', bridge, 'type', 'bridge']).code !== 0) continue;
    const prefix = `10.251.${k}`;
    must(['ip', 'addr', 'add', `${prefix}.1/24`, 'dev', bridge]);
    must(['ip', 'link', 'set', bridge, 'up']);
    return { bridge, prefix };
  }
  throw new Error('no free tsgwtn<k> bridge name (leaked labs? ip link del tsgwtn<k>)');
}

/** Starts a lab: a bridge, tailnet-control on it. Add devices with `addDevice`. */
export async function startTailnetLab(
  options: Omit<TailnetControlOptions, 'listen'> & {
    /**
     * Where control, DERP and STUN listen instead of the lab bridge's gateway: an address of this
     * machine other nodes reach too (the node cluster's NODE_IP, for proxy Pods). Each device gets a
     * host route to it through the bridge.
     */
    controlListen?: string;
  } = {},
): Promise<TailnetLab> {
  const unavailable = tailnetLabUnavailable();
  if (unavailable) throw new Error(unavailable);
  const bin = await tailscaleBuildDir();
  const root = mkdtempSync(join(tmpdir(), 'tsgw-tailnet-lab-'));
  makeCa(root);
  const { bridge, prefix } = createBridge();
  const bridgeWatchdog = spawnWatchdog([], root, 'tsgw-tailnet-lab-watchdog', `ip link del ${bridge}`);
  let control: TailnetControl;
  try {
    const { controlListen, ...controlOptions } = options;
    control = await startTailnetControl({ ...controlOptions, listen: controlListen ?? `${prefix}.1` });
  } catch (error) {
    bridgeWatchdog.kill();
    run(['ip', 'link', 'del', bridge]);
    rmSync(root, { recursive: true, force: true });
    throw error;
  }
  const devices: TailnetDevice[] = [];
  const stopped = new Set<TailnetDevice>();
  let next = 2;
  const lab: TailnetLab = {
    control,
    caCert: readFileSync(join(root, 'ca.crt'), 'utf8'),
    issueCertificate(domain) {
      const dir = mkdtempSync(join(root, 'issued-'));
      try {
        issueCertificate(root, domain, join(dir, 'tls.crt'), join(dir, 'tls.key'));
        return {
          cert: readFileSync(join(dir, 'tls.crt'), 'utf8'),
          key: readFileSync(join(dir, 'tls.key'), 'utf8'),
        };
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    bridge,
    gateway: `${prefix}.1`,
    async addDevice(deviceOptions) {
      const index = next++;
      if (index > 254) throw new Error('a lab holds at most 253 devices');
      const device = await startDevice(
        bin,
        control,
        root,
        bridge,
        `${prefix}.${index}`,
        index,
        deviceOptions,
        options.controlListen,
      );
      devices.push(device);
      const stop = device.stop;
      device.stop = () => {
        stopped.add(device);
        return stop();
      };
      return device;
    },
    async refusal(authKey) {
      const device = await lab.addDevice({ name: `try-${next}`, noLogin: true, echo: false });
      try {
        await device.up(authKey);
      } catch (error) {
        return (error as Error).message;
      } finally {
        await device.stop();
      }
      const listed = (await control.admin.devices()).find((d) => d.hostname === device.name);
      if (listed) await control.admin.deleteDevice(listed.id);
      return undefined;
    },
    async netmapDisagreements() {
      const nodes = await control.admin.debugNodes();
      const out = nodes
        .filter((n) => n.adopted && n.derpConnected === false)
        .map((n) => `control: ${n.hostname} (node ${n.id}) has no connection to the DERP relay`);
      const views = await Promise.all(
        devices
          .filter((device) => !stopped.has(device))
          .map(async (device) => {
            const [netmap, status] = await Promise.all([
              device.tailscale('debug', 'netmap'),
              device.tailscale('status', '--json'),
            ]);
            if (netmap.code !== 0 || status.code !== 0) return []; // not logged in (noLogin)
            const map = JSON.parse(netmap.stdout) as { Peers?: NetmapPeer[] | null };
            const st = JSON.parse(status.stdout) as {
              Self?: { PublicKey?: string };
              Peer?: Record<string, StatusPeer>;
            };
            return peerViewDisagreements(
              device.name,
              st.Self?.PublicKey ?? '',
              nodes,
              map.Peers ?? [],
              Object.values(st.Peer ?? {}),
            );
          }),
      );
      return [...out, ...views.flat()];
    },
    async stop() {
      await Promise.all(devices.map((d) => d.stop()));
      await control.stop();
      run(['ip', 'link', 'del', bridge]);
      bridgeWatchdog.kill();
      rmSync(root, { recursive: true, force: true });
    },
  };
  return lab;
}

function netnsOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return undefined;
  }
}

async function startDevice(
  bin: string,
  control: TailnetControl,
  root: string,
  bridge: string,
  lanIp: string,
  index: number,
  options: DeviceOptions,
  controlListen?: string,
): Promise<TailnetDevice> {
  const dir = join(root, options.name);
  mkdirSync(dir);
  const procs: Subprocess[] = [];
  const watchdogs: Subprocess[] = [];
  /** Each process gets a watchdog of its own as soon as it exists. */
  const track = <P extends Subprocess>(proc: P): P => {
    procs.push(proc);
    watchdogs.push(spawnWatchdog([proc.pid], '', 'tsgw-tailnet-device-watchdog'));
    return proc;
  };
  // `unshare --net sleep` unshares and then execs, so its pid holds the namespace; once it runs
  // sleep, the namespace is its own.
  const holder = track(Bun.spawn(['unshare', '--net', 'sleep', 'infinity'], { stdin: 'ignore' }));
  let stopped = false;
  const stopAll = async () => {
    if (stopped) return;
    stopped = true;
    for (const p of procs.toReversed()) p.kill('SIGTERM');
    await Promise.race([Promise.all(procs.map((p) => p.exited)), Bun.sleep(5000)]);
    for (const p of procs) p.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
    // The kernel frees a dead namespace's veth later, in a work queue; deleting the host side now
    // keeps the next lab, which may reuse this bridge's name, from finding `tsgwtn<k>d<i>` taken.
    run(['ip', 'link', 'del', `${bridge}d${index}`]);
    for (const w of watchdogs) w.kill();
  };
  try {
    const own = netnsOf(process.pid);
    await waitUntil(
      () => {
        const ns = netnsOf(holder.pid);
        return (
          ns !== undefined &&
          ns !== own &&
          readFileSync(`/proc/${holder.pid}/comm`, 'utf8').trim() === 'sleep'
        );
      },
      `the network namespace of ${options.name}`,
      10_000,
    );
    const nsenter = ['nsenter', `--net=/proc/${holder.pid}/ns/net`, '--'];
    const hostSide = `${bridge}d${index}`;
    must([
      'ip',
      'link',
      'add',
      hostSide,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      String(holder.pid),
    ]);
    must(['ip', 'link', 'set', hostSide, 'master', bridge, 'up']);
    must([...nsenter, 'ip', 'link', 'set', 'lo', 'up']);
    must([...nsenter, 'ip', 'addr', 'add', `${lanIp}/24`, 'dev', 'eth0']);
    must([...nsenter, 'ip', 'link', 'set', 'eth0', 'up']);
    if (controlListen)
      must([...nsenter, 'ip', 'route', 'add', `${controlListen}/32`, 'via', lanIp.replace(/\.\d+$/, '.1')]);

    const socket = join(dir, 'tailscaled.sock');
    const resolvConf = join(dir, 'resolv.conf');
    // No nameserver: the namespace has no route off the lab, so MagicDNS answers tailnet names and
    // nothing else (quad-100 forwards other names to the resolvers it found here: none).
    if (options.tun) writeFileSync(resolvConf, '# the lab device namespace: no resolvers\n');
    // unshare --mount makes the mounts private (util-linux's default propagation), so the bind is
    // tailscaled's alone; `set -e` keeps it from starting (and rewriting the machine's file) unbound.
    const ownResolvConf = options.tun
      ? [
          'unshare',
          '--mount',
          'sh',
          '-c',
          'set -e; mount --bind "$0" /etc/resolv.conf; exec "$@"',
          resolvConf,
        ]
      : [];
    track(
      Bun.spawn(
        [
          ...nsenter,
          ...ownResolvConf,
          join(bin, 'tailscaled'),
          options.tun ? '--tun=tailscale0' : '--tun=userspace-networking',
          `--statedir=${dir}`,
          `--socket=${socket}`,
          '--port=0',
          `--socks5-server=${lanIp}:1080`,
        ],
        {
          stdin: 'ignore',
          stdout: 'ignore',
          stderr: Bun.file(join(dir, 'tailscaled.log')),
          env: {
            ...tailscaledEnv(dir, control.control, join(root, 'ca.crt')),
            ...(options.derpOnly ? { TS_DEBUG_ALWAYS_USE_DERP: 'true' } : {}),
          },
        },
      ),
    );
    if (options.echo ?? true) {
      const echo = track(
        Bun.spawn(
          [
            ...nsenter,
            join(bin, 'tailnet-control'),
            'echo',
            '-name',
            options.name,
            '-http',
            `${options.tun ? '' : '127.0.0.1'}:${options.echoHttpPort ?? 80}`,
            '-tcp',
            options.tun ? ':7' : '127.0.0.1:7',
          ],
          { stdin: 'ignore', stdout: 'pipe', stderr: Bun.file(join(dir, 'echo.log')) },
        ),
      );
      const reader = echo.stdout.getReader();
      const first = await reader.read();
      if (first.done)
        throw new Error(
          `echo server of ${options.name} exited: ${readFileSync(join(dir, 'echo.log'), 'utf8')}`,
        );
      void (async () => {
        for (;;) if ((await reader.read().catch(() => ({ done: true }))).done) return;
      })();
    }
    await waitUntil(() => existsSync(socket), `tailscaled of ${options.name} to listen`, 15_000);

    const tailscale = async (...args: string[]): Promise<ExecResult> => {
      const proc = Bun.spawn([join(bin, 'tailscale'), `--socket=${socket}`, ...args], {
        stdin: 'ignore',
        stdout: 'pipe',
        stderr: 'pipe',
      });
      const [stdout, stderr, code] = await Promise.all([
        new Response(proc.stdout).text(),
        new Response(proc.stderr).text(),
        proc.exited,
      ]);
      return { code, stdout, stderr };
    };
    const device: TailnetDevice = {
      name: options.name,
      lanIp,
      netns: `/proc/${holder.pid}/ns/net`,
      ...(options.tun ? { resolvConf } : {}),
      ip4: '',
      ip6: '',
      fqdn: '',
      tailscale,
      async up(authKey, extraArgs = []) {
        const r = await tailscale(
          'up',
          `--login-server=${control.control}`,
          `--authkey=${authKey}`,
          `--hostname=${options.name}`,
          '--timeout=30s',
          ...extraArgs,
        );
        if (r.code !== 0)
          throw new Error(`tailscale up on ${options.name}: exit ${r.code}: ${(r.stderr + r.stdout).trim()}`);
        const self = (await device.status()).Self;
        device.ip4 = self.TailscaleIPs?.find((a) => !a.includes(':')) ?? '';
        device.ip6 = self.TailscaleIPs?.find((a) => a.includes(':')) ?? '';
        device.fqdn = self.DNSName.replace(/\.$/, '');
      },
      async status() {
        const r = await tailscale('status', '--json');
        if (r.code !== 0) throw new Error(`tailscale status on ${options.name}: ${r.stderr.trim()}`);
        return JSON.parse(r.stdout) as TailscaleStatus;
      },
      dial: (host, port) => socks5Connect(lanIp, 1080, host, port),
      httpGet: (url, timeoutMs = 10_000, headers = {}) =>
        httpGetVia(device, url, timeoutMs, undefined, headers),
      httpsGet: (url, opts = {}) =>
        httpGetVia(device, url, opts.timeoutMs ?? 10_000, {
          ca: readFileSync(join(root, 'ca.crt'), 'utf8'),
          servername: opts.servername ?? new URL(url).hostname,
        }),
      placeCertificate(domain) {
        const certs = join(dir, 'certs');
        mkdirSync(certs, { recursive: true, mode: 0o700 });
        issueCertificate(root, domain, join(certs, `${domain}.crt`), join(certs, `${domain}.key`));
      },
      async setServeConfig(config) {
        const res = await localApi(socket, 'serve-config', { method: 'POST', body: JSON.stringify(config) });
        const body = await res.text();
        return res.ok ? undefined : `${res.status}: ${body.trim()}`;
      },
      async serveConfig() {
        const res = await localApi(socket, 'serve-config');
        const body = await res.text();
        if (!res.ok) throw new Error(`serve-config of ${options.name}: ${res.status} ${body.trim()}`);
        return (JSON.parse(body) as Record<string, unknown> | null) ?? {};
      },
      tcpLine: (host, port, line, timeoutMs = 10_000) => tcpLineVia(device, host, port, line, timeoutMs),
      stop: stopAll,
    };
    if (!options.noLogin) {
      const authKey =
        options.authKey ??
        (
          await control.admin.createKey({
            tags: options.tags ?? [],
            ephemeral: options.ephemeral ?? false,
            preauthorized: true,
            description: `lab device ${options.name}`,
          })
        ).key;
      await device.up(authKey);
    }
    return device;
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/**
 * A LocalAPI request over tailscaled's socket. The Host must be `local-tailscaled.sock`, the name
 * tailscaled's LocalAPI answers to (it refuses others, and any request with an Origin or Referer).
 */
function localApi(socket: string, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`http://local-tailscaled.sock/localapi/v0/${path}`, {
    ...init,
    unix: socket,
    signal: AbortSignal.timeout(10_000),
  } as RequestInit);
}

/** What the echo server (`tailnet-control echo`) answers: its name and the request as it saw it. */
export interface EchoAnswer {
  name: string;
  path: string;
  host: string;
  [field: string]: unknown;
}

/**
 * The echo server's answer to `GET url` from `device`, or undefined when there is none (connection
 * refused or timed out, no route, another status): for tests that wait for reachability either way.
 */
export async function echoAnswer(
  device: TailnetDevice,
  url: string,
  timeoutMs = 3000,
): Promise<EchoAnswer | undefined> {
  try {
    const res = await device.httpGet(url, timeoutMs);
    return res.status === 200 ? (JSON.parse(res.body) as EchoAnswer) : undefined;
  } catch {
    return undefined;
  }
}

/** A SOCKS5 CONNECT (RFC 1928, no authentication, host by name) through `proxy:port`. */
export function socks5Connect(proxy: string, proxyPort: number, host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(proxyPort, proxy);
    let buffered = Buffer.alloc(0);
    let stage: 'greeting' | 'connect' = 'greeting';
    const fail = (why: string) => {
      socket.destroy();
      reject(new Error(`SOCKS5 via ${proxy}:${proxyPort} to ${host}:${port}: ${why}`));
    };
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (stage === 'greeting') {
        if (buffered.length < 2) return;
        if (buffered[0] !== 5 || buffered[1] !== 0)
          return fail(`greeting refused (${buffered.toString('hex')})`);
        buffered = buffered.subarray(2);
        stage = 'connect';
        const name = Buffer.from(host);
        socket.write(
          Buffer.concat([Buffer.from([5, 1, 0, 3, name.length]), name, Buffer.from([port >> 8, port & 255])]),
        );
      }
      if (buffered.length < 5) return;
      if (buffered[1] !== 0) return fail(`CONNECT failed, reply ${buffered[1]}`);
      const atyp = buffered[3];
      const length = 4 + (atyp === 1 ? 4 : atyp === 4 ? 16 : 1 + (buffered[4] ?? 0)) + 2;
      if (buffered.length < length) return;
      socket.off('data', onData);
      socket.off('error', onError);
      const rest = buffered.subarray(length);
      if (rest.length > 0) socket.unshift(rest);
      resolve(socket);
    };
    const onError = (error: Error) => fail(error.message);
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('connect', () => socket.write(Buffer.from([5, 1, 0])));
  });
}

/** Reads a socket to its end (or `timeoutMs`), as text. */
function readAll(socket: Socket, timeoutMs: number, until?: (text: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer within ${timeoutMs} ms; got ${JSON.stringify(text)}`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(text);
    };
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (until?.(text)) done();
    });
    socket.on('end', done);
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

async function httpGetVia(
  device: TailnetDevice,
  url: string,
  timeoutMs: number,
  tls?: { ca: string; servername: string },
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  const raw = await withTimeout(
    device.dial(u.hostname.replace(/^\[|\]$/g, ''), Number(u.port || (tls ? 443 : 80))),
    timeoutMs,
  );
  let socket: Socket = raw;
  if (tls) {
    const secure = tlsConnect({ socket: raw, ca: tls.ca, servername: tls.servername });
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        secure.once('secureConnect', resolve);
        secure.once('error', reject);
      }),
      timeoutMs,
    ).catch((error: Error) => {
      secure.destroy();
      throw error;
    });
    socket = secure;
  }
  // Serve's HTTP handler matches the Host header, so over TLS it is the name the certificate is for.
  const host = tls ? tls.servername : u.host;
  const extra = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  socket.write(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${host}\r\n${extra}Connection: close\r\n\r\n`);
  const text = await readAll(socket, timeoutMs);
  const head = text.slice(0, text.indexOf('\r\n\r\n'));
  let body = text.slice(head.length + 4);
  if (/^transfer-encoding:\s*chunked/im.test(head)) body = dechunk(body);
  return { status: Number(/^HTTP\/1\.\d (\d{3})/.exec(head)?.[1] ?? 0), body };
}

/**
 * An EC P-256 certificate valid two days (openssl, as test/harness/control-plane/pki.ts): self-signed,
 * or signed by `ca` (`{ cert, key }` paths); `extensions` are `-addext` values.
 */
function opensslCert(
  out: { cert: string; key: string },
  subject: string,
  extensions: string[],
  ca?: { cert: string; key: string },
): void {
  must([
    ...['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
    ...['-days', '2', '-keyout', out.key, '-out', out.cert, '-subj', subject],
    ...(ca ? ['-CA', ca.cert, '-CAkey', ca.key] : []),
    ...extensions.flatMap((e) => ['-addext', e]),
  ]);
}

/** The lab CA, `ca.crt` and `ca.key` in `dir`. */
function makeCa(dir: string): void {
  opensslCert(
    { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') },
    '/CN=tailscale-gateway tailnet lab CA',
    ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'],
  );
}

/** A server certificate for `domain` signed by the lab CA in `dir`. */
function issueCertificate(dir: string, domain: string, certPath: string, keyPath: string): void {
  opensslCert(
    { cert: certPath, key: keyPath },
    `/CN=${domain}`,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=serverAuth',
      `subjectAltName=DNS:${domain}`,
    ],
    { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') },
  );
}

function dechunk(body: string): string {
  let out = '';
  for (let rest = body; ; ) {
    const eol = rest.indexOf('\r\n');
    const size = Number.parseInt(rest.slice(0, eol), 16);
    if (!(size > 0)) return out;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 4 + size);
  }
}

async function tcpLineVia(
  device: TailnetDevice,
  host: string,
  port: number,
  line: string,
  timeoutMs: number,
): Promise<string> {
  const socket = await withTimeout(device.dial(host, port), timeoutMs);
  socket.write(`${line}\n`);
  const text = await readAll(socket, timeoutMs, (t) => t.includes('\n'));
  return text.slice(0, text.indexOf('\n'));
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    promise,
    Bun.sleep(ms).then(() => {
      throw new Error(`timed out after ${ms} ms`);
    }),
  ]);
}
