/**
 * `npm start` as a user runs it: stopping it stops the server. npm forwards SIGINT and SIGTERM to the
 * script's process; when that process was a `sh -c` wrapper, the shell died and left Bun serving,
 * orphaned. Ctrl-C in a terminal signals the whole process group, so the server gets SIGINT from the
 * terminal and again from npm: that must still be one graceful shutdown, not "second signal, exit now".
 */
import { afterEach, describe, expect, test } from 'bun:test';
import { type ChildProcess, spawn } from 'node:child_process';
import { REPO_ROOT } from '../harness/support/binary.ts';

interface Started {
  npm: ChildProcess;
  /** The server's own pid and HTTP URL, from its log lines. */
  serverPid: number;
  httpUrl: string;
  records: Record<string, unknown>[];
  exited: Promise<number | null>;
}

const started: Started[] = [];

/** `npm start` in its own process group (as a terminal's foreground job is), on ephemeral ports. */
async function npmStart(): Promise<Started> {
  const npm = spawn('npm', ['start', '--silent'], {
    cwd: REPO_ROOT,
    detached: true,
    env: { ...process.env, TSGW_HTTP_ADDR: '127.0.0.1:0', TSGW_GRPC_ADDR: '127.0.0.1:0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
  const records: Record<string, unknown>[] = [];
  let buffer = '';
  let stderr = '';
  npm.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const listening = new Promise<void>((resolve, reject) => {
    npm.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      for (let newline = buffer.indexOf('\n'); newline >= 0; newline = buffer.indexOf('\n')) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (!line.startsWith('{')) continue;
        records.push(JSON.parse(line) as Record<string, unknown>);
        if (records.some((r) => r['msg'] === 'resources loaded')) resolve();
      }
    });
    void exited.then((code) => reject(new Error(`npm start exited with ${code}:\n${stderr}`)));
  });
  await listening;
  const first = records.find((r) => r['msg'] === 'starting tailscale-gateway')!;
  const http = records.find((r) => String(r['msg']).startsWith('HTTP surface listening'))!;
  const result = { npm, serverPid: Number(first['pid']), httpUrl: String(http['url']), records, exited };
  started.push(result);
  return result;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Resolves once `pid` is gone; false if it is still there after `ms` (the test then fails). */
async function gone(pid: number, ms = 30_000): Promise<boolean> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await Bun.sleep(50)) {
    if (!alive(pid)) return true;
  }
  return !alive(pid);
}

afterEach(() => {
  // Whatever a failed test left running: the server, by its pid, and npm's group.
  for (const { npm, serverPid } of started.splice(0)) {
    if (alive(serverPid)) process.kill(serverPid, 'SIGKILL');
    if (npm.pid !== undefined && alive(npm.pid)) process.kill(-npm.pid, 'SIGKILL');
  }
});

describe('stopping npm start', () => {
  test.each(['SIGTERM', 'SIGINT'] as const)(
    '%s to npm stops the server: it shuts down cleanly and its port closes',
    async (signal) => {
      const run = await npmStart();
      expect((await fetch(`${run.httpUrl}/healthz`)).status).toBe(200);
      run.npm.kill(signal);
      await run.exited;
      expect(await gone(run.serverPid)).toBe(true);
      expect(run.records.some((r) => r['msg'] === 'shutdown complete' && r['code'] === 0)).toBe(true);
      expect(await fetch(`${run.httpUrl}/healthz`).catch(() => 'closed')).toBe('closed');
    },
    60_000,
  );

  test("Ctrl-C (SIGINT to the terminal's process group) is one graceful shutdown", async () => {
    const run = await npmStart();
    process.kill(-run.npm.pid!, 'SIGINT');
    await run.exited;
    expect(await gone(run.serverPid)).toBe(true);
    expect(run.records.map((r) => r['msg'])).not.toContain('second signal during shutdown; exiting now');
    expect(run.records.some((r) => r['msg'] === 'shutdown complete' && r['code'] === 0)).toBe(true);
  }, 60_000);
});
