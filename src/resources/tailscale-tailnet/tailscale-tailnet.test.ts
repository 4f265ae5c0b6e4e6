import { describe, expect, test } from 'bun:test';
import type { V1Secret } from '@kubernetes/client-node';
import type { TailscaleTailnet, TailscaleTailnetStatus } from '../../api/index.ts';
import { createLogger } from '../../observability/logger.ts';
import type { TailscaleApi } from '../../tailscale/index.ts';
import { createFakeClock } from '../../time/fake-clock.ts';
import { createTailscaleTailnetReconciler, RECHECK_SUFFIX_MS } from './tailscale-tailnet.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** A tailnet whose OAuth client works, with `devices` as the API lists them now. */
function setup() {
  let tailnet = {
    apiVersion: 'gateway.tailscale.com/v1alpha1',
    kind: 'TailscaleTailnet',
    metadata: { name: 'corp', generation: 1 },
    spec: { tailnet: '-', oauthSecretRef: { name: 'oauth', namespace: 'ts' }, tags: ['tag:k8s'] },
  } as TailscaleTailnet;
  const devices: { name: string }[] = [];
  const ok = { status: 'ok' as const };
  const api = {
    probeScopes: async () => ({ devices: ok, authKeys: ok, services: ok }),
    devices: { list: async () => devices },
  } as unknown as TailscaleApi;
  const writes: TailscaleTailnetStatus[] = [];
  const reconcile = createTailscaleTailnetReconciler({
    getTailnet: () => ({ ok: true, value: tailnet, raw: tailnet }),
    getSecret: async () =>
      ({ data: { client_id: b64('id'), client_secret: b64('secret') } }) as unknown as V1Secret,
    clients: { get: () => api, current: () => api, drop: () => {} },
    writeStatus: async (_t, status) => {
      writes.push(status);
      tailnet = { ...tailnet, status };
    },
    events: { event: async () => {} } as never,
    clock: createFakeClock(),
  });
  const log = createLogger({ level: 'silent' });
  const run = () => reconcile('corp', { signal: new AbortController().signal, log });
  return { run, devices, writes };
}

describe('TailscaleTailnet reconciler', () => {
  test('Ready on a tailnet without devices: looks again until a device gives the MagicDNS suffix', async () => {
    const { run, devices, writes } = setup();
    // A fresh tailnet: the operator's own proxies will be its first devices.
    expect(await run()).toEqual({ requeueAfter: RECHECK_SUFFIX_MS });
    expect(writes.at(-1)?.conditions?.[0]).toMatchObject({ type: 'Ready', status: 'True' });
    expect(writes.at(-1)?.magicDNSSuffix).toBeUndefined();
    devices.push({ name: 'gw-0.tail1234.ts.net' });
    expect(await run()).toBeUndefined();
    expect(writes.at(-1)?.magicDNSSuffix).toBe('tail1234.ts.net');
    // Known: no more periodic looks, and no write when nothing changed.
    const count = writes.length;
    expect(await run()).toBeUndefined();
    expect(writes).toHaveLength(count);
  });
});
