/**
 * What the extension server puts on /metrics after real calls: every family with the labels dashboards
 * and alerts select on, fed by both the direct gRPC path and connect's pipeline.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { ClientHttp2Session } from 'node:http2';
import { OperatorError } from '../../src/errors.ts';
import { startTestExtensionServer, type TestExtensionServer } from '../harness/support/extension-server.ts';
import { openSession, rawCall } from '../harness/support/raw-grpc.ts';
import { grpcFrame, translateFixture } from '../harness/support/xds-fixtures.ts';

const path = (hook: string) => `/envoygateway.extension.EnvoyGatewayExtension/${hook}`;

describe.each([
  ['direct gRPC path', true],
  ['connect pipeline', false],
])('metrics, %s', (_name, directGrpc) => {
  let ext: TestExtensionServer;
  let session: ClientHttp2Session;
  let text: string;
  const request = grpcFrame(translateFixture(5).request);

  beforeAll(async () => {
    ext = await startTestExtensionServer({ directGrpc });
    session = openSession(ext.url);
    ext.hooks.effect('PostTranslateModify', {
      clustersAdded: 2,
      routesAdded: 3,
      virtualHostsAdded: 1,
      clustersModified: 1,
    });
    await rawCall(session, path('PostTranslateModify'), request);
    await rawCall(session, path('PostTranslateModify'), request);
    ext.hooks.fail('PostRouteModify', new OperatorError('Invalid', 'nope'));
    await rawCall(session, path('PostRouteModify'), grpcFrame(new Uint8Array(0)));
    await rawCall(session, path('PostClusterModify'), grpcFrame(new Uint8Array([0x0a, 0x7f])));
    // Give connect's pipeline the moment it needs to end the call after the response went out.
    await Bun.sleep(20);
    text = await ext.metrics.registry.metrics();
  });
  afterAll(async () => {
    session.close();
    await ext.close();
  });

  test('tsgw_extension_hook_calls_total by hook and connect code name', () => {
    expect(text).toContain('tsgw_extension_hook_calls_total{hook="PostTranslateModify",code="ok"} 2');
    expect(text).toContain(
      'tsgw_extension_hook_calls_total{hook="PostRouteModify",code="invalid_argument"} 1',
    );
    expect(text).toContain(
      'tsgw_extension_hook_calls_total{hook="PostClusterModify",code="invalid_argument"} 1',
    );
  });

  test('tsgw_extension_hook_duration_seconds by hook', () => {
    expect(text).toContain('tsgw_extension_hook_duration_seconds_count{hook="PostTranslateModify"} 2');
    expect(text).toContain('tsgw_extension_hook_duration_seconds_count{hook="PostRouteModify"} 1');
  });

  test('tsgw_extension_request_bytes by hook, counting the frame as received', () => {
    expect(text).toContain('# TYPE tsgw_extension_request_bytes histogram');
    expect(text).toContain(
      `tsgw_extension_request_bytes_sum{hook="PostTranslateModify"} ${2 * request.byteLength}`,
    );
    expect(text).toContain('tsgw_extension_request_bytes_count{hook="PostClusterModify"} 1');
  });

  test('tsgw_extension_resources_added_total by hook and resource, from HookResult.effect', () => {
    expect(text).toContain(
      'tsgw_extension_resources_added_total{hook="PostTranslateModify",resource="cluster"} 4',
    );
    expect(text).toContain(
      'tsgw_extension_resources_added_total{hook="PostTranslateModify",resource="route"} 6',
    );
    expect(text).toContain(
      'tsgw_extension_resources_added_total{hook="PostTranslateModify",resource="virtual_host"} 2',
    );
  });

  test('each failure is logged once, as a warning for a caller mistake', () => {
    const failures = ext.logs.filter((r) => String(r['msg']).startsWith('hook call failed'));
    expect(failures.map((r) => [r['hook'], r['code'], r['level']])).toEqual([
      ['PostRouteModify', 'invalid_argument', 40],
      ['PostClusterModify', 'invalid_argument', 40],
    ]);
  });
});
