/**
 * The TailscaleTailnet reconciler: checks that a tailnet's OAuth client works and can do what the
 * operator needs, and says so in status. It owns nothing outside Kubernetes, so it needs no finalizer.
 *
 * Level-triggered: every reconcile re-reads the object and its Secret from the caches, probes the API,
 * computes the status with `desiredTailnetStatus`, and writes it only when it changed — in the steady
 * state a reconcile costs a few read calls to Tailscale and no write at all.
 *
 * @module
 */

import type { V1Secret } from '@kubernetes/client-node';
import type { Checked, TailscaleTailnet, TailscaleTailnetStatus } from '../../api/index.ts';
import type { Clock, EventRecorder, ReconcileResult, Reconciler } from '../../controller-runtime/index.ts';
import { recordReadyTransition } from '../../controller-runtime/index.ts';
import { magicDNSSuffixOf } from '../../tailscale/magic-dns.ts';
import type { SecretRef } from './secret-watches.ts';
import type { TailnetClients } from './tailnet-clients.ts';
import {
  CLIENT_ID_KEY,
  CLIENT_SECRET_KEY,
  desiredTailnetStatus,
  type TailnetObservation,
  tailnetStatusEqual,
} from './tailscale-tailnet-status.ts';

/** How long a tailnet with a lasting problem (bad credentials, denied scope) waits before the next check. */
export const RECHECK_FAILED_MS = 5 * 60_000;
/**
 * How soon a Ready tailnet whose MagicDNS suffix is not known yet looks again. The suffix is read off a
 * device's name, so a tailnet with no device yet (a fresh one, whose first devices are this operator's
 * own proxies) has none at its first check; without another look, every mode-HTTP Tailscale Service
 * (served under `<name>.<suffix>`) would wait for it until the next restart.
 */
export const RECHECK_SUFFIX_MS = 10_000;

export interface TailscaleTailnetReconcilerOptions {
  /** The TailscaleTailnet cache (cluster-scoped, so looked up by name alone). */
  getTailnet(name: string): Checked<TailscaleTailnet> | undefined;
  /** The referenced Secret, from a watch on exactly that Secret. */
  getSecret(ref: SecretRef, signal: AbortSignal): Promise<V1Secret | undefined>;
  clients: TailnetClients;
  writeStatus(tailnet: TailscaleTailnet, status: TailscaleTailnetStatus, signal: AbortSignal): Promise<void>;
  events: EventRecorder;
  clock: Clock;
}

export function createTailscaleTailnetReconciler(options: TailscaleTailnetReconcilerOptions): Reconciler {
  return async (name, { signal, log }): Promise<ReconcileResult | undefined> => {
    const checked = options.getTailnet(name);
    if (!checked) {
      options.clients.drop(name);
      return undefined;
    }
    if (!checked.ok) {
      // The CRD admits only valid objects; this guards against a CRD older than this binary.
      log.error({ issues: checked.issues }, 'TailscaleTailnet does not match the schema; skipping');
      return undefined;
    }
    const { value: tailnet, raw } = checked;
    const observation = await observe(tailnet, signal);
    const verdict = desiredTailnetStatus(tailnet, observation, new Date(options.clock.now()));
    if (!tailnetStatusEqual(tailnet.status, verdict.status)) {
      await options.writeStatus(tailnet, verdict.status, signal);
      recordReadyTransition(options.events, raw, tailnet.status?.conditions, verdict, 'Probe');
      log.info({ ready: verdict.ready, reason: verdict.status.conditions?.[0]?.reason }, 'status updated');
    }
    if (verdict.transient) return { requeue: true };
    if (!verdict.ready) return { requeueAfter: RECHECK_FAILED_MS };
    return verdict.status.magicDNSSuffix ? undefined : { requeueAfter: RECHECK_SUFFIX_MS };
  };

  async function observe(tailnet: TailscaleTailnet, signal: AbortSignal): Promise<TailnetObservation> {
    const ref = tailnet.spec.oauthSecretRef;
    const where = `${ref.namespace}/${ref.name}`;
    const secret = await options.getSecret(ref, signal);
    if (!secret) return { credentials: 'secret-not-found', secret: where };
    const clientId = secretValue(secret, CLIENT_ID_KEY);
    if (!clientId) return { credentials: 'key-missing', secret: where, key: CLIENT_ID_KEY };
    const clientSecret = secretValue(secret, CLIENT_SECRET_KEY);
    if (!clientSecret) return { credentials: 'key-missing', secret: where, key: CLIENT_SECRET_KEY };
    const client = options.clients.get(tailnet.metadata.name, {
      clientId,
      clientSecret,
      tailnet: tailnet.spec.tailnet,
    });
    const probe = await client.probeScopes({ signal });
    let magicDNSSuffix: string | undefined;
    if (probe.devices.status === 'ok') {
      // The probe proved the scope; one device's MagicDNS name gives the suffix. Best effort.
      const devices = await client.devices.list({ signal }).catch(() => []);
      magicDNSSuffix = devices.map((d) => magicDNSSuffixOf(d.name)).find((s) => s !== undefined);
    }
    return { credentials: 'present', probe, ...(magicDNSSuffix ? { magicDNSSuffix } : {}) };
  }
}

/** A Secret value, decoded; empty values count as missing. */
function secretValue(secret: V1Secret, key: string): string | undefined {
  const encoded = secret.data?.[key];
  if (!encoded) return undefined;
  const value = Buffer.from(encoded, 'base64').toString('utf8').trim();
  return value === '' ? undefined : value;
}
