/**
 * "Does this object need applying?" without a write: an object is up to date when it carries the hash
 * of the desired body (so fields the operator dropped are noticed) and every desired field has the
 * desired value in the live object (so someone else's edit of an owned field is repaired). Defaults the
 * API server adds are ignored, because only desired fields are looked at.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';
import { APPLIED_ANNOTATION } from './names.ts';

function stable(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stable).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stable(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function objectHash(obj: unknown): string {
  return createHash('sha256').update(stable(obj)).digest('hex').slice(0, 16);
}

/** `desired` with its hash annotation set, ready to apply. */
export function withAppliedHash<T extends KubernetesObject>(desired: T): T {
  const hash = objectHash(desired);
  return {
    ...desired,
    metadata: {
      ...desired.metadata,
      annotations: { ...desired.metadata?.annotations, [APPLIED_ANNOTATION]: hash },
    },
  };
}

/** True when every field of `want` has the same value in `have` (scalars compared as text). */
export function isSubset(want: unknown, have: unknown): boolean {
  if (want === undefined) return true;
  if (Array.isArray(want)) {
    // The API server drops empty lists.
    if (want.length === 0 && (have === undefined || have === null)) return true;
    return (
      Array.isArray(have) && have.length === want.length && want.every((item, i) => isSubset(item, have[i]))
    );
  }
  if (want && typeof want === 'object') {
    if (!have || typeof have !== 'object' || Array.isArray(have)) {
      // `{}` (an emptyDir) and an absent field mean the same to the API server.
      return Object.keys(want).length === 0 && (have === undefined || have === null);
    }
    return Object.entries(want as Record<string, unknown>).every(([key, value]) =>
      isSubset(value, (have as Record<string, unknown>)[key]),
    );
  }
  // Quantities given as numbers come back as strings (`cpu: 1` → "1").
  return have !== undefined && have !== null && String(want) === String(have);
}

/** Whether `desired` (as returned by {@link withAppliedHash}) must be applied over `observed`. */
export function needsApply(desired: KubernetesObject, observed: KubernetesObject | undefined): boolean {
  if (!observed) return true;
  if (observed.metadata?.deletionTimestamp) return false;
  const hash = desired.metadata?.annotations?.[APPLIED_ANNOTATION];
  if (observed.metadata?.annotations?.[APPLIED_ANNOTATION] !== hash) return true;
  return !isSubset(desired, observed);
}
