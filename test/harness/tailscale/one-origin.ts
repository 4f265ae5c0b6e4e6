/**
 * The Tailscale API and the control server behind one origin, as a self-hosted control plane has them:
 * the operator derives its proxies' login server from its API URL (`loginServerFor` in
 * src/proxy/config.ts), so a test pointing the operator at the fake API must have control answer at
 * the same scheme, host and port. Routing is per TCP connection on the first request line: `/api/v2/…`
 * goes to the API, anything else to control. A byte splice, not an HTTP proxy, because tailscaled's
 * control protocol upgrades its connection (`POST /ts2021`, Noise), and neither client mixes the two
 * kinds of request on one connection.
 *
 * @module
 */
import { connect, createServer, type Socket } from 'node:net';

export interface OneOrigin {
  /** `http://hostname:port`: give it as the operator's Tailscale API URL. */
  url: string;
  stop(): Promise<void>;
}

export async function startOneOrigin(options: {
  hostname: string;
  /** The fake Tailscale API, `http://host:port`. */
  api: string;
  /** The control server, `http://host:port`. */
  control: string;
}): Promise<OneOrigin> {
  const target = (url: string) => {
    const u = new URL(url);
    return { host: u.hostname, port: Number(u.port) };
  };
  const api = target(options.api);
  const control = target(options.control);
  const open = new Set<Socket>();
  const server = createServer((client) => {
    open.add(client);
    client.once('close', () => open.delete(client));
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n');
      if (end < 0 && head.length < 8192) return;
      client.off('data', onData);
      client.pause();
      const path =
        head
          .subarray(0, end < 0 ? head.length : end)
          .toString('latin1')
          .split(' ')[1] ?? '';
      const to = path.startsWith('/api/v2/') ? api : control;
      const upstream = connect(to.port, to.host, () => {
        upstream.write(head);
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      open.add(upstream);
      upstream.once('close', () => {
        open.delete(upstream);
        client.destroy();
      });
      upstream.once('error', () => client.destroy());
      client.once('close', () => upstream.destroy());
    };
    client.on('data', onData);
    client.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, options.hostname, resolve);
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('one-origin: no port');
  return {
    url: `http://${options.hostname}:${address.port}`,
    async stop() {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
