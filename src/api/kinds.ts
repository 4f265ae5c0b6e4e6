/**
 * The registry of kinds, in the order CRDs are rendered and documented.
 *
 * @module
 */

import type * as v from 'valibot';
import type { KindDefinition } from './meta.ts';
import {
  type TailscaleEndpoints,
  TailscaleEndpointsSchema,
  tailscaleEndpointsDefinition,
} from './tailscale-endpoints.ts';
import {
  type TailscaleGateway,
  TailscaleGatewaySchema,
  tailscaleGatewayDefinition,
} from './tailscale-gateway.ts';
import {
  type TailscaleProxyGroup,
  TailscaleProxyGroupSchema,
  tailscaleProxyGroupDefinition,
} from './tailscale-proxy-group.ts';
import {
  type TailscaleRoutePolicy,
  TailscaleRoutePolicySchema,
  tailscaleRoutePolicyDefinition,
} from './tailscale-route-policy.ts';
import {
  type TailscaleTailnet,
  TailscaleTailnetSchema,
  tailscaleTailnetDefinition,
} from './tailscale-tailnet.ts';

/** Any object of `gateway.tailscale.com/v1alpha1`, with defaults applied. */
export type AnyResource =
  | TailscaleTailnet
  | TailscaleEndpoints
  | TailscaleGateway
  | TailscaleRoutePolicy
  | TailscaleProxyGroup;

export type Kind = AnyResource['kind'];

export const KIND_DEFINITIONS: readonly KindDefinition[] = [
  tailscaleTailnetDefinition,
  tailscaleEndpointsDefinition,
  tailscaleGatewayDefinition,
  tailscaleRoutePolicyDefinition,
  tailscaleProxyGroupDefinition,
];

/** The whole-object schema of each kind. */
export const RESOURCE_SCHEMAS: {
  readonly [K in Kind]: v.GenericSchema<unknown, Extract<AnyResource, { kind: K }>>;
} = {
  TailscaleTailnet: TailscaleTailnetSchema,
  TailscaleEndpoints: TailscaleEndpointsSchema,
  TailscaleGateway: TailscaleGatewaySchema,
  TailscaleRoutePolicy: TailscaleRoutePolicySchema,
  TailscaleProxyGroup: TailscaleProxyGroupSchema,
};

export const KINDS = Object.keys(RESOURCE_SCHEMAS) as Kind[];

export function isKind(kind: unknown): kind is Kind {
  return typeof kind === 'string' && Object.hasOwn(RESOURCE_SCHEMAS, kind);
}
