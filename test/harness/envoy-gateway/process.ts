/**
 * What both Envoy Gateway harnesses (Kubernetes provider in index.ts, standalone in standalone.ts) do
 * with the EG process they start: keep its log lines (and copy them to `$TSGW_CONTROL_PLANE_LOGS`), and
 * wait until it is ready to serve xDS.
 *
 * @module
 */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Subprocess } from 'bun';

/** The bridge between a network namespace and the host (netns-bridge.ts), run by the test's Bun. */
export const NETNS_BRIDGE = join(import.meta.dir, 'netns-bridge.ts');

/**
 * Starts the host half of a namespace's bridges (netns-bridge.ts `specs`), watching this process;
 * resolves once every listener is up, so EG never dials one that is not there yet.
 */
export async function startHostBridge(specs: string[]): Promise<Subprocess<'ignore', 'pipe', 'inherit'>> {
  const bridge = Bun.spawn([process.execPath, NETNS_BRIDGE, '--watch-pid', String(process.pid), ...specs], {
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'inherit',
  });
  const reader = bridge.stdout.getReader();
  let said = '';
  while (!said.includes('ready')) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`netns bridge exited (${await bridge.exited}) before it was ready`);
    said += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return bridge;
}

/** The last lines of EG's log, for an error message. */
export function tail(lines: string[], count = 40): string {
  return lines.slice(-count).join('\n');
}

/**
 * Collects the process's stdout and stderr line by line into the returned array, which grows while
 * it runs; with `$TSGW_CONTROL_PLANE_LOGS` set they are also written to `<dir>/<logName>`.
 */
export function captureLines(proc: Subprocess<'ignore', 'pipe', 'pipe'>, logName: string): string[] {
  const lines: string[] = [];
  const dir = process.env.TSGW_CONTROL_PLANE_LOGS;
  const logFile = dir ? join(dir, logName) : undefined;
  if (dir && logFile) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(logFile, '');
  }
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of stream) {
      buffer += decoder.decode(chunk, { stream: true });
      let newline = buffer.indexOf('\n');
      while (newline >= 0) {
        const line = buffer.slice(0, newline);
        lines.push(line);
        if (logFile) appendFileSync(logFile, `${line}\n`);
        buffer = buffer.slice(newline + 1);
        newline = buffer.indexOf('\n');
      }
    }
  };
  void pump(proc.stdout);
  void pump(proc.stderr);
  return lines;
}

/**
 * Ready: the provider's cache has synced (`/readyz` on EG's health port answers 200) and the xds runner
 * logged `started`. On an early exit or after `timeoutMs`, `stop` runs and the error carries the log's
 * tail.
 */
export async function waitForReady(options: {
  proc: Subprocess;
  lines: string[];
  healthUrl: string;
  timeoutMs: number;
  stop(): Promise<void>;
}): Promise<void> {
  const { proc, lines, stop } = options;
  const deadline = performance.now() + options.timeoutMs;
  let last = 'no answer yet';
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      await Bun.sleep(100);
      await stop();
      throw new Error(
        `envoy-gateway exited (${proc.exitCode ?? proc.signalCode}) before ready:\n${tail(lines)}`,
      );
    }
    try {
      const response = await fetch(options.healthUrl, { signal: AbortSignal.timeout(2_000) });
      last = `${response.status} ${await response.text()}`;
      if (
        response.ok &&
        lines.some((line) => line.includes('"runner": "xds"') && line.includes('\tstarted\t'))
      )
        return;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    if (performance.now() > deadline) {
      await stop();
      throw new Error(`envoy-gateway not ready (last /readyz: ${last}):\n${tail(lines)}`);
    }
    await Bun.sleep(200);
  }
}

async function portFree(port: number): Promise<boolean> {
  return await new Promise<boolean>((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '0.0.0.0', () => server.close(() => resolve(true)));
  });
}

/** EG binds these ports whatever its config says: a busy one fails the start with a clear message. */
export async function assertPortsFree(ports: Record<string, number>): Promise<void> {
  const busy: string[] = [];
  for (const [name, port] of Object.entries(ports)) if (!(await portFree(port))) busy.push(`${name} ${port}`);
  if (busy.length > 0)
    throw new Error(
      `Envoy Gateway needs these fixed ports, which are in use: ${busy.join(', ')} (another EG running?)`,
    );
}

/** EG logs in zap's console format: `<time>\t<level>\t<logger>\t<caller>\t<message>\t{json}`. */
export function errorLinesOf(lines: string[]): string[] {
  return lines.filter((line) => line.split('\t')[1] === 'error');
}
