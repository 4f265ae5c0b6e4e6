/**
 * Sees the outcome of every hook call, including the ones that never reach the hook: a body that does
 * not decode, a message over the size limit, a deadline, a client that went away, and turns it into
 * metrics and at most one log line. The direct gRPC path calls `report` itself. For connect's pipeline,
 * interceptors cannot see those failures (connect decodes before it runs them), so the reporter hooks
 * connect's request gate, which
 * runs before the body is read, and listens for the end of the call on the handler context's signal:
 * connect aborts that signal with the call's error (or with no reason on success) in all three
 * protocols, just before it serialises the status.
 *
 * That same moment is where a decode failure is re-coded. connect reports an undecodable binary
 * message as INTERNAL ("parse binary: …", as grpc-go does); for us a malformed request is the caller's
 * fault, and INTERNAL would send an operator looking for a bug in our code. Changing the code on the
 * error object before connect writes it keeps the fix to one line for gRPC, gRPC-Web and Connect alike.
 *
 * @module
 */
import { Code, ConnectError, createContextKey, type HandlerContext } from '@connectrpc/connect';
import { codeToString } from '@connectrpc/connect/protocol-connect';
import type { Logger } from '../../observability/logger.ts';
import type { Metrics } from '../../observability/metrics.ts';
import type { HookName } from '../hooks.ts';

/** Per-call facts the node adapter knows and connect does not. */
export interface CallInfo {
  hook: HookName;
  /** Body bytes received so far; final once the call ends. */
  requestBytes: number;
}

export const CALL_INFO = createContextKey<CallInfo | undefined>(undefined, { description: 'tsgw hook call' });

/** connect's INTERNAL errors that are the caller's malformed input (protocol/serialization.js, envelope.js). */
const DECODE_FAILURE = /^parse binary: /;
const UNDECLARED_COMPRESSION = 'received compressed envelope, but do not know how to decompress';

/** Codes that describe the caller or the network, not a fault of ours: one warning line, no stack. */
const CLIENT_SIDE = new Set([
  Code.InvalidArgument,
  Code.ResourceExhausted,
  Code.Canceled,
  Code.DeadlineExceeded,
  Code.Unimplemented,
]);

export interface CallObserverOptions {
  log: Logger;
  metrics: Pick<Metrics, 'recordHookCall' | 'requestBytes'>;
  /** Injected for tests. Default `performance.now`. */
  now?: () => number;
}

/** Re-codes connect's decode failure in place; returns the error for chaining. */
export function recodeDecodeFailure(error: ConnectError): ConnectError {
  if (error.code !== Code.Internal) return error;
  if (DECODE_FAILURE.test(error.rawMessage) || error.rawMessage === UNDECLARED_COMPRESSION) {
    const rawMessage = DECODE_FAILURE.test(error.rawMessage)
      ? `invalid request message: ${error.rawMessage.replace(DECODE_FAILURE, '')}`
      : `protocol error: ${error.rawMessage}`;
    Object.assign(error, {
      code: Code.InvalidArgument,
      rawMessage,
      message: `[${codeToString(Code.InvalidArgument)}] ${rawMessage}`,
    });
  }
  return error;
}

export interface CallReporter {
  /** Records one finished call: metrics, and one log line when it failed. */
  report(
    hook: HookName,
    startedAt: number,
    requestBytes: number | undefined,
    error: ConnectError | undefined,
  ): void;
  /** connect's `requestGate` for the hook methods: reports each call when connect ends it. */
  gate(context: HandlerContext): void;
  now(): number;
}

export function createCallReporter(options: CallObserverOptions): CallReporter {
  const { log, metrics, now = () => performance.now() } = options;
  const report: CallReporter['report'] = (hook, startedAt, requestBytes, error) => {
    const name = error === undefined ? 'ok' : codeToString(error.code);
    metrics.recordHookCall(hook, name, (now() - startedAt) / 1000);
    if (requestBytes !== undefined) metrics.requestBytes.observe({ hook }, requestBytes);
    if (error === undefined) return;
    const fields = { hook, code: name, requestBytes };
    // The caller's mistake: the message says what was wrong and `hook` which RPC; a stack would only
    // point into our decoder or hook. A fault of ours keeps the cause with its stack.
    if (CLIENT_SIDE.has(error.code)) log.warn(fields, `hook call failed: ${error.rawMessage}`);
    else
      log.error(
        { ...fields, err: error.cause instanceof Error ? error.cause : { message: error.rawMessage } },
        `hook call failed: ${error.rawMessage}`,
      );
  };
  return {
    report,
    now,
    gate(context) {
      const info = context.values.get(CALL_INFO);
      const hook = (info?.hook ?? context.method.name) as HookName;
      const started = now();
      const finish = () => {
        const reason: unknown = context.signal.reason;
        // No reason (a DOMException AbortError) is connect's "call completed".
        const error = reason instanceof ConnectError ? recodeDecodeFailure(reason) : undefined;
        report(hook, started, info?.requestBytes, error);
      };
      if (context.signal.aborted) finish();
      else context.signal.addEventListener('abort', finish, { once: true });
    },
  };
}
