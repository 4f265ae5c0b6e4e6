/**
 * TailscaleGateway's desired status from what the caches say: its Gateway, its tailnets, the routes
 * it generates, the routes on its Gateway that name TailscaleEndpoints, and whether Envoy Gateway has
 * been told about the current state (the revision annotation on the Gateway). Pure, so every outcome
 * is tested without Kubernetes, and so the reconciler writes only when this answer differs from what
 * is stored.
 *
 * Conditions (all with observedGeneration):
 * - `Accepted`: the gatewayRef names a Gateway API Gateway that exists.
 * - `ResolvedRefs`: the Gateway and every TailscaleTailnet exist, and every tailnet is Ready.
 * - `Programmed`: accepted, and the Gateway carries the current revision, so Envoy Gateway has been
 *   made to re-translate it with the current routes. (Whether EG then published them is not
 *   observable from here: its hooks answer from the same store this status is computed from.)
 * - `Ready`: all three; otherwise the reason of the first that is not True.
 *
 * @module
 */

import type { TailscaleGateway, TailscaleGatewayStatus } from '../../api/index.ts';
import { canonical } from '../../canonical-json.ts';
import {
  type Condition,
  type ConditionVerdict,
  conditionsEqual,
  setCondition,
} from '../../controller-runtime/index.ts';
import { namespaceOf } from '../../kube/index.ts';
import { CUSTOM_BACKEND_ROUTE_KINDS, type RouteInfo } from '../../model/gateway-api.ts';
import type { GeneratedService } from '../../model/route-generation.ts';

export const CONDITION_READY = 'Ready';
export const CONDITION_ACCEPTED = 'Accepted';
export const CONDITION_RESOLVED_REFS = 'ResolvedRefs';
export const CONDITION_PROGRAMMED = 'Programmed';
/** Written by the services controller under its own field manager (tailscale-gateway-services.ts). */
export const CONDITION_TAILSCALE_SERVICES = 'TailscaleServices';
/** The conditions this status reconciler owns: everything but the services controller's. */
const ownConditions = (conditions: readonly Condition[] | undefined) =>
  (conditions ?? []).filter((c) => c.type !== CONDITION_TAILSCALE_SERVICES);

/** The status lists are bounded; this many entries at most (the counts stay exact). */
export const MAX_LISTED = 64;

export type TailnetObservation =
  | { state: 'missing' }
  | { state: 'present'; ready: 'True' | 'False' | 'Unknown'; reason?: string; message?: string };

export interface GatewayObservation {
  /** The cluster serves the Gateway API's Gateway kind. */
  gatewayApi: boolean;
  /** The referenced Gateway, when it exists (undefined also when the ref is not a Gateway). */
  gateway: { namespace: string; name: string; revision: string | undefined } | undefined;
  /** By TailscaleTailnet name. */
  tailnets: ReadonlyMap<string, TailnetObservation>;
  /** servicesOf(): what the hooks generate for this TailscaleGateway. */
  services: readonly GeneratedService[];
  /** Routes attached to the Gateway with TailscaleEndpoints backendRefs, and which those are. */
  routes: readonly { route: RouteInfo; endpoints: string[] }[];
  /** The revision the Gateway should carry (see tailscale-gateway-trigger.ts). */
  revision: string | undefined;
}

export interface GatewayVerdict {
  status: TailscaleGatewayStatus;
  ready: boolean;
}

export function desiredGatewayStatus(
  tsgw: TailscaleGateway,
  observed: GatewayObservation,
  now: Date,
): GatewayVerdict {
  const namespace = namespaceOf(tsgw);
  const ref = tsgw.spec.gatewayRef;
  const gatewayName = `${ref.namespace ?? namespace}/${ref.name}`;

  let accepted: ConditionVerdict;
  if (ref.group !== 'gateway.networking.k8s.io' || ref.kind !== 'Gateway')
    accepted = {
      status: 'False',
      reason: 'InvalidGatewayRef',
      message: `gatewayRef must name a gateway.networking.k8s.io Gateway, not ${ref.group} ${ref.kind}`,
    };
  else if (!observed.gatewayApi)
    accepted = {
      status: 'False',
      reason: 'GatewayAPINotInstalled',
      message: 'the cluster does not serve gateway.networking.k8s.io Gateways; install the Gateway API CRDs',
    };
  else if (!observed.gateway)
    accepted = { status: 'False', reason: 'GatewayNotFound', message: `Gateway ${gatewayName} not found` };
  else accepted = { status: 'True', reason: 'Accepted', message: `joins Gateway ${gatewayName}` };

  let resolved: ConditionVerdict;
  const missing: string[] = [];
  const notReady: string[] = [];
  for (const attachment of tsgw.spec.tailnets) {
    const seen = observed.tailnets.get(attachment.tailscaleTailnetRef.name);
    const label = `${attachment.name} (TailscaleTailnet ${attachment.tailscaleTailnetRef.name})`;
    if (!seen || seen.state === 'missing') missing.push(label);
    else if (seen.ready !== 'True') notReady.push(`${label}: ${seen.reason ?? 'not Ready'}`);
  }
  if (accepted.status === 'False') resolved = { ...accepted };
  else if (missing.length > 0)
    resolved = { status: 'False', reason: 'TailnetNotFound', message: `not found: ${missing.join(', ')}` };
  else if (notReady.length > 0)
    resolved = { status: 'False', reason: 'TailnetNotReady', message: `not Ready: ${notReady.join('; ')}` };
  else
    resolved = {
      status: 'True',
      reason: 'ResolvedRefs',
      message: `Gateway ${gatewayName} and ${tsgw.spec.tailnets.length} tailnet(s) resolved`,
    };

  let programmed: ConditionVerdict;
  const routeCount = observed.services.length;
  if (accepted.status === 'False')
    programmed = { status: 'False', reason: 'NotAccepted', message: 'nothing is programmed until Accepted' };
  else if (observed.gateway?.revision !== observed.revision)
    programmed = {
      status: 'False',
      reason: 'Pending',
      message: `waiting to mark Gateway ${gatewayName} with revision ${observed.revision ?? '(none)'} so Envoy Gateway re-translates it`,
    };
  else
    programmed = {
      status: 'True',
      reason: 'Programmed',
      message: `${routeCount} generated route(s) at revision ${observed.revision ?? '(none)'} on Gateway ${gatewayName}`,
    };

  const unsupported = observed.routes.filter((r) => !CUSTOM_BACKEND_ROUTE_KINDS.includes(r.route.kind));
  const notes =
    unsupported.length > 0
      ? `; ${unsupported.map((r) => `${r.route.kind} ${r.route.namespace}/${r.route.name}`).join(', ')} name TailscaleEndpoints directly, which Envoy Gateway drops on that kind: use the egress Service as backendRef`
      : '';

  const firstFailing = [accepted, resolved, programmed].find((v) => v.status === 'False');
  const ready: ConditionVerdict = firstFailing
    ? { ...firstFailing }
    : {
        status: 'True',
        reason: 'Ready',
        message: `${routeCount} generated route(s), ${observed.routes.length} route(s) with TailscaleEndpoints backends`,
      };
  ready.message += notes;

  const generation = tsgw.metadata.generation;
  let conditions: Condition[] = ownConditions(tsgw.status?.conditions);
  for (const [type, verdict] of [
    [CONDITION_READY, ready],
    [CONDITION_ACCEPTED, accepted],
    [CONDITION_RESOLVED_REFS, resolved],
    [CONDITION_PROGRAMMED, programmed],
  ] as const) {
    conditions = setCondition(
      conditions,
      {
        type,
        ...verdict,
        message: verdict.message.slice(0, 32768),
        ...(generation === undefined ? {} : { observedGeneration: generation }),
      },
      now,
    );
  }

  const byTailnet = new Map<string, GeneratedService[]>();
  for (const service of observed.services) {
    const list = byTailnet.get(service.tailnet) ?? [];
    list.push(service);
    byTailnet.set(service.tailnet, list);
  }
  const tailnets: NonNullable<TailscaleGatewayStatus['tailnets']> = tsgw.spec.tailnets.map((attachment) => {
    const seen = observed.tailnets.get(attachment.tailscaleTailnetRef.name);
    const services = [...(byTailnet.get(attachment.name) ?? [])].sort((a, b) => a.name.localeCompare(b.name));
    return {
      name: attachment.name,
      tailscaleTailnet: attachment.tailscaleTailnetRef.name,
      ready: seen?.state === 'present' ? seen.ready : 'Unknown',
      services: services.length,
      routes: services
        .slice(0, MAX_LISTED)
        .map((s) => ({ service: s.service, pathPrefix: s.pathPrefix, cluster: s.name })),
    };
  });
  const routes = [...observed.routes]
    .sort(
      (a, b) =>
        a.route.kind.localeCompare(b.route.kind) ||
        a.route.namespace.localeCompare(b.route.namespace) ||
        a.route.name.localeCompare(b.route.name),
    )
    .slice(0, MAX_LISTED)
    .map((r) => ({
      kind: r.route.kind,
      namespace: r.route.namespace,
      name: r.route.name,
      endpoints: r.endpoints.slice(0, 16),
      supported: CUSTOM_BACKEND_ROUTE_KINDS.includes(r.route.kind),
    }));

  const status: TailscaleGatewayStatus = {
    conditions,
    tailnets,
    ...(routes.length > 0 ? { routes } : {}),
    ...(observed.gateway?.revision ? { revision: observed.gateway.revision } : {}),
  };
  return { status, ready: ready.status === 'True' };
}

/** Whether two statuses say the same, so a reconcile that changes nothing writes nothing. */
export function gatewayStatusEqual(
  a: TailscaleGatewayStatus | undefined,
  b: TailscaleGatewayStatus | undefined,
): boolean {
  if (!conditionsEqual(ownConditions(a?.conditions), ownConditions(b?.conditions))) return false;
  const rest = (s: TailscaleGatewayStatus | undefined) =>
    canonical({ tailnets: s?.tailnets ?? [], routes: s?.routes ?? [], revision: s?.revision ?? null });
  return rest(a) === rest(b);
}
