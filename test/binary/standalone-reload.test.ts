/**
 * Standalone mode's reloads as a person running it sees them (issue 13, items 8 and 9): the compiled
 * binary on a temp directory, edited while it runs. A problem is logged once when it appears and once
 * when it clears, however often the directory is re-read; a re-read that changes nothing logs nothing
 * at info; `/readyz` stays ready and lists every problem, naming its object.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type RunningBinary, startBinary } from '../harness/support/binary.ts';

const endpoints = (name: string, port: number) => `apiVersion: gateway.tailscale.com/v1alpha1
kind: TailscaleEndpoints
metadata:
  name: ${name}
  namespace: default
spec:
  tailnet: corp
  endpoints:
    - name: web
      tailscaleFQDN: web.tail1234.ts.net
      port: ${port}
`;

let dir: string;
let running: RunningBinary;

const records = () =>
  running.lines.flatMap((line) => {
    try {
      return [JSON.parse(line) as Record<string, unknown>];
    } catch {
      return [];
    }
  });

/** Waits until `count` records match; the reloads are asynchronous to the file writes. */
async function waitForCount(accept: (r: Record<string, unknown>) => boolean, count: number, what: string) {
  for (let i = 0; i < 100; i++) {
    if (records().filter(accept).length >= count) return;
    await Bun.sleep(50);
  }
  throw new Error(`fewer than ${count} log lines for ${what}:\n${running.lines.join('\n')}`);
}

const fileChanged = (r: Record<string, unknown>) => r.reason === 'file changed';
const PROBLEM = /^bad\.yaml#0 TailscaleEndpoints default\/bad spec\.endpoints\[0\]\.port: /;

interface Component {
  name: string;
  ready: boolean;
  message?: string;
  problems?: string[];
}

async function readyz(): Promise<{ status: number; body: { status: string; components: Component[] } }> {
  const response = await fetch(`${running.httpUrl}/readyz`);
  return { status: response.status, body: (await response.json()) as never };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tsgw-standalone-reload-'));
  writeFileSync(join(dir, 'bad.yaml'), endpoints('bad', 70000));
  writeFileSync(join(dir, 'good.yaml'), endpoints('good', 80));
  running = await startBinary([
    'standalone',
    '--resources',
    dir,
    '--http-addr',
    '127.0.0.1:0',
    '--grpc-addr',
    '127.0.0.1:0',
    '--log-level',
    'debug',
  ]);
  await running.waitForLog('resources loaded');
}, 120_000);

afterAll(() => {
  running?.process.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('standalone reloads', () => {
  test('a problem is logged once while it lasts, and a re-read that changes nothing is quiet', async () => {
    // A save that leaves the content as it was: a reload, and nothing to say about it at info. Saved
    // until a reload is seen, in case the first save came before the watcher.
    for (let attempt = 0; !records().some(fileChanged); attempt++) {
      if (attempt === 20) throw new Error(`no reload after saving good.yaml:\n${running.lines.join('\n')}`);
      writeFileSync(join(dir, 'good.yaml'), endpoints('good', 80));
      await waitForCount(fileChanged, 1, 'the unchanged save').catch(() => undefined);
    }
    // A real change: one more "resources loaded".
    writeFileSync(join(dir, 'other.yaml'), endpoints('other', 81));
    await waitForCount((r) => r.msg === 'resources loaded' && r.resources === 2, 1, 'the new file');
    const all = records();
    const warnings = all.filter((r) => r.level === 'warn' && PROBLEM.test(String(r.msg)));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ file: 'bad.yaml', kind: 'TailscaleEndpoints', name: 'bad' });
    expect(all.filter((r) => r.msg === 'resources loaded').map((r) => r.reason)).toEqual([
      'start',
      'file changed',
    ]);
  });

  test('/readyz stays ready and lists each problem with its object; the problem clears once', async () => {
    const before = await readyz();
    expect(before.status).toBe(200);
    const resources = before.body.components.find((c) => c.name === 'resources')!;
    expect(resources.message).toBe('2 resources, 1 problem');
    expect(resources.problems).toEqual([expect.stringMatching(PROBLEM)]);

    writeFileSync(join(dir, 'bad.yaml'), endpoints('bad', 90));
    await waitForCount((r) => r.msg === 'resource problem cleared', 1, 'the fix');
    const cleared = records().filter((r) => r.msg === 'resource problem cleared');
    expect(cleared).toHaveLength(1);
    expect(String(cleared[0]!.problem)).toMatch(PROBLEM);
    const after = (await readyz()).body.components.find((c) => c.name === 'resources')!;
    expect(after.message).toBe('3 resources, 0 problems');
    expect(after.problems ?? []).toEqual([]);
  });
});
