/**
 * Validation of objects that did not come through an API server: standalone mode's YAML files and
 * anything read from disk. It applies the same defaults and (where valibot can say it) the same CEL
 * rules as the CRDs, so a file that works standalone also applies to a cluster, and the other way round.
 *
 * @module
 */

import type { KubernetesObject } from '@kubernetes/client-node';
import * as v from 'valibot';
import { OperatorError } from '../errors.ts';
import { type AnyResource, isKind, KIND_DEFINITIONS, KINDS, type Kind, RESOURCE_SCHEMAS } from './kinds.ts';
import { API_VERSION } from './meta.ts';

export interface ValidationIssue {
  /** Where the problem is, as the API server spells it: `spec.endpoints[0].port`. */
  path: string;
  message: string;
}

export type ValidationResult = { ok: true; resource: AnyResource } | { ok: false; issues: ValidationIssue[] };

/** Validates one object of any of our kinds and returns it with defaults applied. */
export function validateResource(object: unknown): ValidationResult {
  if (typeof object !== 'object' || object === null || Array.isArray(object)) {
    return { ok: false, issues: [{ path: '', message: 'expected an object with apiVersion and kind' }] };
  }
  const { apiVersion, kind } = object as Record<string, unknown>;
  if (apiVersion !== API_VERSION) {
    return {
      ok: false,
      issues: [
        {
          path: 'apiVersion',
          message: `apiVersion must be ${API_VERSION}, got ${JSON.stringify(apiVersion)}`,
        },
      ],
    };
  }
  if (!isKind(kind)) {
    return {
      ok: false,
      issues: [
        {
          path: 'kind',
          message: `unknown kind ${JSON.stringify(kind)} in ${API_VERSION}; expected one of ${KINDS.join(', ')}`,
        },
      ],
    };
  }
  const result = v.safeParse(RESOURCE_SCHEMAS[kind], object);
  if (result.success) return { ok: true, resource: result.output };
  return { ok: false, issues: result.issues.map(toIssue) };
}

/** Like {@link validateResource}, for callers that treat invalid input as an error. */
export function parseResource(object: unknown): AnyResource {
  const result = validateResource(object);
  if (result.ok) return result.resource;
  const [first] = result.issues;
  const name = describe(object);
  const message = result.issues.map((issue) => `${issue.path || '<root>'}: ${issue.message}`).join('; ');
  throw new OperatorError('Invalid', `${name}: ${message}`, { field: first?.path });
}

function toIssue(issue: v.BaseIssue<unknown>): ValidationIssue {
  const path = formatPath(issue.path ?? []);
  // valibot phrases unknown keys as "Expected never"; say what the API server would.
  if (issue.expected === 'never' && issue.type === 'strict_object') {
    return { path, message: `unknown field ${JSON.stringify(issue.path?.at(-1)?.key)}` };
  }
  return { path, message: issue.message };
}

/** Formats a valibot path the way Kubernetes field paths look. */
export function formatPath(path: readonly { key: unknown }[]): string {
  let out = '';
  for (const { key } of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (typeof key === 'string' && /^[A-Za-z_$][\w$-]*$/.test(key)) out += out === '' ? key : `.${key}`;
    else out += `[${JSON.stringify(key)}]`;
  }
  return out;
}

function describe(object: unknown): string {
  const record = (typeof object === 'object' && object !== null ? object : {}) as Record<string, unknown>;
  const metadata = (
    typeof record['metadata'] === 'object' && record['metadata'] !== null ? record['metadata'] : {}
  ) as Record<string, unknown>;
  const namespace = typeof metadata['namespace'] === 'string' ? `${metadata['namespace']}/` : '';
  return `${String(record['kind'] ?? 'object')} ${namespace}${String(metadata['name'] ?? '<unnamed>')}`;
}

/** The type of one kind of ours. */
export type ResourceOf<K extends Kind> = Extract<AnyResource, { kind: K }>;

/**
 * An object of one kind, checked against its schema: the typed value (defaults applied) for reading,
 * always with the object as it came from the API server, which is what writes (status, finalizers,
 * Events) are addressed to.
 */
export type Checked<T extends AnyResource> =
  | { readonly ok: true; readonly value: T; readonly raw: KubernetesObject }
  | { readonly ok: false; readonly issues: readonly ValidationIssue[]; readonly raw: KubernetesObject };

/**
 * Kinds checked by everything but their stored status. No reader of a checked TailscaleRoutePolicy
 * needs its status (the hooks read the spec) but its own controller, which reads the status as stored,
 * to compare and to send Envoy Gateway's entries back. So a status an older schema or another writer
 * left must neither keep the policy out of the hooks' store nor change how its controller judges it
 * (it rewrites the status): the value carries the status only when that matches the schema on its own.
 */
const CHECKED_WITHOUT_STATUS: ReadonlySet<Kind> = new Set<Kind>(['TailscaleRoutePolicy']);

/**
 * {@link validateResource} for an object that must be of `kind` (for the kinds above, judged without
 * its status). Not memoized: caches memoize (kube/resource-informer.ts), because only they know an
 * object does not change under them.
 */
export function checkResource<K extends Kind>(kind: K, raw: KubernetesObject): Checked<ResourceOf<K>> {
  if (!CHECKED_WITHOUT_STATUS.has(kind)) return checkWhole(kind, raw);
  const { status, ...rest } = raw as KubernetesObject & { status?: unknown };
  const checked = checkWhole(kind, rest);
  if (!checked.ok) return { ...checked, raw };
  const statusSchema = KIND_DEFINITIONS.find((d) => d.kind === kind)?.status;
  const parsed = status === undefined || !statusSchema ? undefined : v.safeParse(statusSchema, status);
  const value = parsed?.success ? { ...checked.value, status: parsed.output } : checked.value;
  return { ok: true, value: value as ResourceOf<K>, raw };
}

function checkWhole<K extends Kind>(kind: K, raw: KubernetesObject): Checked<ResourceOf<K>> {
  const result = validateResource(raw);
  if (!result.ok) return { ok: false, issues: result.issues, raw };
  if (result.resource.kind !== kind) {
    const message = `expected kind ${kind}, got ${result.resource.kind}`;
    return { ok: false, issues: [{ path: 'kind', message }], raw };
  }
  return { ok: true, value: result.resource as ResourceOf<K>, raw };
}
