/**
 * Reads the resources standalone mode serves from a directory of YAML files (many documents each).
 * Every problem is reported with its file, document index and field, so a person can fix the file
 * without guessing; valid documents are kept, and a file that no longer parses keeps the documents it
 * had at the last good read, so one bad save never empties what the extension server serves.
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
  /** Dotted field path, when the problem is about one field. */
  field?: string;
  message: string;
}

export interface ResourceDirectory {
  resources: LoadedResource[];
  problems: ResourceProblem[];
  /** Documents of other API groups (Gateway API, core), which Envoy Gateway reads and we skip. */
  ignored: { file: string; document: number; kind: string }[];
}

const YAML_FILE = /\.ya?ml$/i;

/** Lists YAML files under `dir`, recursively, in a stable order. */
export async function listYamlFiles(dir: string): Promise<string[]> {
  const info = await stat(dir).catch((cause) => {
    throw new OperatorError('Invalid', `resources directory ${dir} cannot be read: ${cause.code ?? cause}`, {
      cause,
    });
  });
  if (!info.isDirectory()) throw new OperatorError('Invalid', `resources path ${dir} is not a directory`);
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
  for (const file of await listYamlFiles(dir)) {
    const text = await readFile(join(dir, file), 'utf8');
    const parsed = parseFile(file, text, previous);
    if (parsed.syntaxError) {
      result.problems.push(parsed.syntaxError);
      result.resources.push(...(previous?.resources.filter((r) => r.file === file) ?? []));
      continue;
    }
    for (const item of parsed.items) {
      if ('problem' in item) result.problems.push(item.problem);
      else if ('ignored' in item) result.ignored.push(item.ignored);
      else result.resources.push(item.loaded);
    }
  }
  result.problems.push(...findDuplicates(result.resources));
  return result;
}

type Item =
  | { loaded: LoadedResource }
  | { problem: ResourceProblem }
  | { ignored: ResourceDirectory['ignored'][number] };

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
      items.push({ ignored: { file, document, kind: String(kind) } });
      continue;
    }
    const checked = validateResource(value);
    if (checked.ok) {
      items.push({ loaded: { file, document, resource: checked.resource } });
    } else {
      const lastGood = previousVersion(previous, value as Record<string, unknown>);
      const note = lastGood ? ' (serving its last good version)' : '';
      for (const issue of checked.issues) {
        items.push({
          problem: { file, document, field: issue.path || undefined, message: `${issue.message}${note}` },
        });
      }
      if (lastGood) items.push({ loaded: { ...lastGood, file, document } });
    }
  }
  return { items };
}

function findDuplicates(resources: LoadedResource[]): ResourceProblem[] {
  const seen = new Map<string, LoadedResource>();
  const problems: ResourceProblem[] = [];
  for (const loaded of resources) {
    const { kind, metadata } = loaded.resource;
    const key = `${kind}/${metadata.namespace ?? ''}/${metadata.name}`;
    const first = seen.get(key);
    if (first) {
      problems.push({
        file: loaded.file,
        document: loaded.document,
        field: 'metadata.name',
        message: `duplicate ${kind} ${key.slice(kind.length + 1)}; first defined in ${first.file} document ${first.document}`,
      });
    } else {
      seen.set(key, loaded);
    }
  }
  return problems;
}

/** One line per problem, e.g. `gateway.yaml#1 spec.tailnets[0].name: expected …`. */
export function formatProblem(problem: ResourceProblem): string {
  const where = problem.document === undefined ? problem.file : `${problem.file}#${problem.document}`;
  return `${where}${problem.field ? ` ${problem.field}` : ''}: ${problem.message}`;
}
