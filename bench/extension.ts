/**
 * PostTranslateModify round trip through our extension server against the runtime's floor (a raw
 * `node:http2` echo), both in one child process, measured from a grpc-js client that passes bytes
 * through untouched so only the server side differs. A benchmark, not a test: it prints, asserts nothing.
 */

import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { translateFixture } from '../test/harness/support/xds-fixtures.ts';

const PATH = '/envoygateway.extension.EnvoyGatewayExtension/PostTranslateModify';

interface Figures {
  median: number;
  p99: number;
}

function call(client: grpc.Client, request: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      PATH,
      (b: Buffer) => b,
      (b: Buffer) => b,
      request,
      (error, response) => (error ? reject(error) : resolve(response!)),
    );
  });
}

async function measure(client: grpc.Client, request: Buffer, iterations: number): Promise<Figures> {
  for (let i = 0; i < Math.min(5, iterations); i++) await call(client, request);
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const started = performance.now();
    const response = await call(client, request);
    samples.push(performance.now() - started);
    if (response.byteLength < request.byteLength - 64) throw new Error('short response');
  }
  samples.sort((a, b) => a - b);
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!;
  return { median: at(0.5), p99: at(0.99) };
}

export async function benchExtension(sizes = [100, 1_000, 10_000]): Promise<void> {
  const child = Bun.spawn([process.execPath, join(import.meta.dir, 'extension-servers.ts')], {
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'inherit',
  });
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  const ports = JSON.parse(new TextDecoder().decode(value)) as {
    extension: number;
    connect: number;
    echo: number;
  };
  const options = { 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 };
  const ours = new grpc.Client(`127.0.0.1:${ports.extension}`, grpc.credentials.createInsecure(), options);
  const echo = new grpc.Client(`127.0.0.1:${ports.echo}`, grpc.credentials.createInsecure(), options);
  const viaConnect = new grpc.Client(
    `127.0.0.1:${ports.connect}`,
    grpc.credentials.createInsecure(),
    options,
  );
  const rows: string[] = [];
  try {
    for (const size of sizes) {
      const request = Buffer.from(translateFixture(size).request);
      const iterations = size >= 10_000 ? 40 : size >= 1_000 ? 200 : 1000;
      const floor = await measure(echo, request, iterations);
      const server = await measure(ours, request, iterations);
      const connect = await measure(viaConnect, request, iterations);
      const cell = (f: Figures) => `${f.median.toFixed(2)} / ${f.p99.toFixed(2)}`;
      rows.push(
        `| ${size.toLocaleString('en')} | ${(request.byteLength / 1024 / 1024).toFixed(2)} MiB | ${iterations} | ` +
          `${cell(floor)} | ${cell(server)} | ${(server.median / floor.median).toFixed(2)}× | ` +
          `${cell(connect)} | ${(connect.median / floor.median).toFixed(2)}× |`,
      );
    }
  } finally {
    ours.close();
    echo.close();
    viaConnect.close();
    child.stdin.end();
    await child.exited;
  }
  console.log('PostTranslateModify round trip (ms, median / p99), grpc-js client, server in a child process');
  console.log(
    '| clusters | request | iterations | raw echo | extension server | ratio | connect pipeline only | ratio |',
  );
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const row of rows) console.log(row);
}

if (import.meta.main) {
  const sizes = process.argv.slice(2).map(Number).filter(Number.isFinite);
  await benchExtension(sizes.length > 0 ? sizes : undefined);
}
