/**
 * One Tailscale API client per TailscaleTailnet, kept while its credentials stay the same, so the OAuth
 * token is reused across reconciles (of this and every later controller), and rebuilt when the Secret
 * changes, so a rotated client secret takes effect without a restart.
 *
 * @module
 */
import type { Registry } from 'prom-client';
import type { Logger } from '../../observability/logger.ts';
import { createTailscaleClient, type TailscaleApi } from '../../tailscale/index.ts';

export interface TailnetCredentials {
  clientId: string;
  clientSecret: string;
  /** The tailnet as the API names it (`-` = the OAuth client's own). */
  tailnet: string;
}

export interface TailnetClients {
  /** The client for a TailscaleTailnet, built or rebuilt for these credentials. */
  get(tailnetObject: string, credentials: TailnetCredentials): TailscaleApi;
  /** The client last built for a TailscaleTailnet, for other controllers; undefined until it reconciled. */
  current(tailnetObject: string): TailscaleApi | undefined;
  /** Forgets a deleted TailscaleTailnet. */
  drop(tailnetObject: string): void;
}

export interface TailnetClientsOptions {
  /** Base URL of the control plane. Default https://api.tailscale.com. */
  baseUrl?: string;
  log: Logger;
  registry?: Registry;
  /** Injected in tests. Default: the real client. */
  create?: typeof createTailscaleClient;
}

export function createTailnetClients(options: TailnetClientsOptions): TailnetClients {
  const create = options.create ?? createTailscaleClient;
  const clients = new Map<string, { fingerprint: string; client: TailscaleApi }>();
  // A fingerprint, not the secret itself, decides whether credentials changed; nothing secret is kept
  // outside the client.
  const fingerprint = (c: TailnetCredentials) =>
    new Bun.CryptoHasher('sha256').update(`${c.tailnet}\0${c.clientId}\0${c.clientSecret}`).digest('hex');
  return {
    get(name, credentials) {
      const print = fingerprint(credentials);
      const existing = clients.get(name);
      if (existing?.fingerprint === print) return existing.client;
      if (existing) options.log.info({ tailnet: name }, 'credentials changed; new Tailscale API client');
      const client = create({
        ...(options.baseUrl ? { baseUrl: options.baseUrl } : {}),
        tailnet: credentials.tailnet,
        clientId: credentials.clientId,
        clientSecret: credentials.clientSecret,
        log: options.log.child({ tailnet: name }),
        ...(options.registry ? { registry: options.registry } : {}),
      });
      clients.set(name, { fingerprint: print, client });
      return client;
    },
    current: (name) => clients.get(name)?.client,
    drop(name) {
      clients.delete(name);
    },
  };
}
