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
 * A large call reserves from the in-flight budget (`limits.ts`, `admission.ts`) before its body is
 * read, and waits with its stream paused when the budget is full; small calls never wait.
 *
 * gRPC semantics kept: status in trailers (see `writeStatus`), `grpc-message` encoded per the spec, `grpc-timeout` honoured and capped, one message
 * per unary call (more or none is UNIMPLEMENTED, as in connect and the gRPC spec's cardinality rule).
 *
 * @module
 */

import { constants, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { Code, ConnectError } from '@connectrpc/connect';
import type { HookName } from '../hooks.ts';
import type { Admission, Ticket } from './admission.ts';
import type { CallReporter } from './call-observer.ts';
import { reservationFor } from './limits.ts';
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
  /** The byte budget large calls reserve from (`limits.ts`). */
  admission: Admission;
  /** Requests up to this size skip the budget and run inline. */
  smallCallBytes: number;
  /** Where large calls' decode, hook and encode run, one per event-loop turn. */
  largeStep: (step: () => void) => void;
  /** A call refused because it waited for the budget until its deadline (answered UNAVAILABLE). */
  onRefused(hook: HookName): void;
  /** A large call got its reservation, after waiting this long (0 when it fitted at once). */
  onAdmitted(hook: HookName, waitedMs: number): void;
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

const FRAME_HEADER = 5;

/**
 * One call: the frame header (5 bytes) first; from its length the call is small (read at once) or
 * large (reserves from the budget and, if it must wait, pauses its stream so HTTP/2 flow control holds
 * the client back). The message is copied into one buffer of the announced size as it arrives, so no
 * chunk list and no final concatenation coexist with it. Everything held is dropped as soon as the call
 * ends, whatever ended it.
 */
export function handleGrpcUnary(
  req: Http2ServerRequest,
  res: Http2ServerResponse,
  route: GrpcUnaryRoute,
  options: GrpcUnaryOptions,
): void {
  const { reporter, maxMessageBytes, admission } = options;
  const startedAt = reporter.now();
  let received = 0;
  let finished = false;
  /** The frame header while incomplete; then its flags and length. */
  let head: Buffer | undefined;
  let flags = 0;
  let length = -1;
  /** Bytes that arrived while the call waited for the budget (at most one stream window). */
  let waitingChunks: Buffer[] | undefined;
  let message: Buffer | undefined;
  let filled = 0;
  let extra = 0;
  let ticket: Ticket | undefined;
  let ended = false;

  const dropBuffers = () => {
    head = undefined;
    waitingChunks = undefined;
    message = undefined;
  };

  const finish = (error: ConnectError | undefined) => {
    finished = true;
    clearTimeout(timer);
    options.shutdownSignal.removeEventListener('abort', onShutdown);
    dropBuffers();
    // A failed call answers with a few bytes of trailers: its reservation goes back at once. A
    // successful one holds it until its answer has left (`res` close), bounding Bun's outbound queue.
    if (error !== undefined) ticket?.release();
    reporter.report(route.hook, startedAt, received, error);
  };

  const fail = (error: ConnectError) => {
    if (finished) return;
    finish(error);
    if (res.destroyed || res.headersSent) return;
    writeStatus(res, error);
    // Whatever the client still sends is read and dropped. A client still sending (or one that never
    // will) is told to stop, as HTTP/2 §8.1 allows after a complete answer: RST_STREAM NO_ERROR once the
    // trailers are out, so neither side keeps the stream (and what it buffered) open. Bun's 'finish'
    // only fires when the whole stream closes, so it cannot be the cue.
    req.resume();
    // setImmediate: after the trailers (HEADERS, not flow-controlled) have been handed to the session.
    if (!ended) setImmediate(() => res.stream.close(constants.NGHTTP2_NO_ERROR));
  };

  const timeout = parseGrpcTimeout(req.headers['grpc-timeout'] as string | undefined);
  const timer = setTimeout(
    () => {
      if (ticket !== undefined && !ticket.granted) {
        // Still waiting for the budget: UNAVAILABLE is what Envoy Gateway retries (with backoff).
        options.onRefused(route.hook);
        fail(new ConnectError('extension server busy: too many large calls in flight', Code.Unavailable));
      } else fail(new ConnectError('deadline exceeded', Code.DeadlineExceeded));
    },
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

  /** Copies message bytes into the message buffer; bytes past the announced length are only counted. */
  const take = (chunk: Buffer) => {
    const room = length - filled;
    if (chunk.byteLength <= room) {
      message!.set(chunk, filled);
      filled += chunk.byteLength;
    } else {
      if (room > 0) message!.set(chunk.subarray(0, room), filled);
      filled = length;
      extra += chunk.byteLength - room;
    }
  };

  const admitted = () => {
    if (finished) return;
    message = Buffer.allocUnsafe(length);
    const early = waitingChunks ?? [];
    waitingChunks = undefined;
    for (const chunk of early) take(chunk);
    if (req.isPaused()) req.resume();
    if (ended) complete();
  };

  const onHeader = () => {
    flags = head![0]!;
    length = head!.readUInt32BE(1);
    const rest = head!.byteLength > FRAME_HEADER ? head!.subarray(FRAME_HEADER) : undefined;
    head = undefined;
    if (length > maxMessageBytes) {
      fail(tooLarge(length, maxMessageBytes));
      return;
    }
    waitingChunks = rest === undefined ? [] : [rest];
    if (length <= options.smallCallBytes) {
      admitted();
      return;
    }
    const askedAt = reporter.now();
    ticket = admission.request(reservationFor(length), () => {
      options.onAdmitted(route.hook, reporter.now() - askedAt);
      admitted();
    });
    if (ticket.granted) {
      options.onAdmitted(route.hook, 0);
      admitted();
    } else req.pause();
  };

  req.on('data', (chunk: Buffer) => {
    if (finished) return;
    received += chunk.byteLength;
    if (received > maxMessageBytes + FRAME_HEADER) {
      fail(tooLarge(received - FRAME_HEADER, maxMessageBytes));
      return;
    }
    if (length < 0) {
      // Refuse as soon as the frame header announces too much, before buffering anything.
      head = head === undefined ? chunk : Buffer.concat([head, chunk]);
      if (head.byteLength >= FRAME_HEADER) onHeader();
      return;
    }
    if (message === undefined) waitingChunks?.push(chunk);
    else take(chunk);
  });
  req.on('error', () => {
    if (!finished) finish(new ConnectError('request stream failed', Code.Canceled));
  });
  res.on('close', () => {
    ticket?.release();
    if (!finished) finish(new ConnectError('client cancelled the call', Code.Canceled));
  });
  req.on('end', () => {
    if (finished) return;
    ended = true;
    if (length < 0 || message !== undefined) complete();
    // Otherwise the call still waits for the budget; `admitted` completes it.
  });

  /** The whole request is in: check the envelope, then decode, call the hook and answer. */
  const complete = () => {
    if (finished) return;
    try {
      checkEnvelope(received, flags, length, filled, extra);
    } catch (error) {
      fail(ConnectError.from(error, Code.Internal));
      return;
    }
    const body = message ?? Buffer.alloc(0);
    dropBuffers();
    if (ticket === undefined) respond(body);
    else options.largeStep(() => respond(body));
  };

  const respond = (body: Buffer) => {
    if (finished) return;
    let response: Uint8Array;
    try {
      let request: unknown;
      try {
        // A plain Uint8Array view, not the Buffer: every resource is a subarray of it, and JSC's
        // subarray of a Buffer goes through the species lookup, which made the raw hooks twice as slow.
        request = route.codec.decode(new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
      } catch (error) {
        if (!(error instanceof DecodeError)) throw error;
        throw new ConnectError(`invalid request message: ${error.message}`, Code.InvalidArgument);
      }
      response = encode(route, route.invoke(request));
    } catch (error) {
      fail(ConnectError.from(error, Code.Internal));
      return;
    }
    if (response.byteLength - FRAME_HEADER > maxMessageBytes) {
      fail(
        new ConnectError(
          `response message size ${response.byteLength - FRAME_HEADER} is larger than the limit ${maxMessageBytes}`,
          Code.ResourceExhausted,
        ),
      );
      return;
    }
    if (res.destroyed) {
      finish(new ConnectError('client cancelled the call', Code.Canceled));
      return;
    }
    // The reservation assumed an answer as large as the request; a larger one is held as it is.
    ticket?.grow(response.byteLength - (length + FRAME_HEADER));
    finish(undefined);
    res.writeHead(200, { 'content-type': 'application/grpc' });
    res.addTrailers({ 'grpc-status': '0' });
    res.end(response);
  };
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

/** The request body must be exactly one uncompressed message; the same errors as connect's. */
function checkEnvelope(received: number, flags: number, length: number, filled: number, extra: number): void {
  if (received === 0) {
    throw new ConnectError('protocol error: missing input message for unary method', Code.Unimplemented);
  }
  if (received < FRAME_HEADER)
    throw new ConnectError('protocol error: incomplete envelope', Code.InvalidArgument);
  if (flags !== 0) {
    throw new ConnectError(
      flags === 1
        ? 'protocol error: compressed message without grpc-encoding'
        : `protocol error: invalid frame flags ${flags}`,
      Code.InvalidArgument,
    );
  }
  if (filled < length) throw new ConnectError('protocol error: incomplete envelope', Code.InvalidArgument);
  if (extra > 0) {
    throw new ConnectError(
      'protocol error: received extra input message for unary method',
      Code.Unimplemented,
    );
  }
}
