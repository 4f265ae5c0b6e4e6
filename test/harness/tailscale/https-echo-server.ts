/**
 * An HTTPS echo server for a tailnet device's network namespace (started there by `startHttpsEcho`,
 * ./https-echo.ts): it serves one certificate whatever
 * the SNI, so a client expecting another name is the one that must refuse it, and it prints each
 * request it gets as a JSON line, so a test can tell that none arrived. Exits when stdin closes (its
 * parent gone).
 *
 * Usage: bun https-echo-server.ts <name> <host:port> <cert.pem> <key.pem>
 */
export {};

const [name, listen, cert, key] = process.argv.slice(2);
if (!name || !listen || !cert || !key)
  throw new Error('usage: https-echo-server.ts <name> <host:port> <cert> <key>');
const [hostname, port] = [
  listen.slice(0, listen.lastIndexOf(':')),
  Number(listen.slice(listen.lastIndexOf(':') + 1)),
];
const server = Bun.serve({
  hostname,
  port,
  tls: { cert: Bun.file(cert), key: Bun.file(key) },
  fetch(request, srv) {
    const url = new URL(request.url);
    const answer = {
      name,
      method: request.method,
      path: url.pathname + url.search,
      host: request.headers.get('host') ?? '',
      protocol: url.protocol,
      remote: srv.requestIP(request)?.address ?? '',
    };
    console.log(JSON.stringify({ request: answer }));
    return Response.json(answer);
  },
});
console.log(JSON.stringify({ ready: `${server.hostname}:${server.port}` }));
for await (const _ of Bun.stdin.stream());
server.stop(true);
process.exit(0);
