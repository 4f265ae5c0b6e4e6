/**
 * `npm run fake-tailscale -- --port 8787`: the fake Tailscale control plane from the tests, for running
 * the operator locally without a tailnet or an OAuth client. Point the operator's Tailscale base URL at
 * the printed address and give it the printed client id and secret. State lives in memory and is gone
 * when the process exits.
 *
 * Flags: --port N (default 8787; 0 picks a free one), --host ADDR (default 127.0.0.1),
 * --client-id ID, --client-secret SECRET (default: random, printed), --tailnet NAME (default
 * example.com), --services-path SEGMENT (repeatable; default vip-services), --devices N (seed N devices).
 *
 * @module
 */

import { parseArgs } from 'node:util';
import { startFakeTailscale } from '../test/harness/fake-tailscale/index.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8787' },
    host: { type: 'string', default: '127.0.0.1' },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    tailnet: { type: 'string', default: 'example.com' },
    'services-path': { type: 'string', multiple: true },
    devices: { type: 'string', default: '0' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});

if (values.help) {
  console.log(
    'usage: bun scripts/fake-tailscale.ts [--port N] [--host ADDR] [--client-id ID] [--client-secret SECRET]\n' +
      '         [--tailnet NAME] [--services-path SEGMENT]... [--devices N]',
  );
  process.exit(0);
}

const port = Number(values.port);
const devices = Number(values.devices);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`--port must be 0-65535, got ${values.port}`);
  process.exit(2);
}
if (!Number.isInteger(devices) || devices < 0) {
  console.error(`--devices must be a non-negative integer, got ${values.devices}`);
  process.exit(2);
}

const fake = startFakeTailscale({
  port,
  hostname: values.host,
  tailnet: values.tailnet,
  ...(values['client-id'] ? { clientId: values['client-id'] } : {}),
  ...(values['client-secret'] ? { clientSecret: values['client-secret'] } : {}),
  ...(values['services-path'] ? { servicesPathSegments: values['services-path'] } : {}),
});
for (let i = 0; i < devices; i++) fake.state.seedDevice();

// This is a local test double: printing its made-up secret is the point.
console.log(`fake Tailscale control plane listening on ${fake.url}
  tailnet:       ${values.tailnet} (or "-")
  client_id:     ${fake.clientId}
  client_secret: ${fake.clientSecret}
  devices:       ${devices} seeded
Ctrl-C to stop.`);

const shutdown = async () => {
  await fake.stop();
  process.exit(0);
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
