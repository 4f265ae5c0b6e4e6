import { describe, expect, test } from 'bun:test';
import type { EventsV1Event } from '@kubernetes/client-node';
import { OperatorError } from '../errors.ts';
import { createLogger } from '../observability/logger.ts';
import { createFakeClock } from '../time/fake-clock.ts';
import {
  type Condition,
  conditionsEqual,
  conditionTime,
  findCondition,
  isConditionTrue,
  removeCondition,
  setCondition,
} from './conditions.ts';
import { createEventRecorder, type EventSink, REPORTING_CONTROLLER } from './events.ts';

const t0 = new Date('2026-01-02T03:04:05.678Z');
const t1 = new Date('2026-01-02T04:00:00.000Z');

describe('conditions', () => {
  test('a new condition gets the current time at second precision', () => {
    const list = setCondition(
      undefined,
      { type: 'Ready', status: 'False', reason: 'Pending', observedGeneration: 1 },
      t0,
    );
    expect(list).toEqual([
      {
        type: 'Ready',
        status: 'False',
        reason: 'Pending',
        message: '',
        observedGeneration: 1,
        lastTransitionTime: '2026-01-02T03:04:05Z',
      },
    ]);
    expect(conditionTime(t1)).toBe('2026-01-02T04:00:00Z');
  });

  test('same status keeps lastTransitionTime but takes the new reason, message and generation', () => {
    const first = setCondition([], { type: 'Ready', status: 'False', reason: 'Pending' }, t0);
    const second = setCondition(
      first,
      { type: 'Ready', status: 'False', reason: 'Waiting', message: 'for the proxy', observedGeneration: 2 },
      t1,
    );
    expect(second[0]).toMatchObject({
      reason: 'Waiting',
      message: 'for the proxy',
      observedGeneration: 2,
      lastTransitionTime: '2026-01-02T03:04:05Z',
    });
    const third = setCondition(second, { type: 'Ready', status: 'True', reason: 'Ready' }, t1);
    expect(third[0]?.lastTransitionTime).toBe('2026-01-02T04:00:00Z');
  });

  test('is pure: the input is not modified, other conditions keep their order', () => {
    const input: Condition[] = [
      { type: 'A', status: 'True', reason: 'X', message: '', lastTransitionTime: 'then' },
      { type: 'B', status: 'True', reason: 'X', message: '', lastTransitionTime: 'then' },
    ];
    const frozen = structuredClone(input);
    const output = setCondition(input, { type: 'A', status: 'False', reason: 'Y' }, t0);
    expect(input).toEqual(frozen);
    expect(output).not.toBe(input);
    expect(output.map((c) => c.type)).toEqual(['A', 'B']);
    expect(setCondition(input, { type: 'C', status: 'True', reason: 'Z' }, t0).map((c) => c.type)).toEqual([
      'A',
      'B',
      'C',
    ]);
    expect(removeCondition(input, 'A').map((c) => c.type)).toEqual(['B']);
  });

  test('setting the same condition twice is idempotent (reconcile twice)', () => {
    const input = { type: 'Ready', status: 'True' as const, reason: 'Ready', observedGeneration: 3 };
    const once = setCondition([], input, t0);
    const twice = setCondition(once, input, t1);
    expect(conditionsEqual(once, twice)).toBe(true);
    expect(conditionsEqual(once, setCondition(once, { ...input, reason: 'Other' }, t1))).toBe(false);
  });

  test('isConditionTrue honours the observed generation', () => {
    const list = setCondition(
      [],
      { type: 'Ready', status: 'True', reason: 'Ready', observedGeneration: 4 },
      t0,
    );
    expect(isConditionTrue(list, 'Ready')).toBe(true);
    expect(isConditionTrue(list, 'Ready', 4)).toBe(true);
    expect(isConditionTrue(list, 'Ready', 5)).toBe(false);
    expect(isConditionTrue(list, 'Missing')).toBe(false);
    expect(isConditionTrue(undefined, 'Ready')).toBe(false);
    expect(findCondition(list, 'Ready')?.reason).toBe('Ready');
  });
});

function fakeSink() {
  const created: { namespace: string; event: EventsV1Event }[] = [];
  const patches: { namespace: string; name: string; patch: Record<string, unknown> }[] = [];
  let failCreate = false;
  let patchNotFound = false;
  const sink: EventSink = {
    async create(namespace, event) {
      if (failCreate) throw new OperatorError('Transient', 'apiserver down');
      created.push({ namespace, event });
      return event;
    },
    async patch(namespace, name, patch) {
      if (patchNotFound) throw new OperatorError('NotFound', 'event expired');
      patches.push({ namespace, name, patch: JSON.parse(JSON.stringify(patch)) });
      return {} as EventsV1Event;
    },
  };
  return {
    sink,
    created,
    patches,
    setFailCreate: (v: boolean) => {
      failCreate = v;
    },
    setPatchNotFound: (v: boolean) => {
      patchNotFound = v;
    },
  };
}

const gateway = {
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'Gateway',
  metadata: { namespace: 'apps', name: 'web', uid: 'u-1' },
};

describe('event recorder', () => {
  test('writes an events.k8s.io Event with MicroTime and our reporting controller', async () => {
    const clock = createFakeClock(Date.parse('2026-01-02T03:04:05.678Z'));
    const fake = fakeSink();
    const recorder = createEventRecorder({
      sink: fake.sink,
      reportingInstance: 'pod-1',
      clock,
      log: createLogger({ level: 'silent' }),
    });
    await recorder.event(
      gateway,
      'Warning',
      'TailnetUnreachable',
      'cannot reach the Tailscale API',
      'Reconcile',
    );
    expect(fake.created.length).toBe(1);
    const { namespace, event } = fake.created[0]!;
    expect(namespace).toBe('apps');
    expect(event).toMatchObject({
      reportingController: REPORTING_CONTROLLER,
      reportingInstance: 'pod-1',
      action: 'Reconcile',
      reason: 'TailnetUnreachable',
      type: 'Warning',
      note: 'cannot reach the Tailscale API',
      regarding: { kind: 'Gateway', name: 'web', namespace: 'apps', uid: 'u-1' },
    });
    expect(JSON.parse(JSON.stringify(event)).eventTime).toBe('2026-01-02T03:04:05.678000Z');
    expect(event.metadata?.name).toStartWith('web.');
  });

  test('repeats within the window become a series; after the window, a new Event', async () => {
    const clock = createFakeClock();
    const fake = fakeSink();
    const recorder = createEventRecorder({
      sink: fake.sink,
      clock,
      dedupWindowMs: 60_000,
      log: createLogger({ level: 'silent' }),
    });
    await recorder.event(gateway, 'Warning', 'Failed', 'boom');
    await clock.advance(1_000);
    await recorder.event(gateway, 'Warning', 'Failed', 'boom');
    await recorder.event(gateway, 'Warning', 'Failed', 'boom');
    // A different message or object is its own Event.
    await recorder.event(gateway, 'Warning', 'Failed', 'other');
    await recorder.event(
      { ...gateway, metadata: { ...gateway.metadata, name: 'api', uid: 'u-2' } },
      'Warning',
      'Failed',
      'boom',
    );
    expect(fake.created.length).toBe(3);
    expect(fake.patches.map((p) => (p.patch.series as { count: number }).count)).toEqual([2, 3]);
    expect(fake.patches[0]?.name).toBe(fake.created[0]?.event.metadata?.name as string);
    expect((fake.patches[0]!.patch.series as { lastObservedTime: string }).lastObservedTime).toMatch(
      /\.\d{6}Z$/,
    );
    await clock.advance(60_000);
    await recorder.event(gateway, 'Warning', 'Failed', 'boom');
    expect(fake.created.length).toBe(4);
  });

  test('never throws: a failed create is logged and the next occurrence tries again', async () => {
    const lines: string[] = [];
    const fake = fakeSink();
    const recorder = createEventRecorder({
      sink: fake.sink,
      clock: createFakeClock(),
      log: createLogger({ level: 'warn', destination: { write: (l: string) => lines.push(l) } }),
    });
    fake.setFailCreate(true);
    await recorder.event(gateway, 'Normal', 'Synced', 'ok');
    expect(lines.some((l) => l.includes('could not record an event'))).toBe(true);
    fake.setFailCreate(false);
    await recorder.event(gateway, 'Normal', 'Synced', 'ok');
    expect(fake.created.length).toBe(1);
    // An expired Event ends the series; the next repeat creates a fresh one.
    fake.setPatchNotFound(true);
    await recorder.event(gateway, 'Normal', 'Synced', 'ok');
    fake.setPatchNotFound(false);
    await recorder.event(gateway, 'Normal', 'Synced', 'ok');
    expect(fake.created.length).toBe(2);
  });

  test('cluster-scoped objects record into default; long notes are truncated', async () => {
    const fake = fakeSink();
    const recorder = createEventRecorder({
      sink: fake.sink,
      clock: createFakeClock(),
      log: createLogger({ level: 'silent' }),
    });
    await recorder.event(
      { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' } },
      'Normal',
      'Seen',
      'x'.repeat(2000),
    );
    expect(fake.created[0]?.namespace).toBe('default');
    expect(fake.created[0]?.event.note?.length).toBe(1024);
  });
});
