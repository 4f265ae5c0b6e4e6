/**
 * The floor of this runtime for a unary gRPC call: a `node:http2` server on Bun that answers every
 * request with the request's own frame and `grpc-status: 0`. No connect, no protobuf, no copies beyond
 * joining the received chunks.
 */
import { createServer, type Http2Server, type ServerHttp2Stream } from 'node:http2';

export function startEchoServer(): Promise<{ server: Http2Server; port: number }> {
  const server = createServer();
  server.on('stream', (stream: ServerHttp2Stream) => {
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
