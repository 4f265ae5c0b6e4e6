/**
 * `metav1.Condition` bookkeeping, pure so reconcilers can compute a whole status and compare it with
 * the live one before deciding to write (a write per reconcile would churn resourceVersions and wake
 * every watcher).
 *
 * @module
 */

export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** A `metav1.Condition` as it is on the wire (times are RFC 3339 strings with second precision). */
export interface Condition {
  type: string;
  status: ConditionStatus;
  /** CamelCase, machine-readable. */
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

/**
 * What a status's pure verdict decides for one condition: True or False, why, in words. Type,
 * generation and transition time are stamped on when the condition is set.
 */
export interface ConditionVerdict {
  status: 'True' | 'False';
  reason: string;
  message: string;
}

export type ConditionInput = Omit<Condition, 'lastTransitionTime' | 'message'> & { message?: string };

/**
 * RFC 3339 at second precision, as the API server stores `metav1.Time`: sending milliseconds would be
 * truncated on write, so the value read back would never equal the one computed and every reconcile
 * would look like a change.
 */
export function conditionTime(now: Date): string {
  return `${now.toISOString().slice(0, 19)}Z`;
}

/**
 * Returns a new list with `input` set. `lastTransitionTime` moves only when the status changes, so it
 * answers "since when has this been true"; reason, message and observedGeneration always follow the
 * input. Other conditions and their order are kept; a new type is appended.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  input: ConditionInput,
  now: Date,
): Condition[] {
  const list = conditions ?? [];
  const existing = list.find((c) => c.type === input.type);
  const next: Condition = {
    type: input.type,
    status: input.status,
    reason: input.reason,
    message: input.message ?? '',
    ...(input.observedGeneration === undefined ? {} : { observedGeneration: input.observedGeneration }),
    lastTransitionTime:
      existing && existing.status === input.status ? existing.lastTransitionTime : conditionTime(now),
  };
  return existing
    ? list.map((c) => (c.type === input.type ? next : { ...c }))
    : [...list.map((c) => ({ ...c })), next];
}

/** Returns a new list without `type`. */
export function removeCondition(conditions: readonly Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type).map((c) => ({ ...c }));
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/**
 * True when `type` is `True` and, if `generation` is given, was observed for that generation: a
 * condition written for an older spec says nothing about the current one.
 */
export function isConditionTrue(
  conditions: readonly Condition[] | undefined,
  type: string,
  generation?: number,
): boolean {
  const condition = findCondition(conditions, type);
  if (condition?.status !== 'True') return false;
  return generation === undefined || condition.observedGeneration === generation;
}

/** Whether two lists say the same thing (order-insensitive), to skip no-op status writes. */
export function conditionsEqual(
  a: readonly Condition[] | undefined,
  b: readonly Condition[] | undefined,
): boolean {
  const left = a ?? [];
  const right = b ?? [];
  if (left.length !== right.length) return false;
  return left.every((c) => {
    const other = right.find((o) => o.type === c.type);
    return (
      other !== undefined &&
      other.status === c.status &&
      other.reason === c.reason &&
      other.message === c.message &&
      other.observedGeneration === c.observedGeneration &&
      other.lastTransitionTime === c.lastTransitionTime
    );
  });
}
