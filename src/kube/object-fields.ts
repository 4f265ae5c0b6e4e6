/**
 * Lenient reads of an object as it came off the wire, for code that must look at objects no schema
 * has checked: a watch mapper over every cached object (an invalid one included, whose own reconcile
 * reports it), a Gateway API object or Service we hold no schema for. Each field is type-checked
 * where it is read instead of cast to a shape nobody checked, so a malformed object reads as absent
 * fields rather than throwing. Objects a reconciler acts on come checked from the typed informers.
 *
 * @module
 */

/** `value` as a record of fields; `{}` for anything that is not a (non-array) object. */
export function fieldsOf(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

/** `value` when it is an array, else `[]`. */
export function listOf(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** An object's `spec` fields (`{}` when it has none, or not an object). */
export const specOf = (obj: unknown): Record<string, unknown> => fieldsOf(fieldsOf(obj).spec);

/** An object's `status` fields, as stored (`{}` when it has none, or not an object). */
export const statusOf = (obj: unknown): Record<string, unknown> => fieldsOf(fieldsOf(obj).status);
