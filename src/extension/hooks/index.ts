/**
 * The hook logic behind the extension server: one function per Envoy Gateway hook, each in its own
 * file, bound here to the options fixed at start-up.
 *
 * @module
 */
import type { ExtensionHooks } from '../hooks.ts';
import { type HookLogger, hookOptions } from './context.ts';
import { postClusterModify } from './post-cluster-modify.ts';
import { postEndpointsModify } from './post-endpoints-modify.ts';
import { postHTTPListenerModify } from './post-http-listener-modify.ts';
import { postRouteModify } from './post-route-modify.ts';
import { postTranslateModify } from './post-translate-modify.ts';
import { postVirtualHostModify } from './post-virtual-host-modify.ts';

export type { HookLogger } from './context.ts';

export interface ExtensionHooksOptions {
  /**
   * Whether the operator runs egress proxies, so clusters point at their Services. Default true;
   * standalone mode has none and sets false, so clusters go to `externalTarget` or the tailnet.
   */
  proxies?: boolean;
  /** The cluster's DNS domain, for proxy Service names. Default `cluster.local`. */
  clusterDomain?: string;
  /** Pino or anything with its `warn`, `info` and `debug`. Default: silent. */
  log?: HookLogger;
}

export function createExtensionHooks(options: ExtensionHooksOptions = {}): ExtensionHooks {
  const bound = hookOptions(options);
  return {
    postRouteModify: (req, snapshot) => postRouteModify(req, snapshot, bound),
    postVirtualHostModify: (req, snapshot) => postVirtualHostModify(req, snapshot, bound),
    postHTTPListenerModify: () => postHTTPListenerModify(),
    postClusterModify: (req, snapshot) => postClusterModify(req, snapshot, bound),
    postEndpointsModify: () => postEndpointsModify(),
    postTranslateModify: (req, snapshot) => postTranslateModify(req, snapshot, bound),
  };
}
