import { expect, test } from 'bun:test';
import type { Controller } from './controller.ts';
import { createTerms } from './term.ts';

/** A controller that records its start and stop into `log`. */
const recorder = (name: string, log: string[]) =>
  ({
    name,
    start: async () => {
      log.push(`start ${name}`);
    },
    stop: async (drainMs: number) => {
      log.push(`stop ${name} ${drainMs}`);
    },
  }) as unknown as Controller;

test('a term starts what its setup added and ends it in order: onEnd, controllers, informers', async () => {
  const log: string[] = [];
  let built = 0;
  const terms = createTerms((term) => {
    built++;
    term.addControllers(recorder('a', log), recorder('b', log));
    term.addInformers({ stop: async () => void log.push('stop informer') });
    term.onEnd(() => log.push('end watches'));
  });
  await terms.begin(new AbortController().signal);
  expect(log).toEqual(['start a', 'start b']);
  await terms.end(10);
  expect(log.slice(2)).toEqual(['end watches', 'stop a 10', 'stop b 10', 'stop informer']);
  await terms.end(10);
  expect(log).toHaveLength(6);
  await terms.begin(new AbortController().signal);
  expect(built).toBe(2);
  expect(log.slice(6)).toEqual(['start a', 'start b']);
});
