import { describe, expect, test } from 'bun:test';
import { fieldsOf, listOf, specOf, statusOf } from './object-fields.ts';

describe('lenient object reads', () => {
  test('fields of an object; {} for a non-object, an array or null', () => {
    expect(fieldsOf({ a: 1 })).toEqual({ a: 1 });
    for (const value of [undefined, null, 'x', 3, [1]]) expect(fieldsOf(value)).toEqual({});
  });
  test('a list only when it is an array', () => {
    expect(listOf([1, 2])).toEqual([1, 2]);
    for (const value of [undefined, 'ab', { 0: 'a' }]) expect(listOf(value)).toEqual([]);
  });
  test('spec and status, absent or malformed read as {}', () => {
    const obj = { spec: { tailnet: 'corp' }, status: { services: [] } };
    expect(specOf(obj).tailnet).toBe('corp');
    expect(statusOf(obj).services).toEqual([]);
    expect(specOf({ spec: 'corp' })).toEqual({});
    expect(statusOf(undefined)).toEqual({});
  });
});
