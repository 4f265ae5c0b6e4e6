/**
 * JSON with object keys sorted, for order-insensitive comparison and digests of plain data (statuses,
 * trigger inputs, discovered endpoints). One definition, so two comparisons of the same data agree.
 *
 * @module
 */

/** JSON with sorted keys, for order-insensitive comparison of plain data. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)),
        )
      : v,
  );
}
