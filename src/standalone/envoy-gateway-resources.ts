/**
 * The directory Envoy Gateway's file provider reads in standalone mode, written by us from the
 * resources directory (`--envoy-gateway-resources`). Pointing Envoy Gateway (EG) at the directory a
 * person edits does not work (EG v1.9.1, internal/provider/file and internal/gatewayapi/resource):
 * - EG converts every document through its scheme and fails the whole load on a kind it does not
 *   know: a TailscaleGateway or TailscaleTailnet (which EG is never told about) is `no kind
 *   "TailscaleGateway" is registered`, and EG then loads nothing at all;
 * - EG re-translates a Gateway only when its own IR for it changes, and a TailscaleGateway edit (the
 *   generated routes) or a TailscaleEndpoints that no route names is in no IR: the edit would reach
 *   Envoy only with some unrelated change. Kubernetes mode solves this with the revision annotation on
 *   each joined Gateway (src/resources/tailscale-gateway/tailscale-gateway-trigger.ts); EG copies `gateway.envoyproxy.io/`
 *   annotations into the IR listener metadata in file mode too, so the same annotation works here;
 * - EG reads a file the moment it changes: a save that truncates first is read as an empty file, and
 *   EG deletes every object it held.
 * So we write EG one file holding exactly what it can load: every document of another API group, and
 * our TailscaleEndpoints and TailscaleRoutePolicy (the kinds EG's extensionManager declares) as served
 * (defaults applied; an invalid edit keeps its last good version; of duplicates only the served one),
 * with `gateway.envoyproxy.io/tailscale-gateway-revision` set on each Gateway a TailscaleGateway joins
 * to the digest Kubernetes mode uses. The file is replaced atomically (write a hidden temporary file,
 * which EG ignores, then rename) and only when its content changes, so EG never sees a torn file and
 * re-reads only when something changed. Our hooks read the snapshot that produced the file, which is
 * replaced before the file is written, so the translation EG starts on the new file sees it.
 *
 * @module
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { stringify } from 'yaml';
import { OperatorError } from '../errors.ts';
import { DEFAULT_NAMESPACE, type ResourceSnapshot } from '../model/resource-store.ts';
import {
  gatewayRevision,
  REVISION_ANNOTATION,
} from '../resources/tailscale-gateway/tailscale-gateway-trigger.ts';
import type { ResourceDirectory } from './resource-directory.ts';

/** The one file we own in Envoy Gateway's directory; other files there are EG's business. */
export const ENVOY_GATEWAY_FILE = 'tailscale-gateway.yaml';

/** Our kinds Envoy Gateway loads: its extensionManager's backendResources and policyResources. */
export const ENVOY_GATEWAY_KINDS: ReadonlySet<string> = new Set([
  'TailscaleEndpoints',
  'TailscaleRoutePolicy',
]);

const GATEWAY_API_PREFIX = 'gateway.networking.k8s.io/';

/**
 * Fails when Envoy Gateway's directory lies inside the resources directory (or is it): we would read
 * our own output back as input.
 */
export function checkEnvoyGatewayDirectory(resourcesDir: string, envoyGatewayDir: string): void {
  const from = relative(resolve(resourcesDir), resolve(envoyGatewayDir));
  const outside = from === '..' || from.startsWith(`..${sep}`) || isAbsolute(from);
  if (!outside)
    throw new OperatorError(
      'Invalid',
      `--envoy-gateway-resources ${envoyGatewayDir} is inside --resources ${resourcesDir}; use a directory outside it (tailscale-gateway would read its own output)`,
      { field: 'envoyGatewayResources' },
    );
}

/** The file's text: deterministic, so an unchanged directory renders byte for byte the same. */
export function renderEnvoyGatewayResources(
  directory: ResourceDirectory,
  snapshot: ResourceSnapshot,
  source: string,
): string {
  // Only written out as YAML, so any object will do: our typed resources and the untyped documents alike.
  const documents: { file: string; document: number; object: object }[] = [];
  for (const { file, document, resource } of directory.resources)
    if (ENVOY_GATEWAY_KINDS.has(resource.kind)) documents.push({ file, document, object: resource });
  for (const { file, document, object } of directory.ignored)
    documents.push({ file, document, object: withRevision(object, snapshot) });
  documents.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.document - b.document));
  // No document may be empty or comments only: EG's YAML reader stops at an empty document and fails
  // the whole file on one without apiVersion. So the header rides on the first document, and a
  // directory with nothing for EG renders as an empty file (which EG reads as no objects).
  if (documents.length === 0) return '';
  const header =
    `# Written by tailscale-gateway standalone from ${source}; do not edit: it is replaced on every change.\n` +
    '# Envoy Gateway reads it (provider.custom.resource.file.paths).\n';
  return (
    header +
    documents
      .map(({ file, document, object }) => `# ${file}#${document}\n${stringify(object, { lineWidth: 0 })}`)
      .join('---\n')
  );
}

/** A Gateway gets our revision annotation, or loses it when no TailscaleGateway joins it. */
function withRevision(object: Record<string, unknown>, snapshot: ResourceSnapshot): Record<string, unknown> {
  if (object.kind !== 'Gateway' || typeof object.apiVersion !== 'string') return object;
  if (!object.apiVersion.startsWith(GATEWAY_API_PREFIX)) return object;
  const metadata = (object.metadata ?? {}) as { name?: unknown; namespace?: unknown; annotations?: unknown };
  if (typeof metadata.name !== 'string') return object;
  const namespace = typeof metadata.namespace === 'string' ? metadata.namespace : DEFAULT_NAMESPACE;
  const revision = gatewayRevision(`${namespace}/${metadata.name}`, snapshot);
  const annotations = { ...((metadata.annotations as Record<string, string> | undefined) ?? {}) };
  if (revision === undefined) {
    if (!(REVISION_ANNOTATION in annotations)) return object;
    delete annotations[REVISION_ANNOTATION];
  } else {
    annotations[REVISION_ANNOTATION] = revision;
  }
  const { annotations: _, ...rest } = metadata;
  return {
    ...object,
    metadata: { ...rest, ...(Object.keys(annotations).length > 0 ? { annotations } : {}) },
  };
}

/**
 * Writes `text` as Envoy Gateway's file unless the file already says exactly that. Returns whether it
 * wrote. Creates the directory when missing.
 */
export async function writeEnvoyGatewayResources(dir: string, text: string): Promise<boolean> {
  const target = join(dir, ENVOY_GATEWAY_FILE);
  const existing = await readFile(target, 'utf8').catch(() => undefined);
  if (existing === text) return false;
  await mkdir(dir, { recursive: true });
  // Hidden, so EG's directory watch ignores it; the rename is what EG sees.
  const temporary = join(dir, `.${ENVOY_GATEWAY_FILE}.${process.pid}.tmp`);
  try {
    await writeFile(temporary, text, { mode: 0o644 });
    await rename(temporary, target);
  } catch (cause) {
    await rm(temporary, { force: true });
    throw new OperatorError('Transient', `cannot write ${target}: ${(cause as Error).message}`, { cause });
  }
  return true;
}
