/**
 * A bare `node:http2` gRPC caller: sends exactly the bytes a test gives it and reports status, headers,
 * trailers and body as they arrived, so malformed frames can be sent and the answer checked without a
 * gRPC library smoothing anything over.
 */
import { type ClientHttp2Session, connect, type IncomingHttpHeaders } from 'node:http2';

export interface RawAnswer {
  headers: IncomingHttpHeaders;
  trailers: IncomingHttpHeaders;
  body: Buffer;
  /** `grpc-status` from the trailers (or from the headers of a trailers-only answer); NaN if none. */
  grpcStatus: number;
  grpcMessage: string;
}

export function openSession(url: string): ClientHttp2Session {
  const session = connect(url);
  session.on('error', () => {
    // A test that cares looks at the call's own outcome.
  });
  return session;
}

export function rawCall(
  session: ClientHttp2Session,
  path: string,
  body: Uint8Array,
  headers: Record<string, string> = {},
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...headers,
    });
    let responseHeaders: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      responseHeaders = h;
    });
    stream.on('trailers', (t) => {
      trailers = t;
    });
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', reject);
    stream.on('close', () => {
      const status = trailers['grpc-status'] ?? responseHeaders['grpc-status'];
      const message = trailers['grpc-message'] ?? responseHeaders['grpc-message'];
      resolve({
        headers: responseHeaders,
        trailers,
        body: Buffer.concat(chunks),
        grpcStatus: status === undefined ? Number.NaN : Number(status),
        grpcMessage: decodeURIComponent(String(message ?? '')),
      });
    });
    stream.end(Buffer.from(body));
  });
}
