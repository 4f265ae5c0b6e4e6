import { describe, expect, test } from 'bun:test';
import { create } from '@bufbuild/protobuf';
import { PostEndpointsModifyRequestSchema } from '../../../gen/envoygateway/extension/service_pb.ts';
import { RawPostHTTPListenerModifyRequestSchema } from '../../../gen/tsgw/extension/v1/raw_pb.ts';
import { API, gatewayObject, snapshotOf } from '../../testing/xds-resources.ts';
import { createExtensionHooks } from './index.ts';

describe('pass-through hooks', () => {
  const hooks = createExtensionHooks();
  const snapshot = snapshotOf(API(), gatewayObject());

  test('PostHTTPListenerModify leaves the listener unset without reading it', () => {
    // Not a valid Listener: decoding it would throw.
    const req = create(RawPostHTTPListenerModifyRequestSchema, { listener: new Uint8Array([0xff, 0xff]) });
    const first = hooks.postHTTPListenerModify(req, snapshot);
    expect(first.response.listener).toBeUndefined();
    expect(hooks.postHTTPListenerModify(req, snapshot).response.listener).toBeUndefined();
  });

  test('PostEndpointsModify leaves the load assignment unset', () => {
    const req = create(PostEndpointsModifyRequestSchema, {
      loadAssignment: { clusterName: 'httproute/default/a/rule/0' },
    });
    expect(hooks.postEndpointsModify(req, snapshot).response.loadAssignment).toBeUndefined();
  });
});
