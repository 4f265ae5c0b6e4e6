/**
 * Starts the tests' Tailscale control server (tailnet-control/, built by build-tailscale.sh) and talks
 * to its admin API. Nodes (tailscaled) log in at `control`; the fake Tailscale API, or a test, mints
 * keys and reads devices and Tailscale Services at `admin`.
 *
 * `listen` is the one IP address nodes reach control, DERP and STUN on: it goes into the DERP map. The
 * tailnet devices of tailnet-devices.ts use their bridge's address; proxy Pods on the one-node cluster
 * use the node bridge's gateway (NODE_IP). The admin API stays on loopback.
 *
 * @module
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FakeAuthKey, FakeDevice } from '../fake-tailscale/state.ts';
import { spawnWatchdog } from '../support/processes.ts';
import { tailscaleBuildDir } from './index.ts';

export interface TailnetControlOptions {
  /** IP address nodes reach; default 127.0.0.1 (only nodes in the root network namespace). */
  listen?: string;
  /** MagicDNS domain; default `tail-fake.ts.net` (the fake Tailscale API's). */
  domain?: string;
  /** An ephemeral node offline this long is removed; default 30 s (tailnet-control's default). */
  ephemeralTimeoutSeconds?: number;
  /**
   * Device approval on: a node joining with a key that is not preauthorized waits (NeedsMachineAuth)
   * until it is authorized (`admin.authorizeDevice`, the API's `POST /device/{id}/authorized`).
   */
  deviceApproval?: boolean;
  /** Log testcontrol's own chatter to the log file too. */
  verbose?: boolean;
}

export interface AdminKeyRequest {
  description?: string;
  expirySeconds?: number;
  reusable?: boolean;
  ephemeral?: boolean;
  preauthorized?: boolean;
  tags?: string[];
}

/** An auth key as the Tailscale API shows it (`key`, the secret, only on create). */
export type AdminKey = Omit<FakeAuthKey, 'key'> & { key?: string };

/** A node as the Tailscale API's device (plus `authKeyId`, the key it joined with). */
export interface AdminDevice extends FakeDevice {
  authKeyId: string;
  expires?: string;
  [field: string]: unknown;
}

export interface AdminService {
  name: string;
  addrs: string[];
  ports?: string[];
  tags?: string[];
  [field: string]: unknown;
}

/** What a node last reported over c2n and the service VIPs control routes to it. */
export interface AdminNodeServices {
  servicesHash: string;
  reported: { Name: string; Ports: string[] | null; Active: boolean }[] | null;
  routes: string[] | null;
}

/** A node as control would put it in its peers' netmaps (`GET /debug/nodes`). */
export interface AdminDebugNode {
  id: string;
  hostname: string;
  nodeKey: string;
  /** `discokey:0000…` until the node's first endpoint update. */
  discoKey: string;
  /** 0 until the node reported its preferred DERP region. */
  homeDERP: number;
  endpoints: string[];
  /** Admitted by our register (false: only in testcontrol's table, e.g. mid-registration). */
  adopted: boolean;
  streams: number;
  /** Whether the in-process DERP relay holds a connection for the node's key. */
  derpConnected?: boolean;
}

/** The admin API: no authentication, loopback only. Errors are `{message}` with a status, as the API's. */
export class TailnetAdmin {
  constructor(readonly url: string) {}

  /** One admin call; answers the status and the parsed body (undefined when empty). */
  async call(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
  }

  private async ok<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.call(method, path, body);
    if (res.status !== 200) {
      const message = (res.body as { message?: string } | undefined)?.message;
      throw new Error(`tailnet-control admin ${method} ${path}: ${res.status} ${message ?? ''}`);
    }
    return res.body as T;
  }

  createKey(request: AdminKeyRequest = {}): Promise<AdminKey & { key: string }> {
    const { description, expirySeconds, ...create } = request;
    return this.ok('POST', '/keys', {
      description,
      expirySeconds,
      capabilities: { devices: { create } },
    });
  }
  async keys(): Promise<AdminKey[]> {
    return (await this.ok<{ keys: AdminKey[] }>('GET', '/keys')).keys;
  }
  async devices(): Promise<AdminDevice[]> {
    return (await this.ok<{ devices: AdminDevice[] }>('GET', '/devices')).devices;
  }
  async deleteDevice(id: string): Promise<void> {
    await this.ok('DELETE', `/devices/${encodeURIComponent(id)}`);
  }
  async authorizeDevice(id: string, authorized = true): Promise<void> {
    await this.ok('POST', `/devices/${encodeURIComponent(id)}/authorized`, { authorized });
  }
  putService(name: string, service: Omit<AdminService, 'name' | 'addrs'> & { addrs?: string[] }) {
    return this.ok<AdminService>('PUT', `/services/${encodeURIComponent(name)}`, service);
  }
  async services(): Promise<AdminService[]> {
    return (await this.ok<{ vipServices: AdminService[] }>('GET', '/services')).vipServices;
  }
  async deleteService(name: string): Promise<void> {
    await this.ok('DELETE', `/services/${encodeURIComponent(name)}`);
  }
  nodeServices(id: string): Promise<AdminNodeServices> {
    return this.ok('GET', `/nodes/${encodeURIComponent(id)}/services`);
  }
  /** Every node of control's table with what peers need to reach it (see AdminDebugNode). */
  async debugNodes(): Promise<AdminDebugNode[]> {
    return (await this.ok<{ nodes: AdminDebugNode[] }>('GET', '/debug/nodes')).nodes;
  }
  /** The DERP relay's counters (its expvar JSON: packets forwarded, dropped by reason, clients). */
  derpStats(): Promise<Record<string, unknown>> {
    return this.ok('GET', '/debug/derp');
  }
}

export interface TailnetControl {
  /** Where nodes log in: `tailscale up --login-server=<control>`. */
  control: string;
  admin: TailnetAdmin;
  /** DERP relay `https://IP:PORT` (self-signed; the DERP map says InsecureForTests) and STUN `IP:PORT`. */
  derp: string;
  stun: string;
  domain: string;
  /** Its stderr so far (one line per join, removal and refused registration). */
  log(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Starts tailnet-control and waits for its ready line. The process is killed when this one dies
 * (watchdog), so a killed test leaves no control server behind.
 */
export async function startTailnetControl(options: TailnetControlOptions = {}): Promise<TailnetControl> {
  const bin = join(await tailscaleBuildDir(), 'tailnet-control');
  const domain = options.domain ?? 'tail-fake.ts.net';
  const dir = mkdtempSync(join(tmpdir(), 'tsgw-tailnet-control-'));
  const logPath = join(dir, 'stderr.log');
  const args = [bin, '-listen', options.listen ?? '127.0.0.1', '-domain', domain];
  if (options.ephemeralTimeoutSeconds !== undefined)
    args.push('-ephemeral-timeout', `${options.ephemeralTimeoutSeconds}s`);
  if (options.deviceApproval) args.push('-device-approval');
  if (options.verbose) args.push('-v');
  const proc = Bun.spawn(args, {
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: Bun.file(logPath),
  });
  const watchdog = spawnWatchdog([proc.pid], dir, 'tsgw-tailnet-control-watchdog');
  const fail = async (why: string) => {
    proc.kill('SIGKILL');
    const log = await Bun.file(logPath)
      .text()
      .catch(() => '');
    watchdog.kill();
    rmSync(dir, { recursive: true, force: true });
    return new Error(`tailnet-control ${why}; its log:\n${log.slice(-2000)}`);
  };
  const reader = proc.stdout.getReader();
  let text = '';
  const deadline = setTimeout(() => proc.kill('SIGKILL'), 15_000);
  try {
    while (!text.includes('\n')) {
      const { value, done } = await reader.read();
      if (done) throw await fail(`exited (${await proc.exited}) before its ready line`);
      text += new TextDecoder().decode(value);
    }
  } finally {
    clearTimeout(deadline);
  }
  // Keep draining stdout (nothing more is written, but a full pipe must never block it).
  void (async () => {
    for (;;) if ((await reader.read().catch(() => ({ done: true }))).done) return;
  })();
  const ready = JSON.parse(text.slice(0, text.indexOf('\n'))) as Record<
    'control' | 'admin' | 'derp' | 'stun',
    string
  >;
  return {
    control: ready.control,
    admin: new TailnetAdmin(ready.admin),
    derp: ready.derp,
    stun: ready.stun,
    domain,
    log: () => Bun.file(logPath).text(),
    async stop() {
      proc.kill('SIGTERM');
      const exited = await Promise.race([proc.exited, Bun.sleep(5000).then(() => undefined)]);
      if (exited === undefined) proc.kill('SIGKILL');
      await proc.exited;
      watchdog.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
