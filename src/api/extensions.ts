/**
 * How Kubernetes-only schema features ride on valibot schemas, and how a valibot schema becomes a
 * *structural* `openAPIV3Schema`.
 *
 * The valibot schemas in this folder are the one source of truth: TypeScript types, standalone-mode
 * validation and the CRDs all come from them. Two small helpers carry what JSON Schema cannot say:
 *
 * - {@link k8s} is a `v.metadata()` action. `@valibot/to-json-schema` copies every metadata key verbatim
 *   into the JSON Schema node, so list types, `x-kubernetes-preserve-unknown-fields` and
 *   `x-kubernetes-int-or-string` need no converter code at all, and valibot ignores metadata at runtime.
 * - {@link cel} is a `v.rawCheck()` action that also carries a CEL rule (and {@link listMap}/{@link listSet}
 *   likewise carry a list type plus the duplicate check the API server performs). One pipe item therefore holds
 *   both the rule the API server enforces and the TypeScript predicate standalone mode enforces, so the
 *   two cannot drift apart by someone editing only one of them. Rules valibot cannot express (transition
 *   rules on `oldSelf`) simply omit the predicate.
 *
 * We chose actions over a parallel "extensions" map keyed by field path because a path map goes stale
 * silently when a field is renamed; an action moves with its field.
 *
 * @module
 */

import type { ConversionConfig, JsonSchema } from '@valibot/to-json-schema';
import { toJsonSchema } from '@valibot/to-json-schema';
import * as v from 'valibot';

/** One entry of `x-kubernetes-validations`. */
export interface CelRule {
  /** The CEL expression; `self` is the value of the node the rule is attached to. */
  rule: string;
  /** Shown to the user; say what to change, not what the expression does. */
  message: string;
  /**
   * Where the API server reports the failure, relative to the node (`.route`). Only plain dotted
   * paths are used here, so the same path can be re-used for standalone-mode issues.
   */
  fieldPath?: string;
  /** The `Status.details.causes[].reason`; the API server defaults to `FieldValueInvalid`. */
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}

/** A valibot validation action that also carries what it means in the CRD schema. */
export type SchemaAction<T> = v.RawCheckAction<T> & { readonly openApi: OpenApiSchema };

/**
 * Attaches a CEL rule to the schema it is piped into. When `check` is given, standalone mode enforces
 * the same rule with it; `check` must return `true` for values the CEL rule accepts.
 */
export function cel<T>(rule: CelRule, check?: (self: T) => boolean): SchemaAction<T> {
  const fieldPath = rule.fieldPath?.split('.').filter((key) => key.length > 0) ?? [];
  const action = v.rawCheck<T>(({ dataset, addIssue }) => {
    // A value that already failed a field check may break the predicate's assumptions (an unparsable
    // duration), and the user has an error to fix first anyway.
    if (check === undefined || !dataset.typed || dataset.issues !== undefined || check(dataset.value)) return;
    let input: unknown = dataset.value;
    const path: v.ObjectPathItem[] = [];
    for (const key of fieldPath) {
      const record = (typeof input === 'object' && input !== null ? input : {}) as Record<string, unknown>;
      path.push({ type: 'object', origin: 'value', input: record, key, value: record[key] });
      input = record[key];
    }
    addIssue({ message: rule.message, ...(path.length > 0 ? { path: path as [v.ObjectPathItem] } : {}) });
  });
  return Object.assign(action, { openApi: { 'x-kubernetes-validations': [{ ...rule }] } });
}

/**
 * Marks a list as `x-kubernetes-list-type: map` keyed by `keys`, and rejects duplicate keys at runtime the
 * way the API server does (reported at the later item). Each key must be required or defaulted.
 */
export function listMap<T extends Record<string, unknown>>(
  ...keys: [string, ...string[]]
): SchemaAction<T[]> {
  return listAction<T>({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': keys }, (item) =>
    JSON.stringify(keys.map((key) => item[key])),
  );
}

/** Marks a list of scalars as `x-kubernetes-list-type: set`, which also forbids duplicates. */
export function listSet<T extends string | number>(): SchemaAction<T[]> {
  return listAction<T>({ 'x-kubernetes-list-type': 'set' }, (item) => JSON.stringify(item));
}

function listAction<T>(openApi: OpenApiSchema, identity: (item: T) => string): SchemaAction<T[]> {
  const action = v.rawCheck<T[]>(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const seen = new Set<string>();
    dataset.value.forEach((item, index) => {
      const id = identity(item);
      if (seen.has(id)) {
        const path: v.ArrayPathItem = {
          type: 'array',
          origin: 'value',
          input: dataset.value,
          key: index,
          value: item,
        };
        addIssue({ message: `Duplicate value: ${id}`, path: [path] });
      }
      seen.add(id);
    });
  });
  return Object.assign(action, { openApi });
}

/** Kubernetes structural-schema extensions that have no JSON Schema keyword. */
export interface KubernetesExtensions {
  /** `atomic` replaces the whole list on apply; `set` and `map` merge and reject duplicates. */
  listType?: 'atomic' | 'set' | 'map';
  /** The keys identifying an item of a `map` list; each must be required or defaulted. */
  listMapKeys?: string[];
  /** Keep fields the schema does not describe (for pass-through Kubernetes types such as affinity). */
  preserveUnknownFields?: boolean;
  /** A value that is either an integer or a string, such as a resource quantity. */
  intOrString?: boolean;
}

/** Attaches Kubernetes extensions as valibot metadata (ignored at runtime, copied by the converter). */
export function k8s<T>(extensions: KubernetesExtensions): v.MetadataAction<T, Record<string, unknown>> {
  const metadata: Record<string, unknown> = {};
  if (extensions.listType !== undefined) metadata['x-kubernetes-list-type'] = extensions.listType;
  if (extensions.listMapKeys !== undefined) metadata['x-kubernetes-list-map-keys'] = extensions.listMapKeys;
  if (extensions.preserveUnknownFields) metadata['x-kubernetes-preserve-unknown-fields'] = true;
  if (extensions.intOrString) metadata['x-kubernetes-int-or-string'] = true;
  return v.metadata<T, Record<string, unknown>>(metadata);
}

/** A node of a Kubernetes `openAPIV3Schema` (JSON Schema plus `x-kubernetes-*` keys). */
export type OpenApiSchema = { [key: string]: unknown };

const conversion: ConversionConfig = {
  target: 'openapi-3.0',
  errorMode: 'throw',
  overrideAction({ valibotAction, jsonSchema }) {
    const extra = (valibotAction as Partial<SchemaAction<unknown>>).openApi;
    if (extra === undefined) return undefined;
    const node = { ...jsonSchema, ...extra } as OpenApiSchema;
    const before = (jsonSchema as OpenApiSchema)['x-kubernetes-validations'];
    const added = extra['x-kubernetes-validations'];
    if (Array.isArray(before) && Array.isArray(added))
      node['x-kubernetes-validations'] = [...before, ...added];
    return node as JsonSchema;
  },
};

/**
 * Converts a valibot schema to a structural `openAPIV3Schema` node, or throws when the result would not
 * be structural, so a schema the API server would refuse never reaches a CRD file.
 */
export function toOpenApiSchema(schema: v.GenericSchema): OpenApiSchema {
  const json = toJsonSchema(schema, conversion) as OpenApiSchema;
  delete json['$schema'];
  return structural(json, '');
}

/** Rewrites what valibot emits into the forms the API server accepts, and checks the rest. */
function structural(node: OpenApiSchema, path: string): OpenApiSchema {
  const out: OpenApiSchema = { ...node };
  // Unknown fields are pruned by the API server, so `false` adds nothing and is not allowed next to
  // `properties` in a structural schema. Standalone mode still rejects them through strict objects.
  if (out['additionalProperties'] === false) delete out['additionalProperties'];
  if (Array.isArray(out['required']) && out['required'].length === 0) delete out['required'];
  if ('$ref' in out || '$defs' in out) throw new Error(`${path || '<root>'}: $ref is not structural`);
  if (out['x-kubernetes-preserve-unknown-fields'] === true) {
    // An unknown-valued record converts to `additionalProperties: {}`, an untyped node.
    delete out['additionalProperties'];
    out['type'] = 'object';
  }
  if (out['x-kubernetes-int-or-string'] === true) {
    // The only junctor form allowed for int-or-string; a string pattern moves up, where the API
    // server applies it to string values only.
    const branches = (out['anyOf'] as OpenApiSchema[] | undefined) ?? [];
    const pattern = branches.map((branch) => branch['pattern']).find((p) => typeof p === 'string');
    delete out['type'];
    out['anyOf'] = [{ type: 'integer' }, { type: 'string' }];
    if (pattern !== undefined) out['pattern'] = pattern;
    return out;
  }
  if ('anyOf' in out || 'oneOf' in out || 'allOf' in out || 'not' in out) {
    throw new Error(`${path || '<root>'}: junctors are only used for int-or-string here`);
  }
  if (Array.isArray(out['enum']) && out['type'] === 'number' && out['enum'].every(Number.isInteger)) {
    out['type'] = 'integer';
  }
  if (typeof out['type'] !== 'string') throw new Error(`${path || '<root>'}: every node needs a type`);
  if (out['properties'] !== undefined) {
    const properties: Record<string, OpenApiSchema> = {};
    for (const [key, child] of Object.entries(out['properties'] as Record<string, OpenApiSchema>)) {
      properties[key] = structural(child, `${path}.${key}`);
    }
    out['properties'] = properties;
  }
  if (typeof out['additionalProperties'] === 'object' && out['additionalProperties'] !== null) {
    out['additionalProperties'] = structural(out['additionalProperties'] as OpenApiSchema, `${path}.*`);
  }
  if (out['items'] !== undefined) {
    if (Array.isArray(out['items'])) throw new Error(`${path}: tuples are not structural`);
    out['items'] = structural(out['items'] as OpenApiSchema, `${path}[*]`);
  }
  return out;
}
