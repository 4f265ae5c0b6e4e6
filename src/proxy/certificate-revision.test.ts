import { describe, expect, test } from 'bun:test';
import type { KubernetesObject, V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import {
  type CertificateRecord,
  certificateHash,
  certificateRecordOf,
  certificatesDigest,
  issuedCertificates,
  planCertificateRevision,
} from './certificate-revision.ts';
import { CERTIFICATES_REVISION_ANNOTATION, CERTIFICATES_SEEN_ANNOTATION } from './names.ts';
import { buildStatefulSet, type ProxySet } from './objects.ts';

const CERT_A = '-----BEGIN CERTIFICATE-----\nfirst\n-----END CERTIFICATE-----\n';
const CERT_B = '-----BEGIN CERTIFICATE-----\nrenewed\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN EC PRIVATE KEY-----\nsecret\n-----END EC PRIVATE KEY-----\n';
const b64 = (s: string) => Buffer.from(s).toString('base64');
const certSecret = (crt: string, key = KEY): V1Secret => ({
  metadata: { name: 'grafana.tail1234.ts.net' },
  type: 'kubernetes.io/tls',
  data: { 'tls.crt': b64(crt), 'tls.key': b64(key) },
});

const hashA = certificateHash(certSecret(CERT_A))!;
const hashB = certificateHash(certSecret(CERT_B))!;
const G = 'grafana.tail1234.ts.net';
const W = 'wiki.tail1234.ts.net';
const none: CertificateRecord = { seen: {} };

describe('certificate hash', () => {
  test('of tls.crt only: the key does not change it, an empty or missing certificate has none', () => {
    expect(hashA).toMatch(/^[0-9a-f]{16}$/);
    expect(hashB).not.toBe(hashA);
    expect(certificateHash(certSecret(CERT_A, 'another key'))).toBe(hashA);
    expect(certificateHash(certSecret(''))).toBeUndefined();
    expect(certificateHash({ metadata: { name: G }, data: {} } as V1Secret)).toBeUndefined();
    expect(certificateHash(undefined)).toBeUndefined();
  });
  test('issued certificates: the names given whose Secret holds one', () => {
    const secrets: Record<string, KubernetesObject> = { [G]: certSecret(CERT_A), [W]: certSecret('') };
    expect(issuedCertificates([W, G, 'gone.tail1234.ts.net'], (n) => secrets[n])).toEqual({ [G]: hashA });
  });
});

describe('when a certificate change rolls the Pods', () => {
  test('nothing issued: nothing recorded, no revision', () => {
    expect(planCertificateRevision(none, {})).toEqual({ record: { seen: {} }, renewed: [] });
  });
  test('first issuance is recorded without a roll (a read-only replica does not remember a miss)', () => {
    expect(planCertificateRevision(none, { [G]: hashA })).toEqual({
      record: { seen: { [G]: hashA } },
      renewed: [],
    });
    // Another name issued later: recorded too, the revision of an earlier renewal kept as it is.
    expect(
      planCertificateRevision({ seen: { [G]: hashB }, revision: 'r1' }, { [G]: hashB, [W]: hashA }),
    ).toEqual({ record: { seen: { [G]: hashB, [W]: hashA }, revision: 'r1' }, renewed: [] });
  });
  test('a renewal rolls: the revision becomes the digest of the certificates, the record restarts from them', () => {
    const seen = { [G]: hashA, [W]: hashA, 'gone.tail1234.ts.net': hashA };
    const plan = planCertificateRevision({ seen }, { [G]: hashB, [W]: hashA });
    expect(plan.renewed).toEqual([G]);
    expect(plan.record).toEqual({
      seen: { [G]: hashB, [W]: hashA },
      revision: certificatesDigest({ [W]: hashA, [G]: hashB }),
    });
    expect(plan.record.revision).toMatch(/^[0-9a-f]{16}$/);
    // Replanned from the record it produced (the next reconcile): stable, no second roll.
    expect(planCertificateRevision(plan.record, { [G]: hashB, [W]: hashA })).toEqual({
      record: plan.record,
      renewed: [],
    });
    // Replanned from the old record (a cache that has not seen the write yet): the same template.
    expect(planCertificateRevision({ seen }, { [G]: hashB, [W]: hashA }).record).toEqual(plan.record);
  });
  test('the next renewal changes the revision again', () => {
    const first = planCertificateRevision({ seen: { [G]: hashA } }, { [G]: hashB }).record;
    const second = planCertificateRevision(first, { [G]: hashA });
    expect(second.renewed).toEqual([G]);
    expect(second.record.revision).not.toBe(first.revision);
  });
  test('a certificate that went (Secret emptied or deleted) stays recorded, so a different one later rolls', () => {
    const gone = planCertificateRevision({ seen: { [G]: hashA }, revision: 'r1' }, {});
    expect(gone).toEqual({ record: { seen: { [G]: hashA }, revision: 'r1' }, renewed: [] });
    expect(planCertificateRevision(gone.record, { [G]: hashA }).renewed).toEqual([]);
    expect(planCertificateRevision(gone.record, { [G]: hashB }).renewed).toEqual([G]);
  });
  test('the digest depends on names and hashes, not on their order', () => {
    expect(certificatesDigest({ [G]: hashA, [W]: hashB })).toBe(
      certificatesDigest({ [W]: hashB, [G]: hashA }),
    );
    expect(certificatesDigest({ [G]: hashA, [W]: hashB })).not.toBe(
      certificatesDigest({ [G]: hashB, [W]: hashA }),
    );
  });
});

describe('the record on the StatefulSet', () => {
  const set: ProxySet = {
    base: 'shared-abc123-pg',
    namespace: 'tailscale',
    type: 'ingress',
    mode: 'userspace',
    replicas: 2,
    hostnames: ['gw-0', 'gw-1'],
    tailnet: 'corp',
    image: 'tailscale/tailscale:v1',
    app: 'app',
    serverUrl: 'https://controlplane.tailscale.com',
    labels: {},
    certShare: true,
  };
  test('absent until a certificate is issued, the revision absent until a renewal', () => {
    const sts = buildStatefulSet({ ...set, certificates: { seen: {} } });
    expect(sts.metadata?.annotations).toBeUndefined();
    expect(sts.spec?.template.metadata?.annotations).toBeUndefined();
    const issued = buildStatefulSet({ ...set, certificates: { seen: { [G]: hashA } } });
    expect(issued.metadata?.annotations).toEqual({
      [CERTIFICATES_SEEN_ANNOTATION]: JSON.stringify({ [G]: hashA }),
    });
    expect(issued.spec?.template.metadata?.annotations).toBeUndefined();
  });
  test('read back as written; an unreadable record counts as none', () => {
    const record = { seen: { [G]: hashB, [W]: hashA }, revision: 'abcdef0123456789' };
    expect(certificateRecordOf(buildStatefulSet({ ...set, certificates: record }))).toEqual(record);
    expect(certificateRecordOf(undefined)).toEqual(none);
    const edited = (value: string): V1StatefulSet => ({
      metadata: { annotations: { [CERTIFICATES_SEEN_ANNOTATION]: value } },
      spec: {
        selector: {},
        serviceName: 'x',
        template: { metadata: { annotations: { [CERTIFICATES_REVISION_ANNOTATION]: 'r1' } } },
      },
    });
    expect(certificateRecordOf(edited('not json'))).toEqual({ seen: {}, revision: 'r1' });
    expect(certificateRecordOf(edited('[1]'))).toEqual({ seen: {}, revision: 'r1' });
    expect(certificateRecordOf(edited(JSON.stringify({ [G]: 7, [W]: hashA })))).toEqual({
      seen: { [W]: hashA },
      revision: 'r1',
    });
  });
  test('never the certificate or the key, in any form', () => {
    const plan = planCertificateRevision({ seen: { [G]: hashA } }, { [G]: hashB });
    const text = JSON.stringify(buildStatefulSet({ ...set, certificates: plan.record }));
    for (const material of [CERT_A, CERT_B, KEY])
      for (const form of [material, b64(material), JSON.stringify(material).slice(1, -1)])
        expect(text).not.toContain(form);
    expect(text).not.toContain('BEGIN');
  });
});
