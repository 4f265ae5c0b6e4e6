/**
 * The two kinds that own proxies, as the parent-label values their children carry. Here, beside the
 * engine, because every proxy parent and the services controller (which watches the children) name them.
 *
 * @module
 */
import { parentResourceType } from '../controller-runtime/index.ts';

export const ENDPOINTS_PARENT_TYPE = parentResourceType({
  apiVersion: 'gateway.tailscale.com/v1alpha1',
  kind: 'TailscaleEndpoints',
});

export const PROXY_GROUP_PARENT_TYPE = parentResourceType({
  apiVersion: 'gateway.tailscale.com/v1alpha1',
  kind: 'TailscaleProxyGroup',
});
