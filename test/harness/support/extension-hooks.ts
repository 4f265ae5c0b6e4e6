/**
 * A test-only `ExtensionHooks`: every hook answers with what it was given (the identity Envoy Gateway
 * treats as "no change" for the typed hooks and "keep everything" for PostTranslateModify), unless a
 * test scripted an error or an effect for it. The extension server's tests use it so they exercise the
 * transport without depending on the real hook logic.
 */
import { create } from '@bufbuild/protobuf';
import {
  PostClusterModifyResponseSchema,
  PostEndpointsModifyResponseSchema,
  PostRouteModifyResponseSchema,
  PostVirtualHostModifyResponseSchema,
} from '../../../gen/envoygateway/extension/service_pb.ts';
import {
  RawPostHTTPListenerModifyResponseSchema,
  RawPostTranslateModifyResponseSchema,
} from '../../../gen/tsgw/extension/v1/raw_pb.ts';
import type { ExtensionHooks, HookEffect, HookName } from '../../../src/extension/hooks.ts';
import type { ResourceSnapshot } from '../../../src/model/resource-store.ts';

export interface ScriptedHooks extends ExtensionHooks {
  /** The next calls of `hook` throw `error` (until `clear`). */
  fail(hook: HookName, error: unknown): void;
  /** Successful calls of `hook` report `effect`. */
  effect(hook: HookName, effect: HookEffect): void;
  clear(): void;
  /** Every call so far, with the snapshot version it saw. */
  calls: { hook: HookName; snapshotVersion: number }[];
}

export function createScriptedHooks(): ScriptedHooks {
  const failures = new Map<HookName, unknown>();
  const effects = new Map<HookName, HookEffect>();
  const calls: ScriptedHooks['calls'] = [];
  const run = <T>(hook: HookName, snapshot: ResourceSnapshot, response: () => T) => {
    calls.push({ hook, snapshotVersion: snapshot.version });
    if (failures.has(hook)) throw failures.get(hook);
    const effect = effects.get(hook);
    return effect === undefined ? { response: response() } : { response: response(), effect };
  };
  return {
    calls,
    fail: (hook, error) => failures.set(hook, error),
    effect: (hook, effect) => effects.set(hook, effect),
    clear() {
      failures.clear();
      effects.clear();
    },
    postRouteModify: (req, snapshot) =>
      run('PostRouteModify', snapshot, () =>
        create(PostRouteModifyResponseSchema, req.route === undefined ? {} : { route: req.route }),
      ),
    postVirtualHostModify: (req, snapshot) =>
      run('PostVirtualHostModify', snapshot, () =>
        create(
          PostVirtualHostModifyResponseSchema,
          req.virtualHost === undefined ? {} : { virtualHost: req.virtualHost },
        ),
      ),
    postHTTPListenerModify: (req, snapshot) =>
      run('PostHTTPListenerModify', snapshot, () =>
        // An absent listener decodes as empty bytes; answering it would replace EG's listener with nothing.
        create(
          RawPostHTTPListenerModifyResponseSchema,
          req.listener.byteLength > 0 ? { listener: req.listener } : {},
        ),
      ),
    postClusterModify: (req, snapshot) =>
      run('PostClusterModify', snapshot, () =>
        create(PostClusterModifyResponseSchema, req.cluster === undefined ? {} : { cluster: req.cluster }),
      ),
    postEndpointsModify: (req, snapshot) =>
      run('PostEndpointsModify', snapshot, () =>
        create(
          PostEndpointsModifyResponseSchema,
          req.loadAssignment === undefined ? {} : { loadAssignment: req.loadAssignment },
        ),
      ),
    postTranslateModify: (req, snapshot) =>
      run('PostTranslateModify', snapshot, () =>
        create(RawPostTranslateModifyResponseSchema, {
          clusters: req.clusters,
          secrets: req.secrets,
          listeners: req.listeners,
          routes: req.routes,
        }),
      ),
  };
}
