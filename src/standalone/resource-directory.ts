/**
 * Reads the resources standalone mode serves from a directory of YAML files (many documents each).
 * Every problem is reported with its file, document index, object and field, so a person can fix the
 * file without guessing; valid documents are kept, and a file that no longer parses keeps the documents
 * it had at the last good read, so one bad save never empties what the extension server serves.
 *
 * A zero-byte file that had documents counts as a save in progress, not as "no objects": editors that
 * truncate and then write leave the file empty for a moment, and however long that moment is (a slow
 * disk, a network filesystem), reading it as valid-and-empty would drop its objects and leave the next
 * bad write with nothing to fall back on. Deleting the file, or its documents, removes objects.
 *
 * Of several documents with the same kind, namespace and name, the first in path order (byte-wise
 * relative path, then document index) is served and each later one is a problem and not served, so
 * what is served never depends on which file was saved last.
 *
 * @module
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { LineCounter, parseAllDocuments } from 'yaml';
import { type AnyResource, GROUP, validateResource } from '../api/index.ts';
import { OperatorError } from '../errors.ts';

export interface LoadedResource {
  /** Path relative to the directory. */
  file: string;
  /** Zero-based index of the YAML document within the file. */
  document: number;
  resource: AnyResource;
}

export interface ResourceProblem {
  file: string;
  document?: number;
  /** The object the problem is about, as far as the document names it. */
  kind?: string;
  namespace?: string;
  name?: string;
  /** Dotted field path, when the problem is about one field. */
  field?: string;
  message: string;
}

/** A document of another API group (Gateway API, core), which Envoy Gateway reads and we skip. */
export interface OtherDocument {
  file: string;
  document: number;
  kind: string;
  /** The document as parsed, for the directory Envoy Gateway reads (envoy-gateway-resources.ts). */
  object: Record<string, unknown>;
}

export interface ResourceDirectory {
  resources: LoadedResource[];
  problems: ResourceProblem[];
  ignored: OtherDocument[];
}

const YAML_FILE = /\.ya?ml$/i;

/** Lists YAML files under `dir`, recursively, in a stable order. */
export async function listYamlFiles(dir: string): Promise<string[]> {
  const info = await stat(dir).catch((cause) => {
    throw new OperatorError('Invalid', `--resources ${dir} cannot be read: ${cause.code ?? cause}`, {
      cause,
    });
  });
  if (!info.isDirectory()) throw new OperatorError('Invalid', `--resources ${dir} is not a directory`);
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && YAML_FILE.test(e.name) && !e.name.startsWith('.'))
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

/**
 * Loads every file. `previous`, when given, supplies the last good documents of files that now fail to
 * parse as YAML.
 */
export async function loadResourceDirectory(
  dir: string,
  previous?: ResourceDirectory,
): Promise<ResourceDirectory> {
  const result: ResourceDirectory = { resources: [], problems: [], ignored: [] };
  const keepLastGood = (file: string) => {
    result.resources.push(...(previous?.resources.filter((r) => r.file === file) ?? []));
    result.ignored.push(...(previous?.ignored.filter((r) => r.file === file) ?? []));
  };
  for (const file of await listYamlFiles(dir)) {
    const text = await readFile(join(dir, file), 'utf8');
    if (text.length === 0) {
      const kept =
        (previous?.resources.filter((r) => r.file === file).length ?? 0) +
        (previous?.ignored.filter((r) => r.file === file).length ?? 0);
      if (kept > 0) {
        result.problems.push({
          file,
          message: `file is empty (a save in progress?); serving its last good ${plural(kept, 'document')} until it has content again (delete the file to remove them)`,
        });
        keepLastGood(file);
      }
      continue;
    }
    const parsed = parseFile(file, text, previous);
    if (parsed.syntaxError) {
      result.problems.push(parsed.syntaxError);
      keepLastGood(file);
      continue;
    }
    for (const item of parsed.items) {
      if ('problem' in item) result.problems.push(item.problem);
      else if ('ignored' in item) result.ignored.push(item.ignored);
      else result.resources.push(item.loaded);
    }
  }
  const { unique, problems } = withoutDuplicates(result.resources);
  result.resources = unique;
  result.problems.push(...problems);
  return result;
}

/** `1 problem`, `2 problems`. */
export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

type Item = { loaded: LoadedResource } | { problem: ResourceProblem } | { ignored: OtherDocument };

/** The kind, namespace and name a raw document names, for problem reports. */
function objectOf(raw: Record<string, unknown>): Pick<ResourceProblem, 'kind' | 'namespace' | 'name'> {
  const metadata = raw.metadata as { name?: unknown; namespace?: unknown } | undefined;
  return {
    ...(typeof raw.kind === 'string' ? { kind: raw.kind } : {}),
    ...(typeof metadata?.namespace === 'string' ? { namespace: metadata.namespace } : {}),
    ...(typeof metadata?.name === 'string' ? { name: metadata.name } : {}),
  };
}

/**
 * The previously loaded resource with the same kind, namespace and name, so an edit that breaks an
 * object does not take it away from the extension server.
 */
function previousVersion(
  previous: ResourceDirectory | undefined,
  raw: Record<string, unknown>,
): LoadedResource | undefined {
  const metadata = raw.metadata as { name?: unknown; namespace?: unknown } | undefined;
  if (!previous || typeof metadata?.name !== 'string') return undefined;
  return previous.resources.find(
    ({ resource }) =>
      resource.kind === raw.kind &&
      resource.metadata.name === metadata.name &&
      (resource.metadata.namespace ?? '') ===
        (typeof metadata.namespace === 'string' ? metadata.namespace : ''),
  );
}

function parseFile(
  file: string,
  text: string,
  previous: ResourceDirectory | undefined,
): { items: Item[]; syntaxError?: ResourceProblem } {
  const lineCounter = new LineCounter();
  const documents = parseAllDocuments(text, { prettyErrors: false, lineCounter });
  if (!Array.isArray(documents)) return { items: [] };
  const items: Item[] = [];
  for (const [document, doc] of documents.entries()) {
    const error = doc.errors[0];
    if (error) {
      const { line } = lineCounter.linePos(error.pos[0]);
      return {
        items: [],
        syntaxError: {
          file,
          document,
          message: `YAML syntax error${line ? ` at line ${line}` : ''}: ${error.message}`,
        },
      };
    }
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    if (typeof value !== 'object' || Array.isArray(value)) {
      items.push({ problem: { file, document, message: 'expected a Kubernetes object (a YAML mapping)' } });
      continue;
    }
    const { apiVersion, kind } = value as { apiVersion?: unknown; kind?: unknown };
    if (typeof apiVersion === 'string' && !apiVersion.startsWith(`${GROUP}/`)) {
      items.push({
        ignored: { file, document, kind: String(kind), object: value as Record<string, unknown> },
      });
      continue;
    }
    const checked = validateResource(value);
    if (checked.ok) {
      items.push({ loaded: { file, document, resource: checked.resource } });
    } else {
      const raw = value as Record<string, unknown>;
      const lastGood = previousVersion(previous, raw);
      const note = lastGood ? ' (serving its last good version)' : '';
      for (const issue of checked.issues) {
        items.push({
          problem: {
            file,
            document,
            ...objectOf(raw),
            ...(issue.path ? { field: issue.path } : {}),
            message: `${issue.message}${note}`,
          },
        });
      }
      if (lastGood) items.push({ loaded: { ...lastGood, file, document } });
    }
  }
  return { items };
}

/**
 * Keeps the first of each kind/namespace/name. `resources` is in path and document order already
 * (files are listed sorted and a file's documents kept in order), so "first" is deterministic.
 */
function withoutDuplicates(resources: LoadedResource[]): {
  unique: LoadedResource[];
  problems: ResourceProblem[];
} {
  const seen = new Map<string, LoadedResource>();
  const unique: LoadedResource[] = [];
  const problems: ResourceProblem[] = [];
  for (const loaded of resources) {
    const { kind, metadata } = loaded.resource;
    const key = `${kind}/${metadata.namespace ?? ''}/${metadata.name}`;
    const first = seen.get(key);
    if (first) {
      problems.push({
        file: loaded.file,
        document: loaded.document,
        kind,
        ...(metadata.namespace === undefined ? {} : { namespace: metadata.namespace }),
        name: metadata.name,
        field: 'metadata.name',
        message: `duplicate ${kind} ${key.slice(kind.length + 1)}, not served; first defined in ${first.file} document ${first.document}`,
      });
    } else {
      seen.set(key, loaded);
      unique.push(loaded);
    }
  }
  return { unique, problems };
}

/**
 * One line per problem: where, which object, which field, what. E.g.
 * `gateway.yaml#0 TailscaleGateway default/eg-tailnets spec.tailnets[0].name: Invalid format: …`.
 */
export function formatProblem(problem: ResourceProblem): string {
  const where = problem.document === undefined ? problem.file : `${problem.file}#${problem.document}`;
  const name =
    problem.name === undefined
      ? ''
      : problem.namespace === undefined
        ? problem.name
        : `${problem.namespace}/${problem.name}`;
  const object = [problem.kind, name].filter(Boolean).join(' ');
  return `${where}${object ? ` ${object}` : ''}${problem.field ? ` ${problem.field}` : ''}: ${problem.message}`;
}
