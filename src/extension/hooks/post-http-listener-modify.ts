/**
 * PostHTTPListenerModify: nothing to change on listeners. Envoy Gateway calls it for every listener
 * of every translation, so it answers at once and never decodes the listener.
 *
 * @module
 */
import { create } from '@bufbuild/protobuf';
import {
  type RawPostHTTPListenerModifyResponse,
  RawPostHTTPListenerModifyResponseSchema,
} from '../../../gen/tsgw/extension/v1/raw_pb.ts';
import type { HookResult } from '../hooks.ts';

export function postHTTPListenerModify(): HookResult<RawPostHTTPListenerModifyResponse> {
  return { response: create(RawPostHTTPListenerModifyResponseSchema) };
}
