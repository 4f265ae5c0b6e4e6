/**
 * The suite's 60 s budget for every test and hook, loaded by bunfig.toml's `[test] preload`, so that
 * `bun test <file>` run alone gets what `npm test` gets: Bun's own default is 5 s, which apiserver and
 * node tests (and their beforeAll/afterAll, which start and tear down real clusters) exceed, and a
 * node test's teardown cut short leaves its bridge behind. Bun 1.4 ignores `[test] timeout` in bunfig,
 * and keeps a preload's default for the first file of a run only (oven-sh/bun#43787): runs of several
 * files still pass `--timeout 60000`, as `npm test` does. test/binary/test-timeout.test.ts checks it.
 */
import { setDefaultTimeout } from 'bun:test';

export const TEST_TIMEOUT_MS = 60_000;

setDefaultTimeout(TEST_TIMEOUT_MS);
