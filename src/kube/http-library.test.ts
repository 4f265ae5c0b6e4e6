import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeTransport } from './http-library.ts';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsgw-transport-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function config(cluster: Record<string, unknown>, user: Record<string, unknown>): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: 'https://k8s.example:6443/', skipTLSVerify: false, ...cluster }],
    users: [{ name: 'u', ...user }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

describe('KubeTransport', () => {
  test('TLS files are cached and re-read after tlsRefreshMs, for rotation', () => {
    const caFile = join(dir, 'ca.crt');
    writeFileSync(caFile, 'CA-1');
    const transport = new KubeTransport(
      config({ caFile, tlsServerName: 'api.internal' }, { certData: btoa('CERT') }),
      {
        tlsRefreshMs: 1_000,
      },
    );
    expect(transport.tls(0)).toEqual({ ca: 'CA-1', cert: 'CERT', serverName: 'api.internal' });
    writeFileSync(caFile, 'CA-2');
    expect(transport.tls(999)?.ca).toBe('CA-1');
    expect(transport.tls(1_000)?.ca).toBe('CA-2');
    writeFileSync(caFile, 'CA-3');
    transport.invalidateTls();
    expect(transport.tls(1_001)?.ca).toBe('CA-3');
  });

  test('skip-tls-verify maps to rejectUnauthorized false; http servers get no TLS', () => {
    expect(new KubeTransport(config({ skipTLSVerify: true }, {})).tls()).toEqual({
      rejectUnauthorized: false,
    });
    expect(new KubeTransport(config({ server: 'http://127.0.0.1:8080' }, {})).tls()).toBeUndefined();
  });

  test('the server URL loses its trailing slash', () => {
    expect(new KubeTransport(config({}, {})).server).toBe('https://k8s.example:6443');
  });

  test('auth headers: bearer token, basic auth, impersonation; TLS files are not read for them', async () => {
    const missing = { caFile: join(dir, 'does-not-exist.crt') };
    const bearer = new KubeTransport(config(missing, { token: 'abc', impersonateUser: 'jane' }));
    expect(await bearer.authHeaders()).toEqual({ Authorization: 'Bearer abc', 'Impersonate-User': 'jane' });
    const basic = new KubeTransport(config({}, { username: 'admin', password: 'pw' }));
    expect(await basic.authHeaders()).toEqual({ Authorization: `Basic ${btoa('admin:pw')}` });
    expect(await new KubeTransport(config({}, { certData: btoa('CERT') })).authHeaders()).toEqual({});
  });

  test('an unreadable CA file is an Invalid error naming it', () => {
    const transport = new KubeTransport(config({ caFile: join(dir, 'gone.crt') }, {}));
    expect(() => transport.tls()).toThrow(/gone\.crt/);
  });
});
