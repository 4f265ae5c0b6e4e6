/**
 * TailscaleTailnet's desired status from what was observed: the OAuth Secret, the token exchange and the
 * scope probes. Pure, so every outcome (missing Secret, missing key, wrong secret, denied scope, API
 * down) is tested without Kubernetes or Tailscale, and so the reconciler writes status only when this
 * function's answer differs from what is stored.
 *
 * @module
 */
import type { TailscaleTailnet, TailscaleTailnetStatus } from '../../api/index.ts';
import {
  type Condition,
  type ConditionInput,
  conditionsEqual,
  setCondition,
} from '../../controller-runtime/index.ts';
import type { ErrorCode } from '../../errors.ts';
import type { ScopeCheck, ScopeProbe } from '../../tailscale/index.ts';

/** The keys the OAuth Secret must hold. */
export const CLIENT_ID_KEY = 'client_id';
export const CLIENT_SECRET_KEY = 'client_secret';

/** Condition types, in the order they are written. */
export const CONDITION_READY = 'Ready';
export const CONDITION_AUTHENTICATED = 'Authenticated';
export const SCOPE_CONDITIONS = {
  devices: 'DevicesAccess',
  authKeys: 'AuthKeysAccess',
  services: 'ServicesAccess',
} as const satisfies Record<keyof ScopeProbe, string>;

/** What the reconciler found. */
export type TailnetObservation =
  | { credentials: 'secret-not-found'; secret: string }
  | { credentials: 'key-missing'; secret: string; key: string }
  | {
      credentials: 'present';
      probe: ScopeProbe;
      /** From any device's MagicDNS name, when the devices scope worked and a device exists. */
      magicDNSSuffix?: string;
    };

export interface TailnetVerdict {
  status: TailscaleTailnetStatus;
  /** True when the failure may clear by itself (API unreachable, rate limited): retry with backoff. */
  transient: boolean;
  ready: boolean;
}

const TRANSIENT: readonly ErrorCode[] = ['Transient', 'RateLimited', 'Canceled'];

export function desiredTailnetStatus(
  tailnet: TailscaleTailnet,
  observed: TailnetObservation,
  now: Date,
): TailnetVerdict {
  const generation = tailnet.metadata.generation;
  let conditions: Condition[] = tailnet.status?.conditions ? [...tailnet.status.conditions] : [];
  const set = (input: Omit<ConditionInput, 'observedGeneration'>) => {
    conditions = setCondition(
      conditions,
      { ...input, ...(generation === undefined ? {} : { observedGeneration: generation }) },
      now,
    );
  };
  const notChecked = (message: string) => {
    for (const type of Object.values(SCOPE_CONDITIONS))
      set({ type, status: 'Unknown', reason: 'NotChecked', message });
  };

  let authenticated: ConditionInput;
  let transient = false;
  let magicDNSSuffix: string | undefined;
  if (observed.credentials === 'secret-not-found') {
    authenticated = {
      type: CONDITION_AUTHENTICATED,
      status: 'False',
      reason: 'SecretNotFound',
      message: `OAuth Secret ${observed.secret} not found`,
    };
    notChecked('no credentials');
  } else if (observed.credentials === 'key-missing') {
    authenticated = {
      type: CONDITION_AUTHENTICATED,
      status: 'False',
      reason: 'SecretKeyMissing',
      message: `OAuth Secret ${observed.secret} has no key "${observed.key}"`,
    };
    notChecked('no credentials');
  } else {
    const checks = Object.values(observed.probe) as ScopeCheck[];
    const reached = checks.some((c) => c.status === 'ok' || c.status === 'denied');
    if (reached) {
      authenticated = { type: CONDITION_AUTHENTICATED, status: 'True', reason: 'TokenIssued', message: '' };
      for (const [scope, type] of Object.entries(SCOPE_CONDITIONS) as [keyof ScopeProbe, string][]) {
        const check = observed.probe[scope];
        if (check.status === 'ok') set({ type, status: 'True', reason: 'Granted', message: '' });
        else if (check.status === 'denied') {
          set({
            type,
            status: 'False',
            reason: 'Denied',
            message: check.message ?? 'the OAuth client lacks this scope',
          });
        } else {
          transient ||= TRANSIENT.includes(check.code ?? 'Internal');
          set({ type, status: 'False', reason: 'Error', message: check.message ?? 'the check failed' });
        }
      }
      magicDNSSuffix = observed.magicDNSSuffix;
    } else {
      // No call got through: either the credentials were refused, or the API could not be reached.
      const first = checks[0]!;
      const refused = checks.every((c) => c.code === 'Unauthorized' || c.code === 'Invalid');
      transient = !refused;
      authenticated = {
        type: CONDITION_AUTHENTICATED,
        status: 'False',
        reason: refused ? 'InvalidCredentials' : 'APIUnreachable',
        message:
          first.message ??
          (refused ? 'the OAuth client was refused' : 'the Tailscale API could not be reached'),
      };
      notChecked(refused ? 'not authenticated' : 'the Tailscale API could not be reached');
    }
  }
  set(authenticated);

  const failing = [
    authenticated,
    ...Object.values(SCOPE_CONDITIONS).map((type) => conditions.find((c) => c.type === type)!),
  ].find((c) => c.status !== 'True');
  const ready = failing === undefined;
  set(
    ready
      ? {
          type: CONDITION_READY,
          status: 'True',
          reason: 'Ready',
          message: 'credentials valid; all scopes granted',
        }
      : {
          type: CONDITION_READY,
          status: 'False',
          reason:
            failing.type === CONDITION_AUTHENTICATED ? failing.reason : `${failing.type}${failing.reason}`,
          message: failing.message || `${failing.type} is ${failing.status}`,
        },
  );

  const status: TailscaleTailnetStatus = {
    conditions: orderConditions(conditions),
    ...(tailnet.spec.tailnet !== '-' ? { tailnet: tailnet.spec.tailnet } : {}),
    ...((magicDNSSuffix ?? tailnet.status?.magicDNSSuffix)
      ? { magicDNSSuffix: magicDNSSuffix ?? tailnet.status?.magicDNSSuffix }
      : {}),
  };
  return { status, transient, ready };
}

const ORDER = [CONDITION_READY, CONDITION_AUTHENTICATED, ...Object.values(SCOPE_CONDITIONS)];

function orderConditions(conditions: Condition[]): Condition[] {
  const rank = (type: string) => {
    const i = ORDER.indexOf(type);
    return i < 0 ? ORDER.length : i;
  };
  return [...conditions].sort((a, b) => rank(a.type) - rank(b.type) || a.type.localeCompare(b.type));
}

/** True when writing `desired` would change nothing the user can see. */
export function tailnetStatusEqual(
  current: TailscaleTailnetStatus | undefined,
  desired: TailscaleTailnetStatus,
): boolean {
  return (
    conditionsEqual(current?.conditions ?? [], desired.conditions ?? []) &&
    current?.tailnet === desired.tailnet &&
    current?.magicDNSSuffix === desired.magicDNSSuffix
  );
}
