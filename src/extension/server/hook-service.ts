/**
 * The one wrapper every Envoy Gateway hook call goes through: one resource snapshot per call, the hook,
 * and the translation of whatever it throws into a gRPC status. Transport concerns (limits, deadlines,
 * metrics, logging) live in `call-observer.ts` and `extension-server.ts`, so this file is the whole
 * answer to "what does a hook error look like on the wire".
 *
 * PostTranslateModify and PostHTTPListenerModify are registered with the wire-identical raw messages
 * (resources as bytes): the path stays `/envoygateway.extension.EnvoyGatewayExtension/<Method>`, but
 * resources the hook leaves alone are never decoded, re-encoded or copied.
 *
 * @module
 */
import type { DescMessage, DescMethod, DescMethodUnary, MessageShape } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { EnvoyGatewayExtension } from '../../../gen/envoygateway/extension/service_pb.ts';
import {
  RawPostHTTPListenerModifyRequestSchema,
  RawPostHTTPListenerModifyResponseSchema,
  RawPostTranslateModifyRequestSchema,
  RawPostTranslateModifyResponseSchema,
} from '../../../gen/tsgw/extension/v1/raw_pb.ts';
import { OperatorError } from '../../errors.ts';
import type { ResourceStore } from '../../model/resource-store.ts';
import type { ExtensionHooks, HookEffect, HookName } from '../hooks.ts';

/** Fully-qualified name Envoy Gateway pins in its retry service config. */
export const EXTENSION_SERVICE_NAME = EnvoyGatewayExtension.typeName;

/** Receives each successful call's `HookResult.effect`, for the resources-added metric. */
export type EffectSink = (hook: HookName, effect: HookEffect) => void;

export interface HookMethod {
  hook: HookName;
  /** The descriptor the router registers; for the two raw methods, input and output are the raw twins. */
  method: DescMethodUnary;
  /** Decoded request in, response message out; throws a `ConnectError` with the mapped code. */
  invoke(request: unknown): unknown;
}

/** A copy of a method descriptor with other message types; the path depends only on service and method name. */
function withMessages<I extends DescMessage, O extends DescMessage>(
  method: DescMethod,
  input: I,
  output: O,
): DescMethodUnary<I, O> {
  return { ...method, methodKind: 'unary', input, output } as DescMethodUnary<I, O>;
}

/**
 * Maps a hook failure to the status Envoy Gateway sees. The message names the hook so EG's own log line
 * (`rpc error: code = … desc = …`) is actionable; a non-`OperatorError` is a bug in our code, so its text
 * and stack stay in our log (the error is kept as `cause`, which connect never serialises).
 */
export function hookError(hook: HookName, error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  if (error instanceof OperatorError) {
    const code = error.code === 'Invalid' ? Code.InvalidArgument : Code.Internal;
    return new ConnectError(`${hook}: ${error.message}`, code, undefined, undefined, error);
  }
  return new ConnectError(
    `${hook}: internal error (details in the extension server log)`,
    Code.Internal,
    undefined,
    undefined,
    error,
  );
}

/** The six hook methods, each bound to `hooks` and `store` through the one wrapper. */
export function createHookMethods(
  hooks: ExtensionHooks,
  store: ResourceStore,
  onEffect: EffectSink,
): HookMethod[] {
  const m = EnvoyGatewayExtension.method;
  const bind = <I extends DescMessage, O extends DescMessage>(
    hook: HookName,
    method: DescMethodUnary<I, O>,
    call: (request: MessageShape<I>) => { response: MessageShape<O>; effect?: HookEffect },
  ): HookMethod => ({
    hook,
    // The list holds methods of different message types, so each descriptor's types are erased here
    // (protobuf-es descriptors are invariant in them) and invoke restores them for its own call.
    method: method as unknown as DescMethodUnary,
    invoke(request) {
      let result: { response: MessageShape<O>; effect?: HookEffect };
      try {
        result = call(request as MessageShape<I>);
      } catch (error) {
        throw hookError(hook, error);
      }
      if (result.effect !== undefined) onEffect(hook, result.effect);
      return result.response;
    },
  });
  return [
    bind('PostRouteModify', m.postRouteModify, (req) => hooks.postRouteModify(req, store.snapshot())),
    bind('PostVirtualHostModify', m.postVirtualHostModify, (req) =>
      hooks.postVirtualHostModify(req, store.snapshot()),
    ),
    bind(
      'PostHTTPListenerModify',
      withMessages(
        m.postHTTPListenerModify,
        RawPostHTTPListenerModifyRequestSchema,
        RawPostHTTPListenerModifyResponseSchema,
      ),
      (req) => hooks.postHTTPListenerModify(req, store.snapshot()),
    ),
    bind('PostClusterModify', m.postClusterModify, (req) => hooks.postClusterModify(req, store.snapshot())),
    bind('PostEndpointsModify', m.postEndpointsModify, (req) =>
      hooks.postEndpointsModify(req, store.snapshot()),
    ),
    bind(
      'PostTranslateModify',
      withMessages(
        m.postTranslateModify,
        RawPostTranslateModifyRequestSchema,
        RawPostTranslateModifyResponseSchema,
      ),
      (req) => hooks.postTranslateModify(req, store.snapshot()),
    ),
  ];
}
