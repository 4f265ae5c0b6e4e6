/**
 * The path Envoy Gateway's calls take: unary gRPC, binary protobuf, no compression. It reads the one
 * request frame, decodes it with the method's frame codec, calls the hook wrapper and writes the answer
 * the way the runtime's floor does (one HEADERS, the frame in DATA, trailers with `grpc-status`).
 *
 * connect serves the same methods for every other combination (Connect and gRPC-Web protocols, JSON,
 * compressed requests). Its generic pipeline costs about as much as the network round trip itself for a
 * large PostTranslateModify (async-iterator stages, a serialisation copy, an envelope copy, chunked
 * writes awaiting `drain`), and EG calls the small hooks thousands of times per translation, so the
 * common case is worth these hundred lines.
 *
 * gRPC semantics kept: status in trailers (see `writeStatus`), `grpc-message` encoded per the spec, `grpc-timeout` honoured and capped, one message
 * per unary call (more or none is UNIMPLEMENTED, as in connect and the gRPC spec's cardinality rule).
 *
 * @module
 */

import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { Code, ConnectError } from '@connectrpc/connect';
import type { HookName } from '../hooks.ts';
import type { CallReporter } from './call-observer.ts';
import { DecodeError, type FrameCodec } from './raw-codec.ts';

export interface GrpcUnaryRoute {
  hook: HookName;
  codec: FrameCodec;
  invoke(request: unknown): unknown;
}

export interface GrpcUnaryOptions {
  maxMessageBytes: number;
  timeoutMs: number;
  shutdownSignal: AbortSignal;
  reporter: CallReporter;
}

const GRPC_TIMEOUT_UNITS: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1000,
  m: 1,
  u: 1e-3,
  n: 1e-6,
};

/** Milliseconds of a `grpc-timeout` value; undefined when absent; NaN when malformed. */
export function parseGrpcTimeout(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  return match === null ? Number.NaN : Number(match[1]) * GRPC_TIMEOUT_UNITS[match[2]!]!;
}

/** True when this request can take the direct path: gRPC, binary protobuf, uncompressed. */
export function isPlainGrpc(req: Http2ServerRequest): boolean {
  const type = req.headers['content-type'];
  if (type !== 'application/grpc' && type !== 'application/grpc+proto') return false;
  const encoding = req.headers['grpc-encoding'];
  return req.method === 'POST' && (encoding === undefined || encoding === 'identity');
}

export function handleGrpcUnary(
  req: Http2ServerRequest,
  res: Http2ServerResponse,
  route: GrpcUnaryRoute,
  options: GrpcUnaryOptions,
): void {
  const { reporter, maxMessageBytes } = options;
  const startedAt = reporter.now();
  const chunks: Buffer[] = [];
  let received = 0;
  let finished = false;
  let headerChecked = false;

  const finish = (error: ConnectError | undefined) => {
    finished = true;
    clearTimeout(timer);
    options.shutdownSignal.removeEventListener('abort', onShutdown);
    reporter.report(route.hook, startedAt, received, error);
  };

  const fail = (error: ConnectError) => {
    if (finished) return;
    finish(error);
    if (res.destroyed || res.headersSent) return;
    writeStatus(res, error);
    // Whatever the client still sends is not read; the stream is reset once our side is closed.
    req.resume();
  };

  const timeout = parseGrpcTimeout(req.headers['grpc-timeout'] as string | undefined);
  const timer = setTimeout(
    () => fail(new ConnectError('deadline exceeded', Code.DeadlineExceeded)),
    timeout === undefined || Number.isNaN(timeout) ? options.timeoutMs : Math.min(timeout, options.timeoutMs),
  );
  const onShutdown = () => fail(new ConnectError('server shutting down', Code.Unavailable));
  options.shutdownSignal.addEventListener('abort', onShutdown, { once: true });
  if (Number.isNaN(timeout)) {
    fail(new ConnectError(`invalid grpc-timeout ${req.headers['grpc-timeout']}`, Code.InvalidArgument));
    return;
  }
  if (options.shutdownSignal.aborted) {
    onShutdown();
    return;
  }

  req.on('data', (chunk: Buffer) => {
    if (finished) return;
    received += chunk.byteLength;
    chunks.push(chunk);
    // Refuse as soon as the frame header announces too much, before buffering it.
    if (!headerChecked && received >= 5) {
      headerChecked = true;
      const head = chunks.length === 1 ? chunk : Buffer.concat(chunks);
      const length = head.readUInt32BE(1);
      if (length > maxMessageBytes) {
        fail(tooLarge(length, maxMessageBytes));
        return;
      }
    }
    if (received > maxMessageBytes + 5) fail(tooLarge(received - 5, maxMessageBytes));
  });
  req.on('error', () => {
    if (!finished) finish(new ConnectError('request stream failed', Code.Canceled));
  });
  res.on('close', () => {
    if (!finished) finish(new ConnectError('client cancelled the call', Code.Canceled));
  });
  req.on('end', () => {
    if (finished) return;
    let response: Uint8Array;
    try {
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received);
      const message = singleMessage(body);
      let request: unknown;
      try {
        request = route.codec.decode(message);
      } catch (error) {
        if (!(error instanceof DecodeError)) throw error;
        throw new ConnectError(`invalid request message: ${error.message}`, Code.InvalidArgument);
      }
      response = encode(route, route.invoke(request));
    } catch (error) {
      fail(ConnectError.from(error, Code.Internal));
      return;
    }
    if (response.byteLength - 5 > maxMessageBytes) {
      fail(
        new ConnectError(
          `response message size ${response.byteLength - 5} is larger than the limit ${maxMessageBytes}`,
          Code.ResourceExhausted,
        ),
      );
      return;
    }
    if (res.destroyed) {
      finish(new ConnectError('client cancelled the call', Code.Canceled));
      return;
    }
    finish(undefined);
    res.writeHead(200, { 'content-type': 'application/grpc' });
    res.addTrailers({ 'grpc-status': '0' });
    res.end(response);
  });
}

/**
 * An error as HEADERS then trailers. Bun's compatibility API cannot put END_STREAM on the first HEADERS
 * frame, and grpc-go reads a status only from a frame that ends the stream, so a "trailers-only"
 * response would reach Envoy Gateway as INTERNAL "server closed the stream without sending trailers".
 */
export function writeStatus(res: Http2ServerResponse, error: ConnectError): void {
  res.writeHead(200, { 'content-type': 'application/grpc' });
  res.addTrailers({
    'grpc-status': String(error.code),
    'grpc-message': encodeGrpcMessage(error.rawMessage),
  });
  res.end();
}

/** Bytes a `grpc-message` carries as they are: space and visible ASCII, except "%". */
const UNENCODED = /^[\x20-\x24\x26-\x7e]*$/;

/**
 * `grpc-message` as the gRPC HTTP/2 spec has it: the UTF-8 bytes, each one outside 0x20–0x7E and "%"
 * itself percent-encoded, nothing else. `encodeURIComponent` (connect's choice) also encodes ":", ",",
 * "/" and the like, which grpc-js (decodeURI) hands to the user undecoded. A leading or trailing space
 * is encoded too: HTTP/2 forbids a field value that starts or ends with whitespace.
 */
export function encodeGrpcMessage(message: string): string {
  if (UNENCODED.test(message) && !message.startsWith(' ') && !message.endsWith(' ')) return message;
  const bytes = new TextEncoder().encode(message);
  let out = '';
  bytes.forEach((byte, i) => {
    const plain =
      byte >= 0x20 &&
      byte <= 0x7e &&
      byte !== 0x25 &&
      !(byte === 0x20 && (i === 0 || i === bytes.length - 1));
    out += plain ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  });
  return out;
}

function encode(route: GrpcUnaryRoute, message: unknown): Uint8Array {
  try {
    return route.codec.encodeFrame(message);
  } catch (error) {
    throw new ConnectError(
      `${route.hook}: cannot encode the response`,
      Code.Internal,
      undefined,
      undefined,
      error,
    );
  }
}

function tooLarge(size: number, limit: number): ConnectError {
  return new ConnectError(`message size ${size} is larger than the limit ${limit}`, Code.ResourceExhausted);
}

/** The one message of a unary request body; its frame header must be exact. */
function singleMessage(body: Buffer): Uint8Array {
  if (body.byteLength === 0) {
    throw new ConnectError('protocol error: missing input message for unary method', Code.Unimplemented);
  }
  if (body.byteLength < 5)
    throw new ConnectError('protocol error: incomplete envelope', Code.InvalidArgument);
  const flags = body[0]!;
  const length = body.readUInt32BE(1);
  if (flags !== 0) {
    throw new ConnectError(
      flags === 1
        ? 'protocol error: compressed message without grpc-encoding'
        : `protocol error: invalid frame flags ${flags}`,
      Code.InvalidArgument,
    );
  }
  if (5 + length > body.byteLength)
    throw new ConnectError('protocol error: incomplete envelope', Code.InvalidArgument);
  if (5 + length < body.byteLength) {
    throw new ConnectError(
      'protocol error: received extra input message for unary method',
      Code.Unimplemented,
    );
  }
  return body.subarray(5);
}
