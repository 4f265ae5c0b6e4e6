/**
 * Child process of `bench/extension.ts`: our extension server (identity hooks, a synced store), the same
 * with the direct gRPC path turned off (connect's pipeline only), and the raw echo server, side by side on one Bun runtime, so the client's own CPU time is not charged to them.
 * Prints `{"extension": port, "connect": port, "echo": port}` on stdout once both listen; exits when stdin closes.
 */
import pino from 'pino';
import { createExtensionServer } from '../src/extension/server/index.ts';
import { createMemoryResourceStore } from '../src/model/resource-store.ts';
import { createMetrics } from '../src/observability/metrics.ts';
import { createScriptedHooks } from '../test/harness/support/extension-hooks.ts';
import { startEchoServer } from './echo-server.ts';

const store = createMemoryResourceStore();
store.replace([]);
const start = (directGrpc: boolean) =>
  createExtensionServer({
    hooks: createScriptedHooks(),
    store,
    log: pino({ level: 'silent' }),
    metrics: createMetrics({ version: 'bench', defaultMetrics: false }),
    directGrpc,
  });
const server = start(true);
const viaConnect = start(false);
const { port } = await server.listen();
const { port: connectPort } = await viaConnect.listen();
const echo = await startEchoServer();
console.log(JSON.stringify({ extension: port, connect: connectPort, echo: echo.port }));
for await (const _ of Bun.stdin.stream()) {
  // Runs until the parent closes stdin.
}
await Promise.all([server.close(1000), viaConnect.close(1000)]);
echo.server.close();
process.exit(0);
