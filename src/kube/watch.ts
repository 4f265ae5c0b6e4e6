/**
 * A drop-in for client-node's `Watch` that works under Bun (see http-library.ts for why the stock one
 * loses TLS material), usable as the `watch` argument of client-node's `ListWatch`.
 *
 * Differences from the stock `Watch`, each on purpose:
 * - `allowWatchBookmarks=true` is always sent, so a quiet resource keeps a fresh resourceVersion and a
 *   reconnect after the inactivity timeout rarely ends in a 410 and a full re-list.
 * - A line that is not JSON, or a callback that throws (or rejects), ends the watch with that error
 *   instead of being swallowed: a lost event must cost a re-list, not a silently stale cache.
 * - A watch the caller aborts ends with `done(null)`, so `ListWatch.stop()` does not fire its error
 *   callbacks.
 * - Errors are `OperatorError`s. Two keep the shape `ListWatch` branches on: a 410 carries
 *   `statusCode: 410` (re-list), and the inactivity timeout is a `DOMException` named `TimeoutError`
 *   (immediate reconnect from the last resourceVersion).
 *
 * @module
 */

import { Watch } from '@kubernetes/client-node';
import { OperatorError } from '../errors.ts';
import type { KubeTransport } from './http-library.ts';
import { errorFromResponse, errorFromTransport } from './kube-errors.ts';

export interface BunWatchOptions {
  /** Ends the watch when no bytes arrived for this long (bookmarks count); default 30 s, as client-node. */
  inactivityTimeoutMs?: number;
}

/** The stock signatures, so `ListWatch` accepts this class; their `any`s are client-node's. */
export type WatchCallback = Parameters<Watch['watch']>[2];
export type WatchDone = Parameters<Watch['watch']>[3];

export class BunWatch extends Watch {
  readonly inactivityTimeoutMs: number;

  constructor(
    private readonly transport: KubeTransport,
    options: BunWatchOptions = {},
  ) {
    super(transport.kubeConfig);
    this.inactivityTimeoutMs = options.inactivityTimeoutMs ?? 30_000;
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: WatchCallback,
    done: WatchDone,
  ): Promise<AbortController> {
    const url = this.transport.url(path, { ...queryParams, watch: true, allowWatchBookmarks: true });
    const controller = new AbortController();
    let timedOut = false;
    let finished = false;
    /** A parse or callback failure: reported as is, even though it aborts the request. */
    let ownFailure: unknown;
    let timer: ReturnType<typeof setTimeout> | undefined;

    const resetTimer = () => {
      if (timer !== undefined) clearTimeout(timer);
      timer = setTimeout(() => {
        timedOut = true;
        controller.abort(timeoutError(this.inactivityTimeoutMs));
      }, this.inactivityTimeoutMs);
      timer.unref?.();
    };
    const fail = (error: unknown) => {
      ownFailure ??= error;
      controller.abort();
    };
    const finish = (error: unknown) => {
      if (finished) return;
      finished = true;
      if (timer !== undefined) clearTimeout(timer);
      const callerAborted = controller.signal.aborted && !timedOut && ownFailure === undefined;
      if (!controller.signal.aborted) controller.abort();
      if (ownFailure !== undefined) done(ownFailure);
      else if (timedOut) done(timeoutError(this.inactivityTimeoutMs));
      else if (callerAborted) done(null);
      else done(error ?? null);
    };

    resetTimer();
    let response: Response;
    try {
      response = await this.transport.fetch(url, {
        headers: { accept: 'application/json', ...(await this.transport.authHeaders()) },
        signal: controller.signal,
        timeoutMs: 0,
      });
    } catch (error) {
      finish(error);
      return controller;
    }
    if (response.status !== 200) {
      let text = '';
      try {
        text = await response.text();
      } catch {
        // the status alone is enough
      }
      const error = errorFromResponse('WATCH', url, response.status, text, response.headers);
      finish(Object.assign(error, { statusCode: response.status }));
      return controller;
    }
    resetTimer();
    void pump(response, url, resetTimer, callback, fail).then(
      () => finish(null),
      (error: unknown) => finish(error),
    );
    return controller;
  }
}

/** Reads the body line by line and hands each event to `callback`; resolves when the server ends it. */
async function pump(
  response: Response,
  url: URL,
  onChunk: () => void,
  callback: WatchCallback,
  fail: (error: unknown) => void,
): Promise<void> {
  const body = response.body;
  if (!body) return;
  const decoder = new TextDecoder();
  let buffer = '';
  const deliver = (line: string): boolean => {
    if (line.trim().length === 0) return true;
    let event: { type?: string; object?: unknown };
    try {
      event = JSON.parse(line) as typeof event;
    } catch (error) {
      fail(new OperatorError('Internal', `WATCH ${url.pathname}: malformed event line`, { cause: error }));
      return false;
    }
    try {
      const result: unknown = (callback as (...args: unknown[]) => unknown)(event.type, event.object, event);
      // ListWatch's handler is async: a rejection must end the watch like a throw does.
      if (result && typeof (result as Promise<unknown>).then === 'function') {
        (result as Promise<unknown>).then(undefined, fail);
      }
      return true;
    } catch (error) {
      fail(error);
      return false;
    }
  };
  try {
    for await (const chunk of body) {
      onChunk();
      buffer += decoder.decode(chunk, { stream: true });
      let newline = buffer.indexOf('\n');
      while (newline >= 0) {
        if (!deliver(buffer.slice(0, newline))) return;
        buffer = buffer.slice(newline + 1);
        newline = buffer.indexOf('\n');
      }
    }
    buffer += decoder.decode();
    deliver(buffer);
  } catch (error) {
    throw errorFromTransport('WATCH', url, error);
  }
}

function timeoutError(ms: number): DOMException {
  return new DOMException(`watch received nothing for ${ms} ms`, 'TimeoutError');
}
