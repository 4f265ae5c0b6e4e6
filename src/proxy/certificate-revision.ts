/**
 * When an ingress group's Pods must restart to serve a renewed shared certificate (pure).
 *
 * Why a restart at all: the replicas other than 0 (`TS_CERT_SHARE_MODE=ro`) keep a certificate in memory
 * once they have read it, and reload it only by listing the cert Secrets by label (at start, then
 * daily), which their Role does not allow on purpose (src/proxy/objects.ts, buildRole). So after replica
 * 0 renews a certificate, the others serve the old one until they restart, and fail TLS once it expires.
 * The operator rolls the group's Pods instead of asking users to: a change of the Pod template, which
 * the StatefulSet controller rolls out one Pod at a time (the PodDisruptionBudget and containerboot's
 * un-advertise on SIGTERM keep it graceful).
 *
 * Why not on the first issuance: a read-only replica caches only a certificate it found. Looking a name
 * up, it reads memory, else GETs the Secret, and writes memory only when `tls.crt` and `tls.key` are
 * both non-empty; a missing or empty Secret is a miss that is not remembered, so the next handshake
 * GETs again (ipn/store/kubestore/store_kube.go, ReadTLSCertAndKey; ipnlocal looks the certificate up
 * on every handshake). A replica that never saw a certificate for a name picks up the first one by
 * itself, and restarting every replica each time an HTTPS service is added would only cost
 * connections.
 *
 * The rule: the StatefulSet (not its template) records, per cert Secret name, a hash of the `tls.crt`
 * the running Pods may hold (`seen`). A certificate for a name not recorded yet is recorded: no
 * restart. A certificate that differs from the recorded one for its name is a renewal (or a
 * re-issuance after the Secret was emptied or re-created, while the Pods may still hold the old one):
 * the template's `revision` becomes a digest of the current certificates and `seen` restarts from
 * them, as the new Pods hold nothing older. A name whose Secret is gone or empty keeps its record until
 * that next roll, because memory is never cleared, so a later different certificate still rolls. The
 * revision is a function of the certificates alone, so a reconcile repeated on a lagging cache writes
 * the same template and never rolls twice; it stays after the last certificate goes (removing a
 * revision would be one more roll for nothing). Only names and truncated SHA-256 hashes of `tls.crt`
 * are kept: never the key, never the certificate.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { KubernetesObject, V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import { CERTIFICATES_REVISION_ANNOTATION, CERTIFICATES_SEEN_ANNOTATION } from './names.ts';

export interface CertificateRecord {
  /** Per cert Secret name, the hash of the `tls.crt` the running Pods may hold; sorted by name. */
  seen: Record<string, string>;
  /** Digest of the certificates at the last renewal roll; absent until the first renewal. */
  revision?: string;
}

export interface CertificatePlan {
  record: CertificateRecord;
  /** Names whose certificate changed from the recorded one: the Pods roll (empty: they do not). */
  renewed: string[];
}

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex').slice(0, 16);

/**
 * The hash of a cert Secret's `tls.crt` (64 bits of SHA-256: plenty to tell two certificates of one
 * name apart, and nothing of the certificate), undefined when none is issued.
 */
export function certificateHash(secret: KubernetesObject | undefined): string | undefined {
  const crt = (secret as V1Secret | undefined)?.data?.['tls.crt'];
  if (!crt) return undefined;
  const bytes = Buffer.from(crt, 'base64');
  return bytes.length > 0 ? sha256(bytes) : undefined;
}

/** Per name of `names` whose Secret holds a certificate, its hash. */
export function issuedCertificates(
  names: readonly string[],
  secretOf: (name: string) => KubernetesObject | undefined,
): Record<string, string> {
  const issued: Record<string, string> = {};
  for (const name of [...names].sort()) {
    const hash = certificateHash(secretOf(name));
    if (hash) issued[name] = hash;
  }
  return issued;
}

/** What the StatefulSet recorded; an unreadable record counts as none (nothing seen, no revision). */
export function certificateRecordOf(sts: KubernetesObject | undefined): CertificateRecord {
  const statefulSet = sts as V1StatefulSet | undefined;
  const revision = statefulSet?.spec?.template?.metadata?.annotations?.[CERTIFICATES_REVISION_ANNOTATION];
  const seen: Record<string, string> = {};
  try {
    const parsed = JSON.parse(statefulSet?.metadata?.annotations?.[CERTIFICATES_SEEN_ANNOTATION] ?? '{}');
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed))
      for (const [name, hash] of Object.entries(parsed as Record<string, unknown>))
        if (typeof hash === 'string' && hash !== '') seen[name] = hash;
  } catch {
    // Edited by hand into something else: start over from what is issued now.
  }
  return { seen, ...(revision ? { revision } : {}) };
}

const sorted = (record: Record<string, string>) =>
  Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/** The digest of a set of certificates: their names and hashes, in name order. */
export function certificatesDigest(issued: Record<string, string>): string {
  return sha256(
    Object.entries(sorted(issued))
      .map(([name, hash]) => `${name}=${hash}\n`)
      .join(''),
  );
}

/** The next record from the previous one and the certificates issued now (see the module comment). */
export function planCertificateRevision(
  previous: CertificateRecord,
  issued: Record<string, string>,
): CertificatePlan {
  const renewed = Object.keys(issued)
    .filter((name) => previous.seen[name] !== undefined && previous.seen[name] !== issued[name])
    .sort();
  if (renewed.length > 0)
    return { record: { seen: sorted(issued), revision: certificatesDigest(issued) }, renewed };
  return {
    record: {
      seen: sorted({ ...previous.seen, ...issued }),
      ...(previous.revision ? { revision: previous.revision } : {}),
    },
    renewed: [],
  };
}
