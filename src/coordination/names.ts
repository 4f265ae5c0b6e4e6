/**
 * Tailscale Service names for published backends.
 *
 * One function, used both by the coordinator (the name it registers) and by the ingress proxies (the
 * name they put in `AdvertiseServices`), so the two can never disagree. The name depends on the backend
 * string alone, so every cluster publishing the same backend arrives at the same service.
 *
 * @module
 */

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const HASH_HEX = 8;

/**
 * `svc:` + a valid DNS label for `backend`.
 *
 * - A backend that already is a DNS label (case aside) keeps its name: `api` → `svc:api`, so the
 *   MagicDNS name people type stays readable. A leading `svc:` is dropped first (`svc:api` → `svc:api`,
 *   never `svc:svc-api`).
 * - Anything else is lowercased, every run of characters outside `[a-z0-9]` becomes one `-`, and the
 *   first 8 hex digits of the SHA-256 of the lowercased backend are appended: `default/web:8080` →
 *   `svc:default-web-8080-1a2b3c4d`. The suffix keeps lossy inputs apart (`a/b` and `a.b` would
 *   otherwise both be `a-b`); the readable part is cut so the label stays within 63 characters.
 *
 * @throws TypeError for an empty backend.
 */
export function serviceNameFor(backend: string): string {
  const trimmed = backend.trim().replace(/^svc:/i, '');
  if (trimmed === '') throw new TypeError('serviceNameFor: empty backend');
  const lower = trimmed.toLowerCase();
  if (LABEL.test(lower)) return `svc:${lower}`;
  const hash = new Bun.CryptoHasher('sha256').update(lower).digest('hex').slice(0, HASH_HEX);
  const readable = lower
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63 - HASH_HEX - 1)
    .replace(/-+$/, '');
  return `svc:${readable === '' ? 'backend' : readable}-${hash}`;
}

/** Whether `name` is `svc:` + a DNS label, the form the API accepts. */
export function isServiceName(name: string): boolean {
  return name.startsWith('svc:') && LABEL.test(name.slice(4));
}
