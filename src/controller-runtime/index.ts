/**
 * The reconcile machinery: import from here, not from the files.
 *
 * @module
 */

export { type Clock, sleep, systemClock, type TimerHandle } from '../time/clock.ts';
export { createFakeClock, type FakeClock } from '../time/fake-clock.ts';
export {
  type Condition,
  type ConditionInput,
  type ConditionStatus,
  type ConditionVerdict,
  conditionsEqual,
  conditionTime,
  findCondition,
  isConditionTrue,
  removeCondition,
  setCondition,
} from './conditions.ts';
export {
  type Controller,
  type ControllerOptions,
  createController,
  type ReconcileContext,
  type ReconcileResult,
  type Reconciler,
  splitKey,
} from './controller.ts';
export {
  createEventRecorder,
  type EventRecorder,
  type EventRecorderOptions,
  type EventSink,
  type EventType,
  kubeEventSink,
  REPORTING_CONTROLLER,
  recordReadyTransition,
} from './events.ts';
export type { FeatureDeps } from './feature-deps.ts';
export { createLeaderElector, type LeaderElector, type LeaderElectorOptions } from './leader-election.ts';
export {
  enqueueForParent,
  enqueueOwner,
  PARENT_NAME_LABEL,
  PARENT_NAMESPACE_LABEL,
  PARENT_RESOURCE_TYPE_LABEL,
  parentKeyOf,
  parentLabels,
  parentResourceType,
  parentSelector,
} from './parent-labels.ts';
export { createRateLimiter, type RateLimiter, type RateLimiterOptions } from './rate-limiter.ts';
export { type ApplyStatusOptions, applyStatus } from './status.ts';
export { createTerms, type Term, type Terms } from './term.ts';
export { createWorkQueue, type WorkQueue, type WorkQueueOptions } from './work-queue.ts';
