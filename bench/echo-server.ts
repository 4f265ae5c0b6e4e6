/**
 * The floor of this runtime for a unary gRPC call: a `node:http2` server on Bun that answers every
 * request with the request's own frame and `grpc-status: 0`. No connect, no protobuf, no copies beyond
 * joining the received chunks. It gets the same HTTP/2 session options as the extension server
 * (`http2SessionOptions`), so under concurrency it is not refused where ours is not.
 *
 * Run as a script it prints `{"port": N}` and serves until stdin closes (bench/load.ts's child).
 */
import { createServer, type Http2Server, type ServerHttp2Stream } from 'node:http2';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../src/extension/server/extension-server.ts';
import { http2SessionOptions, resolveServerLimits } from '../src/extension/server/limits.ts';

export function startEchoServer(): Promise<{ server: Http2Server; port: number }> {
  const server = createServer(
    http2SessionOptions(resolveServerLimits({ maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES })),
  );
  server.on('stream', (stream: ServerHttp2Stream) => {
    stream.on('error', () => {
      // A reset stream is the client's business; the floor has nothing to report.
    });
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(Buffer.concat(chunks));
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve({ server, port: typeof address === 'object' && address ? address.port : 0 });
    });
  });
}

if (import.meta.main) {
  const { server, port } = await startEchoServer();
  console.log(JSON.stringify({ port }));
  for await (const _ of Bun.stdin.stream()) {
    // Serves until the parent closes stdin.
  }
  server.close();
  process.exit(0);
}
