/**
 * Bookkeeping for the third-party processes tests start (etcd, kube-apiserver, Envoy Gateway).
 */
import { createServer } from 'node:net';
import type { Subprocess } from 'bun';

/**
 * `bun test` (1.4) runs no `exit` handlers, and a SIGKILLed parent runs nothing at all, so a small
 * detached shell polls for the parent and kills the children (and removes `dir`) once it is gone.
 */
const WATCHDOG = `
parent=$1; dir=$2; shift 2
while kill -0 "$parent" 2>/dev/null; do sleep 0.5; done
kill -9 "$@" 2>/dev/null
if [ -n "$dir" ]; then rm -rf "$dir"; fi
if [ -n "$TSGW_WATCHDOG_AFTER" ]; then sh -c "$TSGW_WATCHDOG_AFTER"; fi
`;

/**
 * Kills `pids` and removes `dir` (when not empty) once this process is gone, then runs the shell
 * command `after` (when given: what a kill cannot undo, e.g. deleting a network interface). `name`
 * shows in `ps`.
 */
export function spawnWatchdog(pids: number[], dir: string, name = 'tsgw-watchdog', after = ''): Subprocess {
  const proc = Bun.spawn(['sh', '-c', WATCHDOG, name, String(process.pid), dir, ...pids.map(String)], {
    stdin: 'ignore',
    stdout: 'ignore',
    stderr: 'ignore',
    detached: true,
    env: { ...process.env, TSGW_WATCHDOG_AFTER: after },
  });
  proc.unref();
  return proc;
}

/** A loopback port nothing listens on right now. */
export async function freePort(): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
