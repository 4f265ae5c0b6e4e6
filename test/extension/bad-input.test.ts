/**
 * Whatever arrives, the extension server answers with a gRPC status that names the caller's mistake,
 * and keeps serving. Requests are sent as raw HTTP/2 frames so nothing between the test and the server
 * repairs them; both the direct gRPC path and connect's pipeline are covered.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { ClientHttp2Session } from 'node:http2';
import { gzipSync } from 'node:zlib';
import { create, toBinary } from '@bufbuild/protobuf';
import { Code } from '@connectrpc/connect';
import { ListenerSchema } from '../../gen/envoy/config/listener/v3/listener_pb.ts';
import { HealthCheckRequestSchema } from '../../gen/grpc/health/v1/health_pb.ts';
import { OperatorError } from '../../src/errors.ts';
import { HOOK_NAMES } from '../../src/extension/hooks.ts';
import {
  seededRandom,
  startTestExtensionServer,
  type TestExtensionServer,
} from '../harness/support/extension-server.ts';
import { openSession, rawCall } from '../harness/support/raw-grpc.ts';
import { encodeCluster, grpcFrame, translateFixture } from '../harness/support/xds-fixtures.ts';

const path = (hook: string) => `/envoygateway.extension.EnvoyGatewayExtension/${hook}`;
const MAX = 64 * 1024;
/** connect's `Code` has no member for success. */
const OK = 0;

/** Bytes that cannot be a protobuf message: field 1, length-delimited, length 127, then nothing. */
const UNDECODABLE = new Uint8Array([0x0a, 0x7f, 0x01]);

describe.each([
  ['direct gRPC path', true],
  ['connect pipeline', false],
])('bad input, %s', (_name, directGrpc) => {
  let ext: TestExtensionServer;
  let session: ClientHttp2Session;

  beforeAll(async () => {
    ext = await startTestExtensionServer({ directGrpc, maxMessageBytes: MAX });
    session = openSession(ext.url);
  });
  afterAll(async () => {
    session.close();
    await ext.close();
  });

  const expectStillServing = async () => {
    const answer = await rawCall(session, path('PostClusterModify'), grpcFrame(new Uint8Array(0)));
    expect(answer.grpcStatus).toBe(OK);
  };

  test.each(HOOK_NAMES)('%s: an undecodable message is INVALID_ARGUMENT', async (hook) => {
    const answer = await rawCall(session, path(hook), grpcFrame(UNDECODABLE));
    expect(answer.grpcStatus).toBe(Code.InvalidArgument);
    expect(Number(answer.headers[':status'])).toBe(200);
    expect(answer.body.byteLength).toBe(0);
  });

  test('a truncated frame (the header promises more than arrives) is INVALID_ARGUMENT', async () => {
    const frame = grpcFrame(translateFixture(3).request);
    const answer = await rawCall(
      session,
      path('PostTranslateModify'),
      frame.subarray(0, frame.byteLength - 10),
    );
    expect(answer.grpcStatus).toBe(Code.InvalidArgument);
    const headerOnly = await rawCall(session, path('PostRouteModify'), new Uint8Array([0, 0, 0]));
    expect(headerOnly.grpcStatus).toBe(Code.InvalidArgument);
  });

  test('random bytes as the whole body are INVALID_ARGUMENT', async () => {
    const random = seededRandom(7);
    const body = Uint8Array.from({ length: 300 }, () => Math.floor(random() * 256));
    // An uncompressed frame whose length (4096, bytes 1–4) overshoots the body but not the limit.
    body.set([0, 0, 0, 0x10, 0], 0);
    const answer = await rawCall(session, path('PostVirtualHostModify'), body);
    expect(answer.grpcStatus).toBe(Code.InvalidArgument);
  });

  test('a message of the wrong type is INVALID_ARGUMENT when its wire types clash', async () => {
    // A Cluster sent as a PostTranslateModifyRequest: its field 2 (a varint enum) lands on `clusters`
    // (repeated bytes).
    const answer = await rawCall(
      session,
      path('PostTranslateModify'),
      grpcFrame(withVarintField2(encodeCluster(1))),
    );
    expect(answer.grpcStatus).toBe(Code.InvalidArgument);
    // A health request sent to PostRouteModify: field 1 is a string there and a Route here, and the
    // string does not parse as a Route.
    const health = toBinary(
      HealthCheckRequestSchema,
      create(HealthCheckRequestSchema, { service: '\u0008\u0001\u00ff' }),
    );
    const route = await rawCall(session, path('PostRouteModify'), grpcFrame(health));
    expect(route.grpcStatus).toBe(Code.InvalidArgument);
  });

  test('a message over the limit is RESOURCE_EXHAUSTED, announced or actual', async () => {
    const big = grpcFrame(new Uint8Array(MAX + 1));
    const answer = await rawCall(session, path('PostTranslateModify'), big);
    expect(answer.grpcStatus).toBe(Code.ResourceExhausted);
    // Only the header: refused before the body arrives (the direct path); connect reads first.
    const announced = new Uint8Array([0, 0x7f, 0xff, 0xff, 0xff]);
    const header = await rawCall(session, path('PostClusterModify'), announced);
    expect([Code.ResourceExhausted, Code.InvalidArgument]).toContain(header.grpcStatus);
    await expectStillServing();
  });

  test('an empty message and a request without a context are fine; no message at all is UNIMPLEMENTED', async () => {
    const empty = await rawCall(session, path('PostTranslateModify'), grpcFrame(new Uint8Array(0)));
    expect(empty.grpcStatus).toBe(OK);
    const noContext = translateFixture(2);
    const withoutContext = await rawCall(
      session,
      path('PostTranslateModify'),
      grpcFrame(concat(noContext.clusters.map((c) => field(2, c)))),
    );
    expect(withoutContext.grpcStatus).toBe(OK);
    const nothing = await rawCall(session, path('PostHTTPListenerModify'), new Uint8Array(0));
    expect(nothing.grpcStatus).toBe(Code.Unimplemented);
  });

  test('two messages in a unary call are UNIMPLEMENTED (cardinality)', async () => {
    const one = grpcFrame(new Uint8Array(0));
    const answer = await rawCall(session, path('PostRouteModify'), concat([one, one]));
    expect(answer.grpcStatus).toBe(Code.Unimplemented);
  });

  test('a compressed flag without grpc-encoding is refused; a gzip request is accepted', async () => {
    const flagged = grpcFrame(new Uint8Array(0), true);
    const refused = await rawCall(session, path('PostRouteModify'), flagged);
    expect(refused.grpcStatus).toBe(Code.InvalidArgument);
    const listener = toBinary(ListenerSchema, create(ListenerSchema, { name: 'zipped' }));
    const zipped = grpcFrame(gzipSync(field(1, listener)), true);
    const accepted = await rawCall(session, path('PostHTTPListenerModify'), zipped, {
      'grpc-encoding': 'gzip',
    });
    expect(accepted.grpcStatus).toBe(OK);
    expect(accepted.body.includes(Buffer.from('zipped'))).toBe(true);
  });

  test('a malformed grpc-timeout is INVALID_ARGUMENT; a long one is shortened, not refused', async () => {
    const bad = await rawCall(session, path('PostRouteModify'), grpcFrame(new Uint8Array(0)), {
      'grpc-timeout': 'soon',
    });
    expect(bad.grpcStatus).toBe(Code.InvalidArgument);
    const long = await rawCall(session, path('PostRouteModify'), grpcFrame(new Uint8Array(0)), {
      'grpc-timeout': '99999999H',
    });
    expect(long.grpcStatus).toBe(OK);
  });

  test('hook errors: Invalid is INVALID_ARGUMENT, anything else INTERNAL, and the next call succeeds', async () => {
    ext.hooks.fail('PostEndpointsModify', new OperatorError('Invalid', 'no endpoints for backend x'));
    const invalid = await rawCall(session, path('PostEndpointsModify'), grpcFrame(new Uint8Array(0)));
    expect(invalid.grpcStatus).toBe(Code.InvalidArgument);
    expect(invalid.grpcMessage).toBe('PostEndpointsModify: no endpoints for backend x');

    ext.hooks.fail('PostEndpointsModify', new OperatorError('Transient', 'API server away'));
    const transient = await rawCall(session, path('PostEndpointsModify'), grpcFrame(new Uint8Array(0)));
    expect(transient.grpcStatus).toBe(Code.Internal);
    expect(transient.grpcMessage).toBe('PostEndpointsModify: API server away');

    const bug = new RangeError('index 7 out of range');
    ext.hooks.fail('PostEndpointsModify', bug);
    const internal = await rawCall(session, path('PostEndpointsModify'), grpcFrame(new Uint8Array(0)));
    expect(internal.grpcStatus).toBe(Code.Internal);
    expect(internal.grpcMessage).toContain('PostEndpointsModify');
    expect(internal.grpcMessage).not.toContain('index 7');
    expect(internal.grpcMessage).not.toContain('.ts:');
    ext.hooks.clear();

    // Logged once each, with the stack in our log only.
    const failures = ext.logs.filter((r) => r['msg'] === `hook call failed: ${internal.grpcMessage}`);
    expect(failures).toHaveLength(1);
    expect(String((failures[0]!['err'] as { stack?: string }).stack)).toContain('index 7 out of range');
    await expectStillServing();
  });

  // A client's mistake is its own to fix: one warning naming the RPC and what was wrong, no stack
  // (the stack would point into our decoder or hook, not at anything broken). INTERNAL keeps its stack.
  test("a client's bad request is one warning line naming the RPC, without a stack", async () => {
    const before = ext.logs.length;
    await rawCall(session, path('PostRouteModify'), grpcFrame(UNDECODABLE));
    ext.hooks.fail('PostClusterModify', new OperatorError('Invalid', 'backend has no port'));
    await rawCall(session, path('PostClusterModify'), grpcFrame(new Uint8Array(0)));
    ext.hooks.clear();
    const failures = ext.logs.slice(before).filter((r) => String(r['msg']).startsWith('hook call failed'));
    expect(failures.map((r) => [r['hook'], r['code'], r['level']])).toEqual([
      ['PostRouteModify', 'invalid_argument', 40],
      ['PostClusterModify', 'invalid_argument', 40],
    ]);
    expect(String(failures[0]!['msg'])).toStartWith('hook call failed: invalid request message: ');
    expect(failures[1]!['msg']).toBe('hook call failed: PostClusterModify: backend has no port');
    for (const record of failures) {
      expect(JSON.stringify(record)).not.toContain('stack');
      expect(JSON.stringify(record)).not.toContain('\\n    at ');
    }
  });

  test('the hook sees one snapshot per call', async () => {
    ext.store.replace([]);
    const version = ext.store.snapshot().version;
    await rawCall(session, path('PostRouteModify'), grpcFrame(new Uint8Array(0)));
    expect(ext.hooks.calls.at(-1)).toEqual({ hook: 'PostRouteModify', snapshotVersion: version });
  });
});

describe('decode failures over the other protocols are INVALID_ARGUMENT too', () => {
  let ext: TestExtensionServer;
  let session: ClientHttp2Session;
  beforeAll(async () => {
    ext = await startTestExtensionServer();
    session = openSession(ext.url);
  });
  afterAll(async () => {
    session.close();
    await ext.close();
  });

  test('Connect protocol', async () => {
    const answer = await rawCall(session, path('PostClusterModify'), UNDECODABLE, {
      'content-type': 'application/proto',
      'connect-protocol-version': '1',
    });
    expect(Number(answer.headers[':status'])).toBe(400);
    expect(JSON.parse(answer.body.toString())).toMatchObject({ code: 'invalid_argument' });
  });

  test('gRPC-Web', async () => {
    const answer = await rawCall(session, path('PostClusterModify'), grpcFrame(UNDECODABLE), {
      'content-type': 'application/grpc-web+proto',
    });
    // The status travels in a trailer frame (flag 0x80) at the end of the body.
    expect(answer.body[0]).toBe(0x80);
    expect(answer.body.subarray(5).toString()).toContain('grpc-status: 3');
  });

  test('gRPC with a JSON codec', async () => {
    const answer = await rawCall(
      session,
      path('PostClusterModify'),
      grpcFrame(Buffer.from('{"cluster": 5}')),
      {
        'content-type': 'application/grpc+json',
      },
    );
    expect(answer.grpcStatus).toBe(Code.InvalidArgument);
  });
});

describe.each([
  ['direct gRPC path', true],
  ['connect pipeline', false],
])('fuzz: 10,000 malformed requests over four connections, %s', (_name, directGrpc) => {
  test('every request gets a gRPC status, none INTERNAL, and the server stays healthy', async () => {
    const ext = await startTestExtensionServer({ maxMessageBytes: MAX, directGrpc });
    const sessions = Array.from({ length: 4 }, () => openSession(ext.url));
    const random = seededRandom(20_261_126);
    const int = (n: number) => Math.floor(random() * n);
    const valid = [
      grpcFrame(translateFixture(4, { unknownFields: true }).request),
      grpcFrame(field(1, encodeCluster(3))),
      grpcFrame(field(1, toBinary(ListenerSchema, create(ListenerSchema, { name: 'fuzz' })))),
      grpcFrame(new Uint8Array(0)),
    ];
    const payload = (): Uint8Array => {
      const base = valid[int(valid.length)]!;
      switch (int(4)) {
        case 0: // random bytes, sometimes framed
          return Uint8Array.from({ length: int(600) }, () => int(256));
        case 1:
          return grpcFrame(Uint8Array.from({ length: int(600) }, () => int(256)));
        case 2: // truncation
          return base.subarray(0, int(base.byteLength + 1));
        default: {
          // bit flips, some of them in the message and some in the frame header
          const copy = Uint8Array.from(base);
          for (let flips = 1 + int(4); flips > 0; flips--) {
            const at = int(copy.byteLength);
            copy[at] = copy[at]! ^ (1 << int(8));
          }
          return copy;
        }
      }
    };
    const counts = new Map<number, number>();
    const TOTAL = 10_000;
    const BATCH = 50;
    try {
      for (let sent = 0; sent < TOTAL; sent += BATCH) {
        const answers = await Promise.all(
          Array.from({ length: BATCH }, (_, i) =>
            rawCall(
              sessions[(sent + i) % sessions.length]!,
              path(HOOK_NAMES[int(HOOK_NAMES.length)]!),
              payload(),
            ),
          ),
        );
        for (const answer of answers) counts.set(answer.grpcStatus, (counts.get(answer.grpcStatus) ?? 0) + 1);
      }
      const total = [...counts.values()].reduce((a, b) => a + b, 0);
      expect(total).toBe(TOTAL);
      expect(counts.has(Number.NaN)).toBe(false);
      expect(counts.get(Code.Internal) ?? 0, JSON.stringify([...counts])).toBe(0);
      for (const code of counts.keys()) {
        expect([OK, Code.InvalidArgument, Code.ResourceExhausted, Code.Unimplemented]).toContain(code);
      }
      expect(counts.get(Code.InvalidArgument) ?? 0).toBeGreaterThan(1000);

      const health = toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: '' }));
      const check = await rawCall(sessions[0]!, '/grpc.health.v1.Health/Check', grpcFrame(health));
      expect(check.grpcStatus).toBe(OK);
      expect([...check.body]).toEqual([0, 0, 0, 0, 2, 0x08, 0x01]); // status: SERVING
      const ok = await rawCall(sessions[1]!, path('PostTranslateModify'), valid[0]!);
      expect(ok.grpcStatus).toBe(OK);
    } finally {
      for (const session of sessions) session.close();
      await ext.close();
    }
  }, 120_000);
});

/** A length-delimited field (number < 16) around `payload`. */
function field(fieldNo: number, payload: Uint8Array): Uint8Array {
  const length: number[] = [];
  let n = payload.byteLength;
  while (n >= 0x80) {
    length.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  length.push(n);
  return concat([new Uint8Array([(fieldNo << 3) | 2, ...length]), payload]);
}

function withVarintField2(message: Uint8Array): Uint8Array {
  return concat([new Uint8Array([0x10, 0x03]), message]);
}

function concat(parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}
