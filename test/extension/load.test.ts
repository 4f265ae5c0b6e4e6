/**
 * The extension server under concurrent large calls (issue 18): an HA Envoy Gateway install sends one
 * PostTranslateModify per replica after each change, each megabytes large, while per-route hooks keep
 * arriving. Bun's `node:http2` resets a stream with ENHANCE_YOUR_CALM once a session's queued answers
 * pass its `maxSessionMemory`; the server sizes that from its in-flight budget and makes calls beyond
 * the budget wait (their streams paused: HTTP/2 flow control) instead.
 *
 * Clients here are bare `node:http2` sessions, so a test can hold back reading answers or sending a
 * body, and watch the budget gauges, without any timing assert: every wait is for a state.
 */
import { afterEach, describe, expect, test } from 'bun:test';
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  type IncomingHttpHeaders,
} from 'node:http2';
import { create, toBinary } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { PostRouteModifyRequestSchema } from '../../gen/envoygateway/extension/service_pb.ts';
import { RawPostTranslateModifyResponseSchema } from '../../gen/tsgw/extension/v1/raw_pb.ts';
import { reservationFor } from '../../src/extension/server/limits.ts';
import { encodeRawTranslateResponseFrame } from '../../src/extension/server/raw-codec.ts';
import { eventually } from '../harness/support/eventually.ts';
import { startTestExtensionServer, type TestExtensionServer } from '../harness/support/extension-server.ts';
import { grpcFrame, translateFixture } from '../harness/support/xds-fixtures.ts';

const SERVICE = '/envoygateway.extension.EnvoyGatewayExtension';
const TRANSLATE = `${SERVICE}/PostTranslateModify`;
const ROUTE = `${SERVICE}/PostRouteModify`;

/** 10,000 clusters and as many route configurations: about 3 MiB, as in the measurement. */
const fixture = translateFixture(10_000);
const large = grpcFrame(fixture.request);
/** The identity hook's answer: the same resources without the request's context. */
const answerBytes = encodeRawTranslateResponseFrame(
  create(RawPostTranslateModifyResponseSchema, {
    clusters: fixture.clusters,
    secrets: fixture.secrets,
    listeners: fixture.listeners,
    routes: fixture.routes,
  }),
).byteLength;
const small = grpcFrame(
  toBinary(
    PostRouteModifyRequestSchema,
    create(PostRouteModifyRequestSchema, {
      route: { name: 'r', match: { pathSpecifier: { case: 'prefix', value: '/' } } },
    }),
  ),
);

interface Answer {
  status: number;
  message: string;
  bytes: number;
  rstCode: number | undefined;
}

interface Call {
  stream: ClientHttp2Stream;
  /** Resolves once the answer's HEADERS arrived (or the stream failed first). */
  headers: Promise<IncomingHttpHeaders | undefined>;
  /** Resolves once the stream closed, with the gRPC status from the trailers (NaN when none). */
  answer: Promise<Answer>;
}

let server: TestExtensionServer | undefined;
const sessions: ClientHttp2Session[] = [];

afterEach(async () => {
  for (const session of sessions.splice(0)) session.destroy();
  await server?.close();
  server = undefined;
});

/** A client session whose own send queue is not the limit (Bun's client has a 10 MB default, too). */
function openSession(url: string): ClientHttp2Session {
  const session = connect(url, { maxSessionMemory: 1_000 });
  session.on('error', () => {
    // Each call reports its own outcome.
  });
  sessions.push(session);
  return session;
}

/** Starts a call; `body` is written at once unless `send` is false (the test writes it itself). */
function startCall(
  session: ClientHttp2Session,
  path: string,
  body: Uint8Array,
  options: { send?: boolean; readAnswer?: boolean; headers?: Record<string, string> } = {},
): Call {
  const stream = session.request({
    ':method': 'POST',
    ':path': path,
    'content-type': 'application/grpc',
    te: 'trailers',
    ...options.headers,
  });
  if (options.readAnswer === false) stream.pause();
  let trailers: IncomingHttpHeaders = {};
  let bytes = 0;
  const headers = new Promise<IncomingHttpHeaders | undefined>((resolve) => {
    stream.once('response', resolve);
    stream.once('close', () => resolve(undefined));
  });
  stream.on('trailers', (t) => {
    trailers = t;
  });
  stream.on('data', (chunk: Buffer) => {
    bytes += chunk.byteLength;
  });
  stream.on('error', () => {
    // The answer below carries the reset code.
  });
  const answer = new Promise<Answer>((resolve) => {
    stream.on('close', () =>
      resolve({
        status: Number(trailers['grpc-status'] ?? Number.NaN),
        message: decodeURIComponent(String(trailers['grpc-message'] ?? '')),
        bytes,
        rstCode: stream.rstCode,
      }),
    );
  });
  if (options.send !== false) stream.end(Buffer.from(body));
  return { stream, headers, answer };
}

const ok = (answer: Answer) => ({ status: answer.status, message: answer.message });
const metric = async (name: string): Promise<number> => {
  const text = await server!.metrics.registry.getSingleMetricAsString(name);
  return text
    .split('\n')
    .filter((line) => line.startsWith(name))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
};

describe('concurrent large calls', () => {
  test('eight 3 MiB calls opened one after another, answers not yet read, all succeed', async () => {
    // Each new stream arrives while the earlier answers sit in the server's send queue (the client
    // reads nothing yet): the slow grpc-js client, made deterministic. Bun's default 10 MB
    // session memory refused the fourth or fifth stream with ENHANCE_YOUR_CALM. The budget admits all
    // eight (the client reads nothing until every call has its answer's headers).
    server = await startTestExtensionServer({ inflightBytes: 8 * reservationFor(large.byteLength - 5) });
    const session = openSession(server.url);
    const calls: Call[] = [];
    for (let i = 0; i < 8; i++) {
      const call = startCall(session, TRANSLATE, large, { readAnswer: false });
      calls.push(call);
      await call.headers;
    }
    for (const call of calls) call.stream.resume();
    const answers = await Promise.all(calls.map((call) => call.answer));
    expect(answers.map(ok)).toEqual(Array(8).fill({ status: 0, message: '' }));
    expect(answers.map((a) => a.bytes)).toEqual(Array(8).fill(answerBytes));
    expect(await metric('tsgw_extension_inflight_bytes')).toBe(0);
  });

  test('calls beyond the in-flight budget wait, held back by flow control, and all succeed; small calls never wait', async () => {
    // A budget of one large call: the other seven must wait, none may be refused.
    server = await startTestExtensionServer({ inflightBytes: reservationFor(large.byteLength - 5) });
    const session = openSession(server.url);
    const calls = Array.from({ length: 8 }, () => startCall(session, TRANSLATE, large, { send: false }));
    // The frame header and a first slice of each body: enough for the server to reserve or queue.
    for (const call of calls) call.stream.write(Buffer.from(large.subarray(0, 16_384)));
    await eventually(
      () => metric('tsgw_extension_waiting_calls'),
      (waiting) => waiting === 7,
    );
    expect(await metric('tsgw_extension_inflight_bytes')).toBe(reservationFor(large.byteLength - 5));
    // Small calls are served while the large ones wait.
    const smalls = await Promise.all(
      Array.from({ length: 20 }, () => startCall(session, ROUTE, small).answer),
    );
    expect(smalls.map(ok)).toEqual(Array(20).fill({ status: 0, message: '' }));
    for (const call of calls) call.stream.end(Buffer.from(large.subarray(16_384)));
    const answers = await Promise.all(calls.map((call) => call.answer));
    expect(answers.map(ok)).toEqual(Array(8).fill({ status: 0, message: '' }));
    expect(answers.map((a) => a.bytes)).toEqual(Array(8).fill(answerBytes));
    expect(await metric('tsgw_extension_refused_calls_total')).toBe(0);
    // Every large call's wait is observed: one at once, seven after waiting.
    const waits = await server.metrics.registry.getSingleMetricAsString('tsgw_extension_budget_wait_seconds');
    const series = (pattern: RegExp) => Number(pattern.exec(waits)?.[1]);
    expect(series(/_count\{hook="PostTranslateModify"\} (\S+)/)).toBe(8);
    expect(series(/_bucket\{le="0.0005",hook="PostTranslateModify"\} (\S+)/)).toBe(1);
    await eventually(
      () => Promise.all([metric('tsgw_extension_inflight_bytes'), metric('tsgw_extension_waiting_calls')]),
      ([held, waiting]) => held === 0 && waiting === 0,
    );
  });

  test('32 calls in flight from a gRPC library client, at the default budget: all succeed, none refused', async () => {
    server = await startTestExtensionServer();
    const client = new grpc.Client(server.url.replace('http://', ''), grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
    });
    let peakWaiting = 0;
    const sampling = setInterval(async () => {
      peakWaiting = Math.max(peakWaiting, await metric('tsgw_extension_waiting_calls'));
    }, 5);
    try {
      const request = Buffer.from(fixture.request);
      const results = await Promise.all(
        Array.from(
          { length: 32 },
          () =>
            new Promise<string>((resolve) =>
              client.makeUnaryRequest(
                TRANSLATE,
                (b: Buffer) => b,
                (b: Buffer) => b,
                request,
                (error, response) =>
                  resolve(error ? error.message : response?.byteLength === answerBytes - 5 ? 'ok' : 'short'),
              ),
            ),
        ),
      );
      expect(results).toEqual(Array(32).fill('ok'));
    } finally {
      clearInterval(sampling);
      client.close();
    }
    // 32 × 6 MiB is more than the 32 MiB default: calls waited, none was refused.
    expect(await metric('tsgw_extension_refused_calls_total')).toBe(0);
    console.log(`peak large calls waiting: ${peakWaiting}`);
  });

  test('a call over the message limit gets RESOURCE_EXHAUSTED; every other call in flight succeeds', async () => {
    // As above, the client reads no answer until all have their headers: the budget admits them all.
    server = await startTestExtensionServer({
      maxMessageBytes: 4 * 1024 * 1024,
      inflightBytes: 8 * reservationFor(large.byteLength - 5),
    });
    const session = openSession(server.url);
    const tooLarge = grpcFrame(new Uint8Array(5 * 1024 * 1024));
    const calls: Call[] = [];
    for (let i = 0; i < 8; i++) {
      calls.push(startCall(session, TRANSLATE, large, { readAnswer: false }));
      if (i === 3) calls.push(startCall(session, TRANSLATE, tooLarge, { readAnswer: false }));
      await calls.at(-1)!.headers;
    }
    const smalls = Array.from({ length: 20 }, () => startCall(session, ROUTE, small));
    for (const call of calls) call.stream.resume();
    const answers = await Promise.all(calls.map((call) => call.answer));
    expect(answers.map(ok)).toEqual([
      ...Array(4).fill({ status: 0, message: '' }),
      { status: 8, message: `message size ${5 * 1024 * 1024} is larger than the limit ${4 * 1024 * 1024}` },
      ...Array(4).fill({ status: 0, message: '' }),
    ]);
    expect((await Promise.all(smalls.map((call) => call.answer))).map(ok)).toEqual(
      Array(20).fill({ status: 0, message: '' }),
    );
  });

  test('streams that never send their body hold nothing past their deadline', async () => {
    // Budget for one large call: one stream holds a reservation, one waits for it, two send no byte.
    // Deadlines are the client's (grpc-timeout) so the waiting one expires first, still waiting.
    server = await startTestExtensionServer({ inflightBytes: reservationFor(large.byteLength - 5) });
    const session = openSession(server.url);
    const call = (timeout: string) =>
      startCall(session, TRANSLATE, large, { send: false, headers: { 'grpc-timeout': timeout } });
    const holding = call('1500m');
    holding.stream.write(Buffer.from(large.subarray(0, 1_000_000)));
    await eventually(
      () => metric('tsgw_extension_inflight_bytes'),
      (held) => held > 0,
    );
    const waiting = call('300m');
    waiting.stream.write(Buffer.from(large.subarray(0, 1_000_000)));
    const partial = [holding, waiting];
    const silent = [call('300m'), call('300m')];
    const answers = await Promise.all([...partial, ...silent].map((call) => call.answer));
    // The server closed every stream (RST_STREAM NO_ERROR after the status); the client ended none.
    expect(answers.map((a) => [a.status, a.rstCode])).toEqual([
      [4, 0],
      [14, 0],
      [4, 0],
      [4, 0],
    ]);
    expect(answers[1]!.message).toBe('extension server busy: too many large calls in flight');
    expect(await metric('tsgw_extension_refused_calls_total')).toBe(1);
    expect(await metric('tsgw_extension_inflight_bytes')).toBe(0);
    expect(await metric('tsgw_extension_waiting_calls')).toBe(0);
    // The session is still good.
    expect(ok(await startCall(session, TRANSLATE, large).answer)).toEqual({ status: 0, message: '' });
  });
});
