/**
 * The Envoy Gateway extension server: connect's router on Bun's `node:http2`, cleartext HTTP/2 with prior
 * knowledge by default (what EG's grpc-go client speaks without TLS), TLS or mTLS from files.
 *
 * connect's own `connectNodeAdapter` is not used: it prints failed writes to `console.error`, offers no
 * place to count request bytes or to bound a call that carries no deadline (EG sends none), and cannot
 * answer an unknown gRPC method with a gRPC status. The adapter here is the same twenty lines on top of
 * connect's exported universal request/response conversions, plus those three things.
 *
 * @module
 */

import {
  createSecureServer,
  createServer,
  type Http2SecureServer,
  type Http2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type ServerHttp2Session,
} from 'node:http2';
import type { TLSSocket } from 'node:tls';
import {
  Code,
  ConnectError,
  createConnectRouter,
  createContextValues,
  type HandlerContext,
} from '@connectrpc/connect';
import type { UniversalHandler, UniversalServerResponse } from '@connectrpc/connect/protocol';
import {
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from '@connectrpc/connect-node';
import { Health } from '../../../gen/grpc/health/v1/health_pb.ts';
import { OperatorError } from '../../errors.ts';
import { formatHostPort } from '../../http/address.ts';
import type { ResourceStore } from '../../model/resource-store.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Metrics } from '../../observability/metrics.ts';
import type { ExtensionHooks, HookEffect, HookName } from '../hooks.ts';
import { createAdmission, createTurnQueue } from './admission.ts';
import { CALL_INFO, type CallInfo, createCallReporter } from './call-observer.ts';
import {
  encodeGrpcMessage,
  type GrpcUnaryOptions,
  type GrpcUnaryRoute,
  handleGrpcUnary,
  isPlainGrpc,
  parseGrpcTimeout,
  writeStatus,
} from './grpc-unary.ts';
import { createHealthService, createHealthState } from './health-service.ts';
import { createHookMethods, EXTENSION_SERVICE_NAME } from './hook-service.ts';
import { http2SessionOptions, resolveServerLimits } from './limits.ts';
import { messageCodec, rawListenerCodec, rawTranslateCodec } from './raw-codec.ts';
import { readTlsFiles, type TlsFiles, watchTlsFiles } from './tls-files.ts';

/** Envoy Gateway's translate hooks carry whole xDS resource lists; 256 MiB leaves room for very large Gateways. */
export const DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024;
/** EG sends no deadline; a call that has not finished after this long is cancelled. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** How often the TLS files are checked for rotation. */
export const DEFAULT_TLS_RELOAD_MS = 10_000;

export interface ExtensionServerOptions {
  hooks: ExtensionHooks;
  store: ResourceStore;
  log: Logger;
  metrics: Pick<
    Metrics,
    | 'recordHookCall'
    | 'requestBytes'
    | 'resourcesAdded'
    | 'inflightBytes'
    | 'waitingCalls'
    | 'refusedCalls'
    | 'budgetWait'
  >;
  /** Host to bind, without brackets. Default `127.0.0.1`. */
  host?: string;
  /** Port to bind; 0 picks an ephemeral one. Default 0. */
  port?: number;
  /** The setting host and port came from (`--grpc-addr`), named when they cannot be bound. */
  addressField?: string;
  /** Serve TLS (and mTLS when `clientCaFile` is set) instead of cleartext h2c. */
  tls?: TlsFiles & {
    /** How often the files are checked for rotation, in ms. Default `DEFAULT_TLS_RELOAD_MS`. */
    reloadIntervalMs?: number;
  };
  /** Largest request and response message in bytes. Default `DEFAULT_MAX_MESSAGE_BYTES`. */
  maxMessageBytes?: number;
  /** Deadline of a call without one, and the cap on a client's own. Default `DEFAULT_REQUEST_TIMEOUT_MS`. */
  requestTimeoutMs?: number;
  /**
   * Bytes large calls may hold at once (see `limits.ts`); further ones wait, held back by HTTP/2 flow
   * control. Default `DEFAULT_INFLIGHT_BYTES`.
   */
  inflightBytes?: number;
  /**
   * Serve plain binary gRPC calls of the hook methods on the direct path (`grpc-unary.ts`) instead of
   * connect's pipeline. Default true; false exists so tests and the benchmark can compare both paths.
   */
  directGrpc?: boolean;
}

export interface ExtensionServer {
  /** Binds the socket; resolves with the URL clients dial (`http://` for h2c, `https://` for TLS). */
  listen(): Promise<{ url: string; port: number }>;
  /**
   * Graceful stop: health turns NOT_SERVING, no new connections, a GOAWAY to every session; in-flight
   * calls get `graceMs` to finish, then handlers are cancelled and connections dropped.
   */
  close(graceMs: number): Promise<void>;
  health: { setServing(serving: boolean): void };
}

/** What `HookEffect` counts, as the `resource` label. */
const EFFECT_RESOURCES: readonly [keyof HookEffect, string][] = [
  ['clustersAdded', 'cluster'],
  ['routesAdded', 'route'],
  ['virtualHostsAdded', 'virtual_host'],
];

export function createExtensionServer(options: ExtensionServerOptions): ExtensionServer {
  const {
    hooks,
    store,
    log,
    metrics,
    host = '127.0.0.1',
    port = 0,
    addressField,
    tls,
    maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES,
    requestTimeoutMs = DEFAULT_REQUEST_TIMEOUT_MS,
    inflightBytes,
    directGrpc = true,
  } = options;
  if (!Number.isInteger(maxMessageBytes) || maxMessageBytes < 1 || maxMessageBytes > 0xffffffff) {
    throw new OperatorError(
      'Invalid',
      `maxMessageBytes must be between 1 and 4294967295: ${maxMessageBytes}`,
    );
  }
  if (!(requestTimeoutMs > 0)) {
    throw new OperatorError('Invalid', `requestTimeoutMs must be positive: ${requestTimeoutMs}`);
  }

  const limits = resolveServerLimits({
    maxMessageBytes,
    ...(inflightBytes === undefined ? {} : { inflightBytes }),
  });
  const sessionOptions = http2SessionOptions(limits);
  const admission = createAdmission({
    budgetBytes: limits.inflightBytes,
    onChange: ({ heldBytes, waiting }) => {
      metrics.inflightBytes.set(heldBytes);
      metrics.waitingCalls.set(waiting);
    },
  });

  const shutdown = new AbortController();
  const healthState = createHealthState(store, [EXTENSION_SERVICE_NAME]);
  const onEffect = (hook: HookName, effect: HookEffect) => {
    for (const [field, resource] of EFFECT_RESOURCES) {
      const count = effect[field] ?? 0;
      if (count > 0) metrics.resourcesAdded.inc({ hook, resource }, count);
    }
  };
  const hookMethods = createHookMethods(hooks, store, onEffect);
  const reporter = createCallReporter({ log, metrics });
  const requestGate = (context: HandlerContext) => reporter.gate(context);

  const router = createConnectRouter({
    readMaxBytes: maxMessageBytes,
    writeMaxBytes: maxMessageBytes,
    shutdownSignal: shutdown.signal,
    // gzip-compressed requests are accepted, but responses are never compressed: on a cluster-internal
    // link, compressing a PostTranslateModify answer costs far more CPU time than it saves in transfer.
    acceptCompression: [compressionGzip],
    compressMinBytes: Number.POSITIVE_INFINITY,
  });
  for (const { method, invoke } of hookMethods) {
    router.rpc(method, (request) => invoke(request) as never, { requestGate });
  }
  router.service(Health, createHealthService(healthState));

  const handlers = new Map<string, UniversalHandler>();
  const grpcRoutes = new Map<string, GrpcUnaryRoute>();
  for (const handler of router.handlers) handlers.set(handler.requestPath, handler);
  for (const { hook, method, invoke } of hookMethods) {
    const codec =
      hook === 'PostTranslateModify'
        ? rawTranslateCodec
        : hook === 'PostHTTPListenerModify'
          ? rawListenerCodec
          : messageCodec(method.input, method.output);
    grpcRoutes.set(`/${method.parent.typeName}/${method.name}`, { hook, codec, invoke });
  }
  const grpcOptions: GrpcUnaryOptions = {
    maxMessageBytes,
    timeoutMs: requestTimeoutMs,
    shutdownSignal: shutdown.signal,
    reporter,
    admission,
    smallCallBytes: limits.smallCallBytes,
    largeStep: createTurnQueue(),
    onRefused: (hook) => metrics.refusedCalls.inc({ hook }),
    onAdmitted: (hook, waitedMs) => metrics.budgetWait.observe({ hook }, waitedMs / 1000),
  };

  const onRequest = (req: Http2ServerRequest, res: Http2ServerResponse) => {
    const path = (req.url ?? '').split('?', 1)[0] ?? '';
    const handler = handlers.get(path);
    if (handler === undefined) {
      answerUnknownPath(req, res, path);
      return;
    }
    const route = grpcRoutes.get(path);
    if (directGrpc && route !== undefined && isPlainGrpc(req)) {
      handleGrpcUnary(req, res, route, grpcOptions);
      return;
    }
    const hook = route?.hook;
    const info: CallInfo | undefined = hook === undefined ? undefined : { hook, requestBytes: 0 };
    const values = createContextValues().set(CALL_INFO, info);
    let uReq: ReturnType<typeof universalRequestFromNodeRequest>;
    try {
      uReq = universalRequestFromNodeRequest(req, res, undefined, values);
    } catch (error) {
      log.warn({ err: error, path }, 'malformed extension server request');
      res.writeHead(400);
      res.end();
      return;
    }
    boundDeadline(uReq.header, requestTimeoutMs);
    if (info !== undefined) uReq.body = countBytes(uReq.body as AsyncIterable<Uint8Array>, info);
    handler(uReq)
      .then((uRes) => universalResponseToNodeResponse(withSpecGrpcMessage(uRes), res))
      .catch((error: unknown) => {
        // The client went away or reset the stream mid-response; the call observer counted it already.
        log.debug({ err: error, path }, 'extension server response not delivered');
      });
  };

  let server: Http2Server | Http2SecureServer;
  let stopTlsWatch: (() => void) | undefined;
  if (tls === undefined) {
    server = createServer(sessionOptions, onRequest);
  } else {
    const secure = createSecureServer(
      {
        ...sessionOptions,
        ...readTlsFiles(tls),
        allowHTTP1: false,
        ALPNProtocols: ['h2'],
        ...(tls.clientCaFile === undefined ? {} : { requestCert: true, rejectUnauthorized: true }),
      },
      onRequest,
    );
    server = secure;
    stopTlsWatch = watchTlsFiles({
      files: tls,
      intervalMs: tls.reloadIntervalMs ?? DEFAULT_TLS_RELOAD_MS,
      apply: (material) => secure.setSecureContext(material),
      onReload: () => log.info({ cert: tls.certFile }, 'gRPC TLS certificate reloaded'),
      onError: (error) =>
        log.warn({ err: error }, 'gRPC TLS files changed but cannot be loaded; keeping the old ones'),
    });
  }

  const sessions = new Set<ServerHttp2Session>();
  server.on('session', (session: ServerHttp2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    // A broken client (or a fuzzer) must never take the process down.
    session.on('error', (error) => log.debug({ err: error }, 'HTTP/2 session error'));
  });
  server.on('tlsClientError', (error: Error, socket: TLSSocket) => {
    log.warn({ err: error, remote: socket.remoteAddress }, 'gRPC TLS handshake failed');
  });

  let closing: Promise<void> | undefined;
  return {
    listen() {
      return new Promise((resolve, reject) => {
        const onError = (error: Error) => {
          reject(
            new OperatorError(
              'Invalid',
              `cannot listen on ${formatHostPort(host, port)}${addressField === undefined ? '' : ` (${addressField})`}: ${error.message}`,
              { cause: error, ...(addressField === undefined ? {} : { field: addressField }) },
            ),
          );
        };
        server.once('error', onError);
        server.listen(port, host, () => {
          server.off('error', onError);
          const address = server.address();
          const bound = typeof address === 'object' && address !== null ? address.port : port;
          const scheme = tls === undefined ? 'http' : 'https';
          resolve({ url: `${scheme}://${formatHostPort(host, bound)}`, port: bound });
        });
      });
    },
    close(graceMs) {
      closing ??= (async () => {
        healthState.setServing(false);
        stopTlsWatch?.();
        const closed = new Promise<void>((resolve) => {
          if (!server.listening) resolve();
          else server.close(() => resolve());
        });
        for (const session of sessions) session.close();
        const graceful = await Promise.race([
          closed.then(() => true),
          new Promise<boolean>((resolve) => setTimeout(() => resolve(false), graceMs).unref?.()),
        ]);
        if (!graceful) {
          shutdown.abort(new OperatorError('Canceled', 'extension server shutting down'));
          for (const session of sessions) session.destroy();
          await closed;
        }
        shutdown.abort();
        healthState.dispose();
      })();
      return closing;
    },
    health: { setServing: (serving) => healthState.setServing(serving) },
  };
}

/**
 * Caps the call's deadline at `maxMs`: EG sends none, and a client deadline longer than ours is
 * shortened rather than rejected (connect's own `maxTimeoutMs` would fail such calls).
 */
function boundDeadline(header: Headers, maxMs: number): void {
  if (header.get('content-type')?.startsWith('application/grpc')) {
    // A malformed value stays, so connect answers it with INVALID_ARGUMENT as the direct path does.
    const client = parseGrpcTimeout(header.get('grpc-timeout') ?? undefined);
    if (client === undefined || client > maxMs) header.set('grpc-timeout', `${Math.ceil(maxMs)}m`);
    return;
  }
  const connect = header.get('connect-timeout-ms');
  if (connect === null || Number(connect) > maxMs) header.set('connect-timeout-ms', String(Math.ceil(maxMs)));
}

async function* countBytes(body: AsyncIterable<Uint8Array>, info: CallInfo): AsyncIterable<Uint8Array> {
  for await (const chunk of body) {
    info.requestBytes += chunk.byteLength;
    yield chunk;
  }
}

/** gRPC clients get UNIMPLEMENTED as a gRPC status (grpc-go reads a bare 404 as UNIMPLEMENTED too, but without the path); others a 404. */
function answerUnknownPath(req: Http2ServerRequest, res: Http2ServerResponse, path: string): void {
  req.resume();
  if ((req.headers['content-type'] ?? '').startsWith('application/grpc')) {
    writeStatus(res, new ConnectError(`unknown method ${path}`, Code.Unimplemented));
    return;
  }
  res.writeHead(404);
  res.end();
}

/**
 * connect's gRPC responses with `grpc-message` re-encoded as the spec has it (see `encodeGrpcMessage`):
 * connect uses encodeURIComponent. The trailer is filled once the body has been sent, so it is rewritten
 * after the last chunk; a trailers-only answer carries the status in its header. gRPC-Web and Connect
 * answers are left alone: their clients decode with decodeURIComponent.
 */
function withSpecGrpcMessage(uRes: UniversalServerResponse): UniversalServerResponse {
  const type = uRes.header?.get('content-type') ?? '';
  if (!type.startsWith('application/grpc') || type.startsWith('application/grpc-web')) return uRes;
  const reencode = (headers: Headers | undefined) => {
    const value = headers?.get('grpc-message');
    if (value === null || value === undefined) return;
    let message: string;
    try {
      message = decodeURIComponent(value);
    } catch {
      return;
    }
    headers!.set('grpc-message', encodeGrpcMessage(message));
  };
  reencode(uRes.header);
  const { body, trailer } = uRes;
  if (body === undefined || trailer === undefined) {
    reencode(trailer);
    return uRes;
  }
  return {
    ...uRes,
    body: (async function* () {
      yield* body;
      reencode(trailer);
    })(),
  };
}
