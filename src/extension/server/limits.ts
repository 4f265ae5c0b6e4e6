/**
 * How much memory the extension server may hold for hook calls, and the HTTP/2 settings derived from it.
 *
 * Envoy Gateway runs its translator in every replica, so an HA install sends one PostTranslateModify per
 * replica after each change, each carrying the whole translation (megabytes). Left alone, Bun's
 * `node:http2` answers a stream with RST_STREAM ENHANCE_YOUR_CALM once a session's queued response data
 * passes `maxSessionMemory` (10 MB by default; measured on Bun 1.4.4: only outbound data counts), which
 * EG reports as RESOURCE_EXHAUSTED and, with failOpen false, as a failed translation. Raising that cap
 * alone trades failures for unbounded memory. So:
 *
 * - A process-wide budget (`inflightBytes`) caps the bytes of large calls being served: each reserves
 *   its request size twice (the request and an answer of about the same size) when its gRPC frame
 *   header arrives; one that does not fit waits with its stream paused, which withholds HTTP/2
 *   WINDOW_UPDATEs, so the client stops sending (flow control) instead of being reset. A call larger
 *   than the whole budget runs alone. The reservation is held until the answer has left, so Bun's
 *   outbound queue never holds more than the budget.
 * - Small calls (request up to `smallCallBytes`) never wait: per-route hooks arrive by the thousand
 *   during one translation and must not queue behind a large call.
 * - Per session: at most `maxConcurrentStreams` streams (grpc-go and grpc-js queue further calls
 *   themselves), each paused one holding at most one stream window, and `maxSessionMemory` above
 *   anything the budget admits, so Bun never refuses a stream the budget would serve.
 *
 * @module
 */
import { OperatorError } from '../../errors.ts';

/**
 * Default `inflightBytes`: five 3 MiB PostTranslateModify calls at once. Measured (bench/load.ts, 32
 * calls of 10k clusters in flight): 16, 32 and 64 MiB gave a large-call p99 of 1.5, 1.3 and 4.7 s
 * (the raw echo floor, unbounded: 2.7 s), because Bun's session writer shares its bandwidth among all
 * streams with data, so more calls at once finish later together; 32 MiB keeps 8 calls as fast as
 * the floor.
 */
export const DEFAULT_INFLIGHT_BYTES = 32 * 1024 * 1024;
/** Requests up to this size are served at once, outside the budget. */
export const SMALL_CALL_BYTES = 64 * 1024;
/** Streams per HTTP/2 session; EG calls one hook at a time per translation, so this is ample. */
export const MAX_CONCURRENT_STREAMS = 100;
/** HTTP/2's default stream window: what a paused (waiting) stream can hold. */
export const STREAM_WINDOW_BYTES = 65_535;

export interface ServerLimits {
  /** Largest request or response message. */
  maxMessageBytes: number;
  /** Budget of bytes reserved by large calls being served at once. */
  inflightBytes: number;
  smallCallBytes: number;
  maxConcurrentStreams: number;
  streamWindowBytes: number;
  /** Bun's `maxSessionMemory` in bytes (the option itself is in megabytes). */
  sessionMemoryBytes: number;
}

export function resolveServerLimits(options: {
  maxMessageBytes: number;
  inflightBytes?: number;
}): ServerLimits {
  const { maxMessageBytes, inflightBytes = DEFAULT_INFLIGHT_BYTES } = options;
  if (!Number.isInteger(inflightBytes) || inflightBytes < 1) {
    throw new OperatorError('Invalid', `inflightBytes must be a positive whole number: ${inflightBytes}`);
  }
  // Queued answers of one session never exceed what the budget admits (or the one call running alone),
  // plus the answers of small calls; a megabyte of slack for frame and header overhead.
  const admitted = Math.max(inflightBytes, reservationFor(maxMessageBytes));
  const small = MAX_CONCURRENT_STREAMS * SMALL_CALL_BYTES;
  return {
    maxMessageBytes,
    inflightBytes,
    smallCallBytes: SMALL_CALL_BYTES,
    maxConcurrentStreams: MAX_CONCURRENT_STREAMS,
    streamWindowBytes: STREAM_WINDOW_BYTES,
    sessionMemoryBytes: admitted + small + 1_000_000,
  };
}

/** What a large call reserves: its request, and an answer assumed of the same size. */
export function reservationFor(messageBytes: number): number {
  return 2 * (messageBytes + 5);
}

/**
 * Upper bound of the bytes held for hook calls with `sessions` client connections: the budget (or the
 * one call larger than it, alone), and per session its paused streams' windows and its small calls'
 * requests and answers. The process's own baseline (about 80 MB) comes on top.
 */
export function memoryBound(limits: ServerLimits, sessions: number): number {
  const perSession = limits.maxConcurrentStreams * (limits.streamWindowBytes + 2 * limits.smallCallBytes);
  return Math.max(limits.inflightBytes, reservationFor(limits.maxMessageBytes)) + sessions * perSession;
}

/** `node:http2` server options for these limits (Bun honours all three; checked on Bun 1.4.4). */
export function http2SessionOptions(limits: ServerLimits): {
  maxSessionMemory: number;
  settings: { maxConcurrentStreams: number; initialWindowSize: number };
} {
  return {
    maxSessionMemory: Math.ceil(limits.sessionMemoryBytes / 1_000_000),
    settings: {
      maxConcurrentStreams: limits.maxConcurrentStreams,
      initialWindowSize: limits.streamWindowBytes,
    },
  };
}
