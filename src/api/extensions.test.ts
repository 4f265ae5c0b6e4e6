import { describe, expect, test } from 'bun:test';
import * as v from 'valibot';
import { cel, k8s, listMap, listSet, toOpenApiSchema } from './extensions.ts';
import { parseDuration } from './meta.ts';

describe('cel', () => {
  const Range = v.pipe(
    v.strictObject({ min: v.number(), max: v.number() }),
    cel(
      { rule: 'self.min <= self.max', message: 'min must not exceed max', fieldPath: '.max' },
      (s) => s.min <= s.max,
    ),
    cel({ rule: 'self.max < 100', message: 'max below 100' }, (s) => s.max < 100),
  );

  test('emits every rule, in order, on the node it is piped into', () => {
    expect(toOpenApiSchema(Range)['x-kubernetes-validations']).toEqual([
      { rule: 'self.min <= self.max', message: 'min must not exceed max', fieldPath: '.max' },
      { rule: 'self.max < 100', message: 'max below 100' },
    ]);
  });

  test('enforces the predicate at runtime, reporting at fieldPath', () => {
    const result = v.safeParse(Range, { min: 5, max: 1 });
    expect(result.issues?.map((i) => [v.getDotPath(i), i.message])).toEqual([
      ['max', 'min must not exceed max'],
    ]);
    expect(v.safeParse(Range, { min: 1, max: 5 }).success).toBe(true);
  });

  test('a rule without a predicate (transition rule) only affects the CRD', () => {
    const Immutable = v.pipe(v.string(), cel({ rule: 'self == oldSelf', message: 'immutable' }));
    expect(v.safeParse(Immutable, 'x').success).toBe(true);
    expect(toOpenApiSchema(Immutable)).toEqual({
      type: 'string',
      'x-kubernetes-validations': [{ rule: 'self == oldSelf', message: 'immutable' }],
    });
  });
});

describe('list types', () => {
  test('listMap marks the keys and rejects a duplicate at the later item', () => {
    const List = v.pipe(v.array(v.object({ name: v.string() })), listMap('name'));
    expect(toOpenApiSchema(List)).toMatchObject({
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['name'],
    });
    const result = v.safeParse(List, [{ name: 'a' }, { name: 'b' }, { name: 'a' }]);
    expect(result.issues?.map((i) => v.getDotPath(i))).toEqual(['2']);
  });

  test('listSet rejects duplicate scalars', () => {
    const Tags = v.pipe(v.array(v.string()), listSet());
    expect(toOpenApiSchema(Tags)['x-kubernetes-list-type']).toBe('set');
    expect(v.safeParse(Tags, ['a', 'a']).success).toBe(false);
  });
});

describe('toOpenApiSchema', () => {
  test('drops what structural schemas forbid and keeps the rest', () => {
    const schema = toOpenApiSchema(
      v.strictObject({
        a: v.optional(v.string(), 'x'),
        m: v.record(v.string(), v.string()),
        n: v.picklist([1, 2]),
      }),
    );
    expect(schema).toEqual({
      type: 'object',
      properties: {
        a: { type: 'string', default: 'x' },
        m: { type: 'object', additionalProperties: { type: 'string' } },
        n: { type: 'integer', enum: [1, 2] },
      },
      required: ['m', 'n'],
    });
  });

  test('renders int-or-string and preserve-unknown-fields in their Kubernetes forms', () => {
    const quantity = v.pipe(
      v.union([v.number(), v.pipe(v.string(), v.regex(/^[0-9]+m$/))]),
      k8s({ intOrString: true }),
    );
    expect(toOpenApiSchema(quantity)).toEqual({
      anyOf: [{ type: 'integer' }, { type: 'string' }],
      pattern: '^[0-9]+m$',
      'x-kubernetes-int-or-string': true,
    });
    const free = v.pipe(v.record(v.string(), v.unknown()), k8s({ preserveUnknownFields: true }));
    expect(toOpenApiSchema(free)).toEqual({ type: 'object', 'x-kubernetes-preserve-unknown-fields': true });
  });

  test('refuses schemas that cannot be structural', () => {
    expect(() => toOpenApiSchema(v.union([v.string(), v.number()]))).toThrow('junctors');
    expect(() => toOpenApiSchema(v.object({ any: v.unknown() }))).toThrow('every node needs a type');
    expect(() => toOpenApiSchema(v.tuple([v.string()]))).toThrow();
  });
});

test('parseDuration understands every unit and combinations', () => {
  expect(parseDuration('500ms')).toBe(500);
  expect(parseDuration('10s')).toBe(10_000);
  expect(parseDuration('1h30m')).toBe(5_400_000);
  expect(parseDuration('1m1s1ms')).toBe(61_001);
  expect(() => parseDuration('10 seconds')).toThrow('invalid duration');
});
