/** OperatorError.from's reading of a client's error: the HTTP status, wherever its library put it. */
import { expect, test } from 'bun:test';
import { httpStatusOf, OperatorError } from './errors.ts';

test('httpStatusOf reads status, statusCode or code, and only HTTP statuses', () => {
  expect(httpStatusOf({ status: 410 })).toBe(410);
  expect(httpStatusOf({ statusCode: 410 })).toBe(410);
  // A Kubernetes Status body: `status` is the word Failure, `code` the HTTP status.
  expect(httpStatusOf({ kind: 'Status', status: 'Failure', code: 410 })).toBe(410);
  expect(httpStatusOf(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))).toBeUndefined();
  expect(httpStatusOf({ code: 7 })).toBeUndefined();
  expect(httpStatusOf('410')).toBeUndefined();
  expect(httpStatusOf(null)).toBeUndefined();
});

test('OperatorError.from classifies by that status', () => {
  expect(OperatorError.from({ statusCode: 410 }).code).toBe('NotFound');
  expect(OperatorError.from({ code: 503 }).code).toBe('Transient');
});
