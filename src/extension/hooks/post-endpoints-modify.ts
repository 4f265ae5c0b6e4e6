/**
 * PostEndpointsModify: nothing to change. The custom-backend cluster gets an inline load assignment
 * from PostClusterModify, so the empty EDS assignment EG also emits stays unused.
 *
 * @module
 */
import { create } from '@bufbuild/protobuf';
import {
  type PostEndpointsModifyResponse,
  PostEndpointsModifyResponseSchema,
} from '../../../gen/envoygateway/extension/service_pb.ts';
import type { HookResult } from '../hooks.ts';

export function postEndpointsModify(): HookResult<PostEndpointsModifyResponse> {
  return { response: create(PostEndpointsModifyResponseSchema) };
}
