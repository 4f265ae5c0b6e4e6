/**
 * `bun test <file>`, run alone from the repository as the README says, gives a test and each kind of
 * hook the suite's budget rather than Bun's 5 s (bunfig.toml preloads test/harness/support/test-timeout.ts).
 * Each fixture spends longer than 5 s in one place; all three run at once, so this costs about 6 s.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runToEnd } from '../harness/support/binary.ts';

/** Longer than Bun's own default timeout (5,000 ms), well under the suite's 60 s. */
const SLOW_MS = 5_500;

const FIXTURES: Record<string, string> = {
  test: `test('slow', async () => { await Bun.sleep(${SLOW_MS}); });`,
  beforeAll: `beforeAll(async () => { await Bun.sleep(${SLOW_MS}); });\ntest('after a slow beforeAll', () => {});`,
  afterAll: `afterAll(async () => { await Bun.sleep(${SLOW_MS}); });\ntest('before a slow afterAll', () => {});`,
};

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tsgw-test-timeout-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Runs one fixture file with a plain `bun test <file>` from the repository root. */
async function runAlone(where: string): Promise<{ code: number; output: string }> {
  const file = join(dir, `${where}.test.ts`);
  await writeFile(file, `import { afterAll, beforeAll, test } from 'bun:test';\n${FIXTURES[where]}\n`);
  const { stdout, stderr, code } = await runToEnd([process.execPath, 'test', file]);
  return { code, output: stdout + stderr };
}

describe('plain bun test <file>', () => {
  test('a test, a beforeAll and an afterAll each run past 5 s and pass', async () => {
    const runs = await Promise.all(
      Object.keys(FIXTURES).map(async (where) => ({ where, ...(await runAlone(where)) })),
    );
    // One line per fixture, so a failure names where the 5 s default still applied.
    const outcomes = runs.map(
      ({ where, code, output }) =>
        `${where}: exit ${code}, ${/ 0 fail/.test(output) ? 'no failures' : output}`,
    );
    expect(outcomes).toEqual(Object.keys(FIXTURES).map((where) => `${where}: exit 0, no failures`));
  });
});
