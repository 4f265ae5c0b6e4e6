/**
 * The runtime wires the extension server: it listens on --grpc-addr, /readyz waits for it and for the
 * store's first sync, gRPC health follows the store, and shutdown turns it NOT_SERVING and closes it.
 */
import { expect, test } from 'bun:test';
import { create, toBinary } from '@bufbuild/protobuf';
import { HealthCheckRequestSchema } from '../../gen/grpc/health/v1/health_pb.ts';
import { startRuntime } from '../../src/app/runtime.ts';
import { parseConfig } from '../../src/config/parse.ts';
import { createMemoryResourceStore } from '../../src/model/resource-store.ts';
import { createScriptedHooks } from '../harness/support/extension-hooks.ts';
import { openSession, rawCall } from '../harness/support/raw-grpc.ts';
import { grpcFrame } from '../harness/support/xds-fixtures.ts';

test('listens, gates readiness on the store, serves health and closes on shutdown', async () => {
  const config = parseConfig({
    flags: { grpcAddr: '127.0.0.1:0', httpAddr: '127.0.0.1:0', shutdownTimeout: '5', logLevel: 'fatal' },
    env: {},
  });
  const store = createMemoryResourceStore();
  let exitCode: number | undefined;
  const runtime = await startRuntime({
    config,
    mode: 'test',
    hooks: () => createScriptedHooks(),
    store,
    exit: (code) => {
      exitCode = code;
    },
  });
  expect(runtime.grpcUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  const readyz = async () => {
    const res = await fetch(`${runtime.httpUrl}/readyz`);
    return (await res.json()) as { components: { name: string; ready: boolean }[] };
  };
  const component = async () => (await readyz()).components.find((c) => c.name === 'extension-server');
  const session = openSession(runtime.grpcUrl);
  const check = async () => {
    const answer = await rawCall(
      session,
      '/grpc.health.v1.Health/Check',
      grpcFrame(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, {}))),
    );
    return answer.body.at(-1); // the ServingStatus enum value
  };
  try {
    expect((await component())?.ready).toBe(false);
    expect(await check()).toBe(2); // NOT_SERVING
    store.replace([]);
    expect((await component())?.ready).toBe(true);
    expect(await check()).toBe(1); // SERVING
    const code = await runtime.shutdown.trigger('test');
    expect(code).toBe(0);
    expect(exitCode).toBe(0);
    await expect(
      rawCall(openSession(runtime.grpcUrl), '/grpc.health.v1.Health/Check', grpcFrame(new Uint8Array(0))),
    ).rejects.toThrow();
  } finally {
    session.destroy();
  }
});
