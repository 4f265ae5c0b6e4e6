/**
 * The extension server on a real socket, called the way Envoy Gateway calls it: by a gRPC client that
 * shares none of our code (grpc-js with proto-loader, reading the same .proto files), over h2c, TLS and
 * mTLS; plus connect's own clients for the Connect and gRPC-Web protocols. The hooks are the identity
 * test double, so what is checked is the transport: paths, framing, status, health, bytes untouched.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import { type Client, createClient } from '@connectrpc/connect';
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from '@connectrpc/connect-node';
import * as grpc from '@grpc/grpc-js';
import { EnvoyGatewayExtension } from '../../gen/envoygateway/extension/service_pb.ts';
import { RawPostTranslateModifyResponseSchema } from '../../gen/tsgw/extension/v1/raw_pb.ts';
import { OperatorError } from '../../src/errors.ts';
import { HOOK_NAMES } from '../../src/extension/hooks.ts';
import { startTestExtensionServer, type TestExtensionServer } from '../harness/support/extension-server.ts';
import { loadProtoPackage } from '../harness/support/proto-package.ts';
import { grpcFrame, translateFixture } from '../harness/support/xds-fixtures.ts';

const SERVICE = 'envoygateway.extension.EnvoyGatewayExtension';
type Callback = (error: grpc.ServiceError | null, response?: Record<string, unknown>) => void;
type GrpcClient = grpc.Client & Record<string, (request: unknown, callback: Callback) => void>;

let pkg: grpc.GrpcObject;

beforeAll(async () => {
  pkg = await loadProtoPackage(['envoygateway/extension/service.proto', 'grpc/health/v1/health.proto']);
});

const lookup = (path: string) =>
  path
    .split('.')
    .reduce<unknown>(
      (node, key) => (node as Record<string, unknown>)[key],
      pkg,
    ) as grpc.ServiceClientConstructor;

function grpcClient(
  url: string,
  credentials = grpc.credentials.createInsecure(),
  options: grpc.ClientOptions = {},
) {
  const target = url.replace(/^https?:\/\//, '');
  const Extension = lookup(SERVICE);
  const Health = lookup('grpc.health.v1.Health');
  return {
    extension: new Extension(target, credentials, options) as unknown as GrpcClient,
    health: new Health(target, credentials, options) as unknown as GrpcClient,
  };
}

const unary = (client: GrpcClient, method: string, request: unknown) =>
  new Promise<Record<string, unknown>>((resolve, reject) => {
    client[method]!(request, (error, response) => (error ? reject(error) : resolve(response!)));
  });

/** Requests as Envoy Gateway shapes them, in proto-loader's JSON-ish object form. */
const REQUESTS: Record<string, { method: string; request: Record<string, unknown>; field: string }> = {
  PostRouteModify: {
    method: 'PostRouteModify',
    field: 'route',
    request: {
      route: { name: 'httproute/default/app/rule/0/match/0/www_example_com', match: { prefix: '/' } },
      postRouteContext: {
        hostnames: ['www.example.com'],
        extensionResources: [{ unstructuredBytes: Buffer.from('{"kind":"X"}') }],
      },
    },
  },
  PostVirtualHostModify: {
    method: 'PostVirtualHostModify',
    field: 'virtualHost',
    request: {
      virtualHost: { name: 'default/eg/http/www_example_com', domains: ['www.example.com'] },
      postVirtualHostContext: {},
    },
  },
  PostHTTPListenerModify: {
    method: 'PostHTTPListenerModify',
    field: 'listener',
    request: { listener: { name: 'default/eg/http', statPrefix: 'http-10080' }, postListenerContext: {} },
  },
  PostClusterModify: {
    method: 'PostClusterModify',
    field: 'cluster',
    request: {
      cluster: { name: 'httproute/default/app/rule/0', type: 'EDS', connectTimeout: { seconds: '10' } },
      postClusterContext: { backendExtensionResources: [{ unstructuredBytes: Buffer.from('{}') }] },
    },
  },
  PostEndpointsModify: {
    method: 'PostEndpointsModify',
    field: 'loadAssignment',
    request: {
      loadAssignment: {
        clusterName: 'httproute/default/app/rule/0',
        endpoints: [
          {
            lbEndpoints: [
              { endpoint: { address: { socketAddress: { address: '10.0.0.1', portValue: 8080 } } } },
            ],
          },
        ],
      },
      postEndpointsContext: {},
    },
  },
  PostTranslateModify: {
    method: 'PostTranslateModify',
    field: 'clusters',
    request: {
      postTranslateContext: { extensionResources: [] },
      clusters: [{ name: 'a' }, { name: 'b' }],
      secrets: [{ name: 's' }],
      listeners: [{ name: 'l' }],
      routes: [{ name: 'r', virtualHosts: [{ name: 'v', domains: ['*'] }] }],
    },
  },
};

describe.each([
  ['direct gRPC path', true],
  ['connect pipeline', false],
])('grpc-js client, h2c, %s', (_name, directGrpc) => {
  let ext: TestExtensionServer;
  let clients: ReturnType<typeof grpcClient>;

  beforeAll(async () => {
    ext = await startTestExtensionServer({ directGrpc });
    clients = grpcClient(ext.url);
  });
  afterAll(async () => {
    clients.extension.close();
    clients.health.close();
    await ext.close();
  });

  test('the URL is cleartext http', () => {
    expect(ext.url).toStartWith('http://127.0.0.1:');
  });

  test.each(HOOK_NAMES)('%s answers with the identity hook', async (hook) => {
    const { method, request, field } = REQUESTS[hook]!;
    const response = await unary(clients.extension, method, request);
    // toMatchObject: proto-loader adds the name of each set oneof case.
    expect(response[field]).toMatchObject(request[field] as never);
    expect(ext.hooks.calls.at(-1)?.hook).toBe(hook);
  });

  test('PostTranslateModify returns secrets, listeners and routes too', async () => {
    const { request } = REQUESTS['PostTranslateModify']!;
    const response = await unary(clients.extension, 'PostTranslateModify', request);
    for (const field of ['secrets', 'listeners', 'routes']) {
      expect(response[field]).toMatchObject(request[field] as never);
    }
  });

  test('an unset resource stays unset (EG reads it as "unchanged")', async () => {
    const response = await unary(clients.extension, 'PostHTTPListenerModify', {});
    expect(response['listener']).toBeFalsy();
    const route = await unary(clients.extension, 'PostRouteModify', {});
    expect(route['route']).toBeFalsy();
  });

  test('PostTranslateModify keeps every resource byte for byte, unknown fields included', async () => {
    const fixture = translateFixture(50, { unknownFields: true });
    const raw = new grpc.Client(ext.url.replace('http://', ''), grpc.credentials.createInsecure());
    try {
      const response = await new Promise<Buffer>((resolve, reject) =>
        raw.makeUnaryRequest(
          `/${SERVICE}/PostTranslateModify`,
          (b: Buffer) => b,
          (b: Buffer) => b,
          Buffer.from(fixture.request),
          (error, value) => (error ? reject(error) : resolve(value!)),
        ),
      );
      const decoded = fromBinary(RawPostTranslateModifyResponseSchema, response);
      for (const field of ['clusters', 'secrets', 'listeners', 'routes'] as const) {
        expect(decoded[field].length).toBe(fixture[field].length);
        decoded[field].forEach((bytes, i) => {
          expect(Buffer.from(bytes).equals(Buffer.from(fixture[field][i]!))).toBe(true);
        });
      }
      expect(Buffer.from(decoded.clusters[7]!).toString('latin1')).toContain('unknown-cluster-7');
    } finally {
      raw.close();
    }
  });

  test('hook errors come back with their gRPC code and the hook name, without a stack', async () => {
    ext.hooks.fail('PostClusterModify', new OperatorError('Invalid', 'backend has no port'));
    const invalid = await unary(
      clients.extension,
      'PostClusterModify',
      REQUESTS['PostClusterModify']!.request,
    ).catch((e: grpc.ServiceError) => e);
    expect((invalid as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((invalid as grpc.ServiceError).details).toBe('PostClusterModify: backend has no port');
    ext.hooks.fail('PostClusterModify', new TypeError('x is undefined'));
    const internal = (await unary(clients.extension, 'PostClusterModify', {}).catch(
      (e) => e,
    )) as grpc.ServiceError;
    expect(internal.code).toBe(grpc.status.INTERNAL);
    expect(internal.details).toContain('PostClusterModify');
    expect(internal.details).not.toContain('x is undefined');
    expect(internal.details).not.toContain(' at ');
    ext.hooks.clear();
    expect(await unary(clients.extension, 'PostClusterModify', {})).toBeDefined();
  });

  // The gRPC spec percent-encodes only "%" and bytes outside 0x20-0x7E (after UTF-8); grpc-js decodes
  // with decodeURI, which leaves %3A, %2C and the like as they are, so encoding more shows up verbatim.
  test('grpc-message arrives exactly: punctuation, "%", spaces, non-ASCII and a newline', async () => {
    const message = ' field spec.rules[0]: 100% of "a,b" ≠ café 🚀; see #3?x=1&y=2\nnext line ';
    ext.hooks.fail('PostClusterModify', new OperatorError('Invalid', message));
    const error = (await unary(clients.extension, 'PostClusterModify', {}).catch(
      (e) => e,
    )) as grpc.ServiceError;
    ext.hooks.clear();
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error.details).toBe(`PostClusterModify: ${message}`);
  });

  test('an unknown method is UNIMPLEMENTED', async () => {
    const raw = new grpc.Client(ext.url.replace('http://', ''), grpc.credentials.createInsecure());
    const error = await new Promise<grpc.ServiceError>((resolve) =>
      raw.makeUnaryRequest(
        `/${SERVICE}/PreTranslateModify`,
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.alloc(0),
        (e) => resolve(e!),
      ),
    );
    raw.close();
    expect(error.code).toBe(grpc.status.UNIMPLEMENTED);
  });
});

describe('health', () => {
  test('NOT_SERVING before the store syncs, SERVING after, NOT_SERVING once shutdown begins; Watch follows', async () => {
    const ext = await startTestExtensionServer({ synced: false });
    const { health, extension } = grpcClient(ext.url);
    try {
      const seen: string[] = [];
      const watch = (
        health as unknown as { Watch(req: unknown): grpc.ClientReadableStream<{ status: string }> }
      ).Watch({
        service: SERVICE,
      });
      watch.on('data', (message) => seen.push(message.status));
      watch.on('error', () => {});
      expect((await unary(health, 'Check', { service: '' }))['status']).toBe('NOT_SERVING');
      expect((await unary(health, 'Check', { service: SERVICE }))['status']).toBe('NOT_SERVING');
      const unknown = (await unary(health, 'Check', { service: 'nope' }).catch(
        (e) => e,
      )) as grpc.ServiceError;
      expect(unknown.code).toBe(grpc.status.NOT_FOUND);

      ext.store.replace([]);
      expect((await unary(health, 'Check', { service: '' }))['status']).toBe('SERVING');
      expect((await unary(health, 'Check', { service: SERVICE }))['status']).toBe('SERVING');
      // Hooks answer regardless: health is advice for probes, never a gate on EG's calls.
      await unary(extension, 'PostVirtualHostModify', {});

      ext.server.health.setServing(false);
      expect((await unary(health, 'Check', { service: '' }))['status']).toBe('NOT_SERVING');
      for (let i = 0; i < 50 && seen.length < 3; i++) await Bun.sleep(10);
      expect(seen).toEqual(['NOT_SERVING', 'SERVING', 'NOT_SERVING']);
      watch.cancel();
    } finally {
      health.close();
      extension.close();
      await ext.close();
    }
  });
});

describe('connect clients', () => {
  let ext: TestExtensionServer;
  beforeAll(async () => {
    ext = await startTestExtensionServer();
  });
  afterAll(() => ext.close());

  const call = async (client: Client<typeof EnvoyGatewayExtension>) => {
    const route = await client.postRouteModify({ route: { name: 'r1' } });
    expect(route.route?.name).toBe('r1');
    const translate = await client.postTranslateModify({ clusters: [{ name: 'c1' }, { name: 'c2' }] });
    expect(translate.clusters.map((c) => c.name)).toEqual(['c1', 'c2']);
    const listener = await client.postHTTPListenerModify({ listener: { name: 'l1' } });
    expect(listener.listener?.name).toBe('l1');
  };

  test('gRPC over HTTP/2 (createGrpcTransport)', async () => {
    await call(createClient(EnvoyGatewayExtension, createGrpcTransport({ baseUrl: ext.url })));
  });

  test('Connect protocol over HTTP/2', async () => {
    await call(
      createClient(EnvoyGatewayExtension, createConnectTransport({ baseUrl: ext.url, httpVersion: '2' })),
    );
  });

  test('gRPC-Web over HTTP/2', async () => {
    await call(
      createClient(EnvoyGatewayExtension, createGrpcWebTransport({ baseUrl: ext.url, httpVersion: '2' })),
    );
  });
});

/** grpc-js would send the IP as SNI, which Bun's TLS refuses; the certificates name localhost too. */
const TLS_NAME = { 'grpc.ssl_target_name_override': 'localhost', 'grpc.default_authority': 'localhost' };

describe('TLS and mTLS', () => {
  let dir: string;
  const pem = (name: string) => readFileSync(join(dir, name));

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsgw-grpc-tls-'));
    writeFileSync(join(dir, 'san.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
    const openssl = async (...args: string[]) => {
      const child = Bun.spawn(['openssl', ...args], { cwd: dir, stdout: 'ignore', stderr: 'pipe' });
      if ((await child.exited) !== 0) throw new Error(await new Response(child.stderr).text());
    };
    await openssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '1',
      '-subj',
      '/CN=test-ca',
    );
    for (const name of ['server', 'client', 'server2']) {
      await openssl(
        'req',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.csr`,
        '-subj',
        `/CN=${name}`,
      );
      await openssl(
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        'ca.crt',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-out',
        `${name}.crt`,
        '-days',
        '1',
        '-extfile',
        'san.cnf',
      );
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('TLS: a client trusting the CA gets answers over https', async () => {
    const ext = await startTestExtensionServer({
      tls: { certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key') },
    });
    expect(ext.url).toStartWith('https://');
    const { extension, health } = grpcClient(ext.url, grpc.credentials.createSsl(pem('ca.crt')), TLS_NAME);
    try {
      expect((await unary(health, 'Check', { service: '' }))['status']).toBe('SERVING');
      expect((await unary(extension, 'PostRouteModify', { route: { name: 'tls' } }))['route']).toEqual({
        name: 'tls',
      });
      const plain = grpcClient(ext.url.replace('https', 'http'));
      const refused = (await unary(plain.health, 'Check', { service: '' }).catch(
        (e) => e,
      )) as grpc.ServiceError;
      expect(refused.code).toBe(grpc.status.UNAVAILABLE);
      plain.health.close();
      plain.extension.close();
    } finally {
      extension.close();
      health.close();
      await ext.close();
    }
  });

  test('mTLS: a client certificate signed by the CA is required', async () => {
    const ext = await startTestExtensionServer({
      tls: {
        certFile: join(dir, 'server.crt'),
        keyFile: join(dir, 'server.key'),
        clientCaFile: join(dir, 'ca.crt'),
      },
    });
    const withCert = grpcClient(
      ext.url,
      grpc.credentials.createSsl(pem('ca.crt'), pem('client.key'), pem('client.crt')),
      TLS_NAME,
    );
    const withoutCert = grpcClient(ext.url, grpc.credentials.createSsl(pem('ca.crt')), TLS_NAME);
    try {
      expect(
        (await unary(withCert.extension, 'PostClusterModify', { cluster: { name: 'm' } }))['cluster'],
      ).toEqual({
        name: 'm',
      });
      const rejected = (await unary(withoutCert.extension, 'PostClusterModify', {}).catch(
        (e) => e,
      )) as grpc.ServiceError;
      expect(rejected.code).toBe(grpc.status.UNAVAILABLE);
    } finally {
      for (const c of [withCert, withoutCert]) {
        c.extension.close();
        c.health.close();
      }
      await ext.close();
    }
  });

  test('a rotated certificate is served to new connections without a restart', async () => {
    const certFile = join(dir, 'rotating.crt');
    const keyFile = join(dir, 'rotating.key');
    writeFileSync(certFile, pem('server.crt'));
    writeFileSync(keyFile, pem('server.key'));
    const ext = await startTestExtensionServer({ tls: { certFile, keyFile, reloadIntervalMs: 20 } });
    const serial = async () => {
      const { connect } = await import('node:tls');
      return new Promise<string>((resolve, reject) => {
        const socket = connect(
          {
            host: '127.0.0.1',
            port: ext.port,
            ca: pem('ca.crt'),
            ALPNProtocols: ['h2'],
            servername: 'localhost',
          },
          () => {
            const serialNumber = socket.getPeerCertificate().serialNumber;
            socket.destroy();
            resolve(serialNumber);
          },
        );
        socket.on('error', reject);
      });
    };
    try {
      const before = await serial();
      writeFileSync(certFile, pem('server2.crt'));
      writeFileSync(keyFile, pem('server2.key'));
      let after = before;
      for (let i = 0; i < 100 && after === before; i++) {
        await Bun.sleep(20);
        after = await serial();
      }
      expect(after).not.toBe(before);
      expect(ext.logs.some((r) => r['msg'] === 'gRPC TLS certificate reloaded')).toBe(true);
    } finally {
      await ext.close();
    }
  });
});

test('the grpcFrame helper builds an uncompressed length-prefixed frame', () => {
  expect(grpcFrame(new Uint8Array([1, 2]))).toEqual(new Uint8Array([0, 0, 0, 0, 2, 1, 2]));
});
