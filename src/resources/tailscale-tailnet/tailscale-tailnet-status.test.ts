import { describe, expect, test } from 'bun:test';
import type { TailscaleTailnet } from '../../api/index.ts';
import type { ScopeCheck, ScopeProbe } from '../../tailscale/index.ts';
import { magicDNSSuffixOf } from '../../tailscale/magic-dns.ts';
import { desiredTailnetStatus, tailnetStatusEqual } from './tailscale-tailnet-status.ts';

const T0 = new Date('2026-11-26T10:00:00Z');
const T1 = new Date('2026-11-26T11:00:00Z');

const tailnet = (status?: TailscaleTailnet['status'], tailnetName = '-'): TailscaleTailnet =>
  ({
    apiVersion: 'gateway.tailscale.com/v1alpha1',
    kind: 'TailscaleTailnet',
    metadata: { name: 'corp', generation: 3 },
    spec: { tailnet: tailnetName, oauthSecretRef: { name: 'oauth', namespace: 'ts' }, tags: ['tag:k8s'] },
    ...(status ? { status } : {}),
  }) as TailscaleTailnet;

const ok: ScopeCheck = { status: 'ok' };
const probe = (overrides: Partial<ScopeProbe> = {}): ScopeProbe => ({
  devices: ok,
  authKeys: ok,
  services: ok,
  ...overrides,
});
const condition = (status: TailscaleTailnet['status'], type: string) =>
  status?.conditions?.find((c) => c.type === type);

describe('desiredTailnetStatus', () => {
  test('all scopes granted: Ready, Authenticated and every scope True, with generation and suffix', () => {
    const verdict = desiredTailnetStatus(
      tailnet(),
      { credentials: 'present', probe: probe(), magicDNSSuffix: 'tail1234.ts.net' },
      T0,
    );
    expect(verdict.ready).toBe(true);
    expect(verdict.transient).toBe(false);
    expect(verdict.status.conditions?.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Ready', 'True', 'Ready'],
      ['Authenticated', 'True', 'TokenIssued'],
      ['DevicesAccess', 'True', 'Granted'],
      ['AuthKeysAccess', 'True', 'Granted'],
      ['ServicesAccess', 'True', 'Granted'],
    ]);
    expect(verdict.status.conditions?.every((c) => c.observedGeneration === 3)).toBe(true);
    expect(verdict.status.magicDNSSuffix).toBe('tail1234.ts.net');
    expect(verdict.status.tailnet).toBeUndefined();
  });

  test('a named tailnet is reported as such', () => {
    const verdict = desiredTailnetStatus(
      tailnet(undefined, 'example.com'),
      { credentials: 'present', probe: probe() },
      T0,
    );
    expect(verdict.status.tailnet).toBe('example.com');
  });

  test('missing Secret: not authenticated, scopes not checked, Ready names the reason', () => {
    const verdict = desiredTailnetStatus(
      tailnet(),
      { credentials: 'secret-not-found', secret: 'ts/oauth' },
      T0,
    );
    expect(verdict.ready).toBe(false);
    expect(verdict.transient).toBe(false);
    expect(condition(verdict.status, 'Ready')).toMatchObject({ status: 'False', reason: 'SecretNotFound' });
    expect(condition(verdict.status, 'Ready')?.message).toContain('ts/oauth');
    expect(condition(verdict.status, 'DevicesAccess')).toMatchObject({
      status: 'Unknown',
      reason: 'NotChecked',
    });
  });

  test('missing key names the key', () => {
    const verdict = desiredTailnetStatus(
      tailnet(),
      { credentials: 'key-missing', secret: 'ts/oauth', key: 'client_secret' },
      T0,
    );
    expect(condition(verdict.status, 'Authenticated')).toMatchObject({ reason: 'SecretKeyMissing' });
    expect(condition(verdict.status, 'Authenticated')?.message).toContain('"client_secret"');
  });

  test('refused credentials are a lasting failure, not a transient one', () => {
    const refused: ScopeCheck = {
      status: 'error',
      code: 'Unauthorized',
      message: 'POST /api/v2/oauth/token: 401 invalid client',
    };
    const verdict = desiredTailnetStatus(
      tailnet(),
      { credentials: 'present', probe: probe({ devices: refused, authKeys: refused, services: refused }) },
      T0,
    );
    expect(verdict.transient).toBe(false);
    expect(condition(verdict.status, 'Ready')).toMatchObject({
      status: 'False',
      reason: 'InvalidCredentials',
    });
  });

  test('an unreachable API is transient', () => {
    const down: ScopeCheck = { status: 'error', code: 'Transient', message: 'connection refused' };
    const verdict = desiredTailnetStatus(
      tailnet(),
      { credentials: 'present', probe: probe({ devices: down, authKeys: down, services: down }) },
      T0,
    );
    expect(verdict.transient).toBe(true);
    expect(condition(verdict.status, 'Authenticated')).toMatchObject({ reason: 'APIUnreachable' });
  });

  test('one denied scope: authenticated but not ready, naming the scope', () => {
    const verdict = desiredTailnetStatus(
      tailnet(),
      {
        credentials: 'present',
        probe: probe({ services: { status: 'denied', message: 'missing scope services:read' } }),
      },
      T0,
    );
    expect(verdict.ready).toBe(false);
    expect(condition(verdict.status, 'Authenticated')?.status).toBe('True');
    expect(condition(verdict.status, 'ServicesAccess')).toMatchObject({ status: 'False', reason: 'Denied' });
    expect(condition(verdict.status, 'Ready')).toMatchObject({
      reason: 'ServicesAccessDenied',
      message: 'missing scope services:read',
    });
  });

  test('reconciling twice changes nothing: same status, transition times kept', () => {
    const observation = { credentials: 'present' as const, probe: probe() };
    const first = desiredTailnetStatus(tailnet(), observation, T0);
    const second = desiredTailnetStatus(tailnet(first.status), observation, T1);
    expect(second.status).toEqual(first.status);
    expect(tailnetStatusEqual(first.status, second.status)).toBe(true);
  });

  test('a change of state moves the transition time and is not equal', () => {
    const first = desiredTailnetStatus(
      tailnet(),
      { credentials: 'secret-not-found', secret: 'ts/oauth' },
      T0,
    );
    const second = desiredTailnetStatus(
      tailnet(first.status),
      { credentials: 'present', probe: probe() },
      T1,
    );
    expect(tailnetStatusEqual(first.status, second.status)).toBe(false);
    expect(condition(second.status, 'Ready')?.lastTransitionTime).toBe('2026-11-26T11:00:00Z');
  });

  test('the suffix learnt earlier is kept when devices cannot be listed now', () => {
    const first = desiredTailnetStatus(
      tailnet(),
      { credentials: 'present', probe: probe(), magicDNSSuffix: 'tail1.ts.net' },
      T0,
    );
    const second = desiredTailnetStatus(
      tailnet(first.status),
      { credentials: 'present', probe: probe() },
      T1,
    );
    expect(second.status.magicDNSSuffix).toBe('tail1.ts.net');
  });
});

test('magicDNSSuffixOf', () => {
  expect(magicDNSSuffixOf('web.tail1234.ts.net.')).toBe('tail1234.ts.net');
  expect(magicDNSSuffixOf('web')).toBeUndefined();
  expect(magicDNSSuffixOf(undefined)).toBeUndefined();
});
