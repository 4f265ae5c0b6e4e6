import { expect, test } from 'bun:test';
import { hostname } from 'node:os';
import { createLogger } from '../observability/logger.ts';
import { createLeaderElector } from './leader-election.ts';

const base = {
  client: { request: () => Promise.reject(new Error('not called')) },
  namespace: 'ns',
  name: 'lease',
  onStartedLeading: () => {},
  log: createLogger({ level: 'fatal', format: 'json' }),
};

test("the identity is the candidate's name (the Pod's, as the entry point read it) plus a random suffix", () => {
  const a = createLeaderElector({ ...base, candidate: 'operator-a' });
  const b = createLeaderElector({ ...base, candidate: 'operator-a' });
  expect(a.identity).toMatch(/^operator-a_[0-9a-f]{10}$/);
  expect(b.identity).not.toBe(a.identity);
  expect(createLeaderElector(base).identity.startsWith(`${hostname()}_`)).toBe(true);
  expect(createLeaderElector({ ...base, identity: 'fixed' }).identity).toBe('fixed');
});
