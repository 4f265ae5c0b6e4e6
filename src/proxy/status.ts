/**
 * Status of a proxy set from its state Secrets and live Pods (pure): a replica counts, and its device is
 * reported, only when the state Secret's `pod_uid` is the running Pod's UID and the tailscaled state is
 * consistent; the conditions `ProxiesReady` and `Ready` summarise the sets and the sync's problems.
 *
 * @module
 */
import type { V1Pod, V1Secret } from '@kubernetes/client-node';
import {
  type Condition,
  type ConditionVerdict,
  conditionsEqual,
  setCondition,
} from '../controller-runtime/index.ts';
import { podName, stateSecretName } from './names.ts';
import type { ProxySet } from './objects.ts';
import { type ReplicaState, replicaState } from './state.ts';
import type { SyncProblem } from './sync.ts';

export const CONDITION_PROXIES_READY = 'ProxiesReady';
export const CONDITION_READY = 'Ready';

export interface DeviceStatus {
  hostname: string;
  fqdn?: string;
  nodeId?: string;
  tailscaleIPs?: string[];
  podName?: string;
}

export interface ProxySetStatus {
  statefulSetName: string;
  connectionType: 'ingress' | 'egress';
  replicas: number;
  readyReplicas: number;
  devices: DeviceStatus[];
  /** Per replica, for the condition message. */
  phases: ReplicaState['phase'][];
}

export function proxySetStatus(
  set: ProxySet,
  stateSecret: (name: string) => V1Secret | undefined,
  pod: (name: string) => V1Pod | undefined,
): ProxySetStatus {
  const devices: DeviceStatus[] = [];
  const phases: ReplicaState['phase'][] = [];
  let ready = 0;
  for (let i = 0; i < set.replicas; i++) {
    const live = pod(podName(set.base, i));
    const uid = live?.metadata?.deletionTimestamp ? undefined : live?.metadata?.uid;
    const state = replicaState(stateSecret(stateSecretName(set.base, i)), uid);
    phases.push(state.phase);
    if (state.phase !== 'ready') continue;
    ready++;
    devices.push({
      hostname: set.hostnames[i]!,
      ...(state.device.fqdn ? { fqdn: state.device.fqdn } : {}),
      nodeId: state.device.nodeId,
      ...(state.device.ips.length > 0 ? { tailscaleIPs: state.device.ips } : {}),
      podName: podName(set.base, i),
    });
  }
  return {
    statefulSetName: set.base,
    connectionType: set.type,
    replicas: set.replicas,
    readyReplicas: ready,
    devices,
    phases,
  };
}

export interface ProxyConditionsInput {
  sets: ProxySetStatus[];
  problems: SyncProblem[];
  /** Configuration the proxies cannot carry out (skipped endpoints), appended to the message. */
  notes: string[];
  generation?: number;
  previous: readonly Condition[] | undefined;
  now: Date;
}

/** `ProxiesReady` and `Ready`, keeping each one's lastTransitionTime while its status holds. */
export function proxyConditions(input: ProxyConditionsInput): { conditions: Condition[]; ready: boolean } {
  const total = input.sets.reduce((n, s) => n + s.replicas, 0);
  const ready = input.sets.reduce((n, s) => n + s.readyReplicas, 0);
  const notes = input.notes.length > 0 ? `; ${input.notes.join('; ')}` : '';
  let status: 'True' | 'False';
  let reason: string;
  let message: string;
  const first = input.problems[0];
  if (first) {
    status = 'False';
    reason = first.reason;
    message = input.problems.map((p) => p.message).join('; ');
  } else if (ready < total) {
    status = 'False';
    reason = 'ProxiesStarting';
    const waiting = input.sets.flatMap((s) =>
      s.phases
        .map((phase, i) => [`${s.statefulSetName}-${i}`, phase] as const)
        .filter(([, p]) => p !== 'ready'),
    );
    message = `${ready}/${total} proxies ready; waiting for ${waiting.map(([n, p]) => `${n} (${p})`).join(', ')}`;
  } else {
    status = 'True';
    reason = 'ProxiesReady';
    message = `${ready}/${total} proxies ready`;
  }
  return readyConditions({
    status,
    reason,
    message: `${message}${notes}`,
    ...(input.generation === undefined ? {} : { generation: input.generation }),
    previous: input.previous,
    now: input.now,
  });
}

/**
 * `Ready` and `ProxiesReady` with one status, reason and message, keeping each one's
 * lastTransitionTime while its status holds; conditions of other types in `previous` are left out.
 */
export function readyConditions(
  input: ConditionVerdict & {
    generation?: number;
    previous: readonly Condition[] | undefined;
    now: Date;
  },
): { conditions: Condition[]; ready: boolean } {
  const ours = (input.previous ?? []).filter(
    (c) => c.type === CONDITION_PROXIES_READY || c.type === CONDITION_READY,
  );
  const generation = input.generation === undefined ? {} : { observedGeneration: input.generation };
  const common = { status: input.status, reason: input.reason, message: input.message.slice(0, 32768) };
  let conditions = setCondition(ours, { type: CONDITION_READY, ...common, ...generation }, input.now);
  conditions = setCondition(
    conditions,
    { type: CONDITION_PROXIES_READY, ...common, ...generation },
    input.now,
  );
  return { conditions, ready: input.status === 'True' };
}

/** Whether two condition lists, restricted to ours, say the same. */
export function ourConditionsEqual(a: readonly Condition[] | undefined, b: readonly Condition[]): boolean {
  const mine = (list: readonly Condition[] | undefined) =>
    (list ?? []).filter((c) => c.type === CONDITION_PROXIES_READY || c.type === CONDITION_READY);
  return conditionsEqual(mine(a), mine(b));
}
